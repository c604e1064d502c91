"""Kubeconfig files: the admin's, written by the server, and any kubectl reads, read by the client."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CLUSTER = "podbay"
USER = "podbay-admin"


@dataclass(frozen=True)
class Credentials:
    """Where a kubeconfig's current context points and what it presents there (PEM bytes)."""
    server: str
    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    token: str | None
    namespace: str | None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(server: str, ca: bytes, cert: bytes, key: bytes) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "contexts": [{"name": CLUSTER, "context": {"cluster": CLUSTER, "user": USER, "namespace": "default"}}],
        "current-context": CLUSTER,
        "users": [{"name": USER, "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}}],
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def _named(entries: Any, name: str, what: str, path: Path) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(what), dict):
            named: dict[str, Any] = entry[what]
            return named
    raise ValueError(f"{path}: no {what} named {name!r}")


def _data(section: dict[str, Any], key: str, base: Path) -> bytes | None:
    """`key`-data (base64) or `key` (a file, relative to the kubeconfig's directory)."""
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        return (base / str(section[key])).read_bytes()
    return None


def load(path: Path, context: str | None = None) -> Credentials:
    """The server and credentials of `context` (default: the current context) in `path`."""
    try:
        # libyaml's loader where PyYAML has it: the pure-Python one takes milliseconds per
        # kilobyte of certificate, at every start of the command line
        config = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the kubeconfig {path}: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a kubeconfig")
    name = context or config.get("current-context")
    if not name:
        raise ValueError(f"{path}: no current-context")
    ctx = _named(config.get("contexts"), name, "context", path)
    cluster = _named(config.get("clusters"), ctx.get("cluster", ""), "cluster", path)
    user = _named(config.get("users"), ctx.get("user", ""), "user", path) if ctx.get("user") else {}
    if not cluster.get("server"):
        raise ValueError(f"{path}: cluster {ctx.get('cluster')!r} names no server")
    base = path.parent
    return Credentials(server=cluster["server"], ca=_data(cluster, "certificate-authority", base),
                       cert=_data(user, "client-certificate", base), key=_data(user, "client-key", base),
                       token=user.get("token"), namespace=ctx.get("namespace"))
