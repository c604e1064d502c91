"""Seccomp profiles in the OCI spec, as containerd and CRI-O apply them.

A profile is written in the format Docker, containerd and CRI-O share: OCI's
`linux.seccomp` plus `archMap` and per-rule `includes`/`excludes` (capabilities,
architectures, kernel version) that select the rules a given container gets.
RuntimeDefault is that ecosystem's default profile (seccomp_default.json, the
data of moby/profiles' default.json, Apache-2.0: an allow-list; anything else
fails with EPERM). Localhost profiles are files in the
same format; a plain OCI `linux.seccomp` document is one too.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import re
from importlib import resources
from typing import Any

from podbay.runtime.types import ContainerRuntimeError, ProfileType, SecurityProfile

ACTIONS = frozenset({
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
})
OPERATORS = frozenset({
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
})
# uname's machine -> the architecture names `includes`/`excludes` use -> libseccomp's.
NATIVE_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "x86", "ppc64le": "ppc64le",
               "s390x": "s390x", "riscv64": "riscv64"}
SECCOMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM",
                "x86": "SCMP_ARCH_X86", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
                "riscv64": "SCMP_ARCH_RISCV64"}
_KERNEL = re.compile(r"^(\d+)\.(\d+)")
# Passed through to the OCI spec unchanged when present.
_PASSTHROUGH = ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata")


@functools.cache
def runtime_default() -> dict[str, Any]:
    profile: dict[str, Any] = json.loads(resources.files("podbay.runtime").joinpath("seccomp_default.json").read_text())
    return profile


def host_arch() -> str:
    return NATIVE_ARCH.get(platform.machine(), platform.machine())


def host_kernel() -> tuple[int, int]:
    return _kernel_version(platform.release()) or (0, 0)


def _kernel_version(text: str) -> tuple[int, int] | None:
    m = _KERNEL.match(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def load_profile(profile: SecurityProfile) -> dict[str, Any] | None:
    """The profile a container runs under, checked; None when unconfined. A Localhost
    profile that cannot be read or is not a valid profile fails container creation."""
    if profile.profile_type is ProfileType.UNCONFINED:
        return None
    if profile.profile_type is ProfileType.RUNTIME_DEFAULT:
        return runtime_default()
    path = profile.localhost_ref
    if not os.path.isabs(path):
        raise ContainerRuntimeError(f'seccomp profile "{path}": a Localhost profile must be an absolute path')
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ContainerRuntimeError(f'cannot load seccomp profile "{path}": {getattr(e, "strerror", None) or e}') from e
    try:
        doc: dict[str, Any] = json.loads(text)  # profile_errors checks it is an object
    except json.JSONDecodeError as e:
        raise ContainerRuntimeError(f'decoding seccomp profile failed "{path}": {e}') from e
    problems = profile_errors(doc)
    if problems:
        raise ContainerRuntimeError(f'invalid seccomp profile "{path}": {"; ".join(problems)}')
    return doc


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _condition_errors(path: str, cond: Any) -> list[str]:
    if not isinstance(cond, dict):
        return [f"{path}: must be an object"]
    errs = [f"{path}.{key}: must be a list of strings" for key in ("arches", "caps")
            if key in cond and not _strings(cond[key])]
    if "minKernel" in cond and not (isinstance(cond["minKernel"], str) and _kernel_version(cond["minKernel"])):
        errs.append(f'{path}.minKernel: {cond["minKernel"]!r} is not a kernel version such as "4.8"')
    return errs


def _rule_errors(path: str, rule: Any) -> list[str]:
    if not isinstance(rule, dict):
        return [f"{path}: must be an object"]
    errs = []
    if "name" in rule and "names" in rule:
        errs.append(f"{path}: both 'name' and 'names' are specified, use either 'name' or 'names'")
    elif "name" in rule:
        if not isinstance(rule["name"], str) or not rule["name"]:
            errs.append(f"{path}.name: must be a syscall name")
    elif not _strings(rule.get("names")) or not rule["names"]:
        errs.append(f"{path}.names: must be a non-empty list of syscall names")
    if rule.get("action") not in ACTIONS:
        errs.append(f"{path}.action: {rule.get('action')!r} is not a seccomp action ({', '.join(sorted(ACTIONS))})")
    if "errnoRet" in rule and not _int(rule["errnoRet"]):
        errs.append(f"{path}.errnoRet: must be an integer")
    args = rule.get("args")
    if args is not None and not isinstance(args, list):
        errs.append(f"{path}.args: must be a list")
    for j, arg in enumerate(args if isinstance(args, list) else []):
        ap = f"{path}.args[{j}]"
        if not isinstance(arg, dict):
            errs.append(f"{ap}: must be an object")
            continue
        if not (_int(arg.get("index")) and 0 <= arg["index"] <= 5):
            errs.append(f"{ap}.index: must be an integer from 0 to 5")
        errs += [f"{ap}.{key}: must be a non-negative integer" for key in ("value", "valueTwo")
                 if key in arg and not (_int(arg[key]) and arg[key] >= 0)]
        if arg.get("op") not in OPERATORS:
            errs.append(f"{ap}.op: {arg.get('op')!r} is not a comparison ({', '.join(sorted(OPERATORS))})")
    for key in ("includes", "excludes"):
        if key in rule:
            errs += _condition_errors(f"{path}.{key}", rule[key])
    return errs


def profile_errors(doc: Any) -> list[str]:
    """What is wrong with a profile document, each naming its place in the document."""
    if not isinstance(doc, dict):
        return ["a profile must be a JSON object"]
    errs = []
    if doc.get("defaultAction") not in ACTIONS:
        errs.append(f"defaultAction: {doc.get('defaultAction')!r} is not a seccomp action "
                    f"({', '.join(sorted(ACTIONS))})")
    if "defaultErrnoRet" in doc and not _int(doc["defaultErrnoRet"]):
        errs.append("defaultErrnoRet: must be an integer")
    if doc.get("architectures") and doc.get("archMap"):
        errs.append("both 'architectures' and 'archMap' are specified, use either 'architectures' or 'archMap'")
    if "architectures" in doc and not _strings(doc["architectures"]):
        errs.append("architectures: must be a list of strings")
    for i, entry in enumerate(doc.get("archMap") or []):
        if not (isinstance(entry, dict) and isinstance(entry.get("architecture"), str)
                and _strings(entry.get("subArchitectures") or [])):
            errs.append(f"archMap[{i}]: must be an object with an architecture and a list of subArchitectures")
    syscalls = doc.get("syscalls")
    if syscalls is not None and not isinstance(syscalls, list):
        errs.append("syscalls: must be a list")
    for i, rule in enumerate(syscalls if isinstance(syscalls, list) else []):
        errs += _rule_errors(f"syscalls[{i}]", rule)
    return errs


def _applies(rule: dict[str, Any], arch: str, capabilities: set[str], kernel: tuple[int, int]) -> bool:
    """Docker's rule selection: an exclude condition that holds, or an include condition
    that does not, leaves the rule out."""
    ex = rule.get("excludes") or {}
    if arch in ex.get("arches", []) or capabilities & set(ex.get("caps", [])):
        return False
    if "minKernel" in ex and kernel >= (_kernel_version(ex["minKernel"]) or (0, 0)):
        return False
    inc = rule.get("includes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if not set(inc.get("caps", [])) <= capabilities:
        return False
    return not ("minKernel" in inc and kernel < (_kernel_version(inc["minKernel"]) or (0, 0)))


def linux_seccomp(profile: dict[str, Any], capabilities: list[str], *, arch: str | None = None,
                  kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OCI `linux.seccomp` of a container with these (bounding) capabilities on this
    architecture and kernel: the profile's rules that apply, the native arch's list."""
    arch = arch or host_arch()
    kernel = kernel or host_kernel()
    caps = set(capabilities)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    out.update({key: profile[key] for key in _PASSTHROUGH if key in profile})
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == SECCOMP_ARCH.get(arch):
            architectures += [entry["architecture"], *(entry.get("subArchitectures") or [])]
            break
    if architectures:
        out["architectures"] = architectures
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, arch, caps, kernel):
            continue
        syscall: dict[str, Any] = {"names": rule.get("names") or [rule["name"]], "action": rule["action"]}
        if "errnoRet" in rule:
            syscall["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            syscall["args"] = rule["args"]
        syscalls.append(syscall)
    if syscalls:
        out["syscalls"] = syscalls
    return out
