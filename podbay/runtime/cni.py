"""Executing one CNI plugin as the CNI spec (1.0.0) prescribes.

A plugin is an executable found in CNI_PATH; the runtime passes the operation and
the container in CNI_* environment variables and the network configuration as
JSON on stdin, and reads a result (ADD) or an error object from stdout.
"""
from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from podbay.runtime.syscalls import run_off_loop

CNI_VERSION = "1.0.0"
_DEFAULT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class NetworkError(Exception):
    """A CNI plugin failed or answered nonsense; the message carries the plugin's msg and details."""


def find_plugin(kind: str, bin_dirs: tuple[Path, ...]) -> Path:
    for directory in bin_dirs:
        candidate = directory / kind
        if os.access(candidate, os.X_OK):
            return candidate
    raise NetworkError(f'failed to find plugin "{kind}" in path {[str(d) for d in bin_dirs]}')


def cni_args(pairs: dict[str, str]) -> str:
    """CNI_ARGS: IgnoreUnknown first so plugins that do not know the K8S_* keys accept them."""
    return ";".join(["IgnoreUnknown=1", *(f"{k}={v}" for k, v in pairs.items())])


async def exec_plugin(command: str, conf: dict[str, Any], *, bin_dirs: tuple[Path, ...], container_id: str,
                      netns: Path | None, ifname: str, args: str) -> dict[str, Any] | None:
    """Runs `conf["type"]` for ADD, DEL or CHECK; returns the validated ADD result (None otherwise)."""
    kind = conf["type"]
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": str(netns or ""),
           "CNI_IFNAME": ifname, "CNI_PATH": os.pathsep.join(map(str, bin_dirs)), "CNI_ARGS": args,
           "PATH": os.environ.get("PATH", _DEFAULT_PATH)}
    proc = await run_off_loop([str(find_plugin(kind, bin_dirs))], env=env, input=json.dumps(conf).encode())
    out, err = proc.stdout, proc.stderr
    if proc.returncode != 0:
        raise NetworkError(f"plugin type={kind!r} {command} failed: {_error_message(out, err, proc.returncode)}")
    if command != "ADD":
        return None
    try:
        result: dict[str, Any] = json.loads(out)  # result_problems checks it is an object
    except ValueError:
        raise NetworkError(f"plugin type={kind!r} ADD printed no JSON result: {out[:200]!r}") from None
    problems = result_problems(result)
    if problems:
        raise NetworkError(f"plugin type={kind!r} ADD returned an invalid result: {'; '.join(problems)}")
    return result


def _error_message(out: bytes, err: bytes, code: int | None) -> str:
    try:
        error = json.loads(out)
    except ValueError:
        error = None
    if isinstance(error, dict) and "msg" in error:
        details = f": {error['details']}" if error.get("details") else ""
        return f"{error['msg']}{details} (CNI error code {error.get('code')})"
    text = (out or err).decode(errors="replace").strip()
    return text or f"exit status {code}"


def result_problems(result: Any) -> list[str]:
    """What is wrong with an ADD result, by field path (empty when it is a valid 1.0 result)."""
    if not isinstance(result, dict):
        return ["result: not a JSON object"]
    problems = []
    if not isinstance(result.get("cniVersion"), str):
        problems.append("cniVersion: missing")
    interfaces = result.get("interfaces", [])
    if not isinstance(interfaces, list) or not all(isinstance(i, dict) and i.get("name") for i in interfaces):
        problems.append("interfaces: each entry needs a name")
        interfaces = []
    ips = result.get("ips", [])
    if not isinstance(ips, list):
        return [*problems, "ips: not a list"]
    for n, ip in enumerate(ips):
        try:
            if "/" not in ip["address"]:
                raise ValueError("no prefix length")
            ipaddress.ip_interface(ip["address"])
        except (TypeError, KeyError, ValueError):
            problems.append(f"ips[{n}].address: {ip.get('address') if isinstance(ip, dict) else ip!r}: "
                            "not an address in CIDR notation")
            continue
        index = ip.get("interface")
        if index is not None and not (isinstance(index, int) and 0 <= index < len(interfaces)):
            problems.append(f"ips[{n}].interface: {index!r}: no such entry in interfaces")
        if ip.get("gateway") is not None:
            try:
                ipaddress.ip_address(ip["gateway"])
            except ValueError:
                problems.append(f"ips[{n}].gateway: {ip['gateway']!r}: not an IP address")
    return problems
