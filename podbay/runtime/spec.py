"""The OCI runtime spec (config.json) of one container in a pod sandbox.

Defaults follow containerd's and CRI-O's: the same capability set, masked and
read-only paths, and mounts, so a container here sees what it would see there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podbay.runtime.seccomp import linux_seccomp
from podbay.runtime.types import ContainerConfig

DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
ALL_CAPABILITIES = DEFAULT_CAPABILITIES + [
    "CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE",
    "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@dataclass(frozen=True)
class SandboxPaths:
    """What a container joins: the sandbox's namespace files (None: the host's) and its shared /dev/shm."""

    net: str | None
    ipc: str | None
    uts: str | None
    pid: str | None  # a pod-shared PID namespace; None: the container's own (or the host's)
    host_pid: bool
    shm: str | None  # None: the host's IPC, so the host's /dev/shm
    cgroups_path: str  # the container's cgroup under the pod's


def _capability(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else f"CAP_{name}"


def capabilities(add: list[str], drop: list[str], privileged: bool) -> list[str]:
    """Kubernetes' rule: "ALL" in drop empties the set before adding."""
    if privileged:
        return list(ALL_CAPABILITIES)
    drops = {_capability(d) for d in drop}
    caps = [] if "CAP_ALL" in drops else [c for c in DEFAULT_CAPABILITIES if c not in drops]
    adds = {_capability(a) for a in add}
    if "CAP_ALL" in adds:
        return list(ALL_CAPABILITIES)
    return caps + sorted(a for a in adds if a not in caps)


def oci_spec(config: ContainerConfig, sandbox: SandboxPaths, rootfs: str, uid: int, gid: int,
             extra_gids: list[int], seccomp: dict[str, Any] | None = None) -> dict[str, Any]:
    """`seccomp` is the container's profile (seccomp.load_profile); None runs it unconfined."""
    sec = config.security
    caps = capabilities(sec.add_capabilities, sec.drop_capabilities, sec.privileged)
    process: dict[str, Any] = {
        "terminal": config.tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": extra_gids} if extra_gids else {"uid": uid, "gid": gid},
        "args": config.argv,
        "env": config.env,
        "cwd": config.working_dir or "/",
        # The kernel clears these on exec for a non-root user, as under containerd.
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": sec.no_new_privs,
        "oomScoreAdj": 0,
    }
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    for kind, path in (("network", sandbox.net), ("ipc", sandbox.ipc), ("uts", sandbox.uts)):
        if path:
            namespaces.append({"type": kind, "path": path})
    if sandbox.pid:
        namespaces.append({"type": "pid", "path": sandbox.pid})
    elif not sandbox.host_pid:
        namespaces.append({"type": "pid"})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": sandbox.cgroups_path,
        "resources": _resources(config),
        "maskedPaths": [] if sec.privileged else (sec.masked_paths if sec.masked_paths is not None else MASKED_PATHS),
        "readonlyPaths": [] if sec.privileged else (sec.readonly_paths if sec.readonly_paths is not None else READONLY_PATHS),
    }
    # containerd and CRI-O leave a privileged container unconfined whatever profile it names.
    if seccomp is not None and not sec.privileged:
        linux["seccomp"] = linux_seccomp(seccomp, caps)
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": sec.readonly_rootfs},
        "mounts": _mounts(config, sandbox, sec.privileged),
        "linux": linux,
        "annotations": dict(config.annotations),
    }
    return spec


def _resources(config: ContainerConfig) -> dict[str, Any]:
    r = config.resources
    out: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if config.security.privileged:
        out["devices"] = [{"allow": True, "access": "rwm"}]
    cpu: dict[str, Any] = {}
    if r.cpu_shares:
        cpu["shares"] = r.cpu_shares
    if r.cpu_quota:
        cpu["quota"] = r.cpu_quota
        cpu["period"] = r.cpu_period or 100000
    if cpu:
        out["cpu"] = cpu
    if r.memory_limit_in_bytes:
        out["memory"] = {"limit": r.memory_limit_in_bytes}
    if r.pids_limit:
        out["pids"] = {"limit": r.pids_limit}
    return out


def _mounts(config: ContainerConfig, sandbox: SandboxPaths, privileged: bool) -> list[dict[str, Any]]:
    ro_sys = [] if privileged else ["ro"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro_sys]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *ro_sys]},
    ]
    if sandbox.shm:
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": sandbox.shm,
                       "options": ["rbind", "nosuid", "nodev", "noexec"]})
    else:
        mounts.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                       "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]})
    for m in config.mounts:
        options = ["rbind", "ro" if m.readonly else "rw", f"r{m.propagation}" if m.propagation != "private" else "rprivate"]
        mounts.append({"destination": m.container_path, "type": "bind", "source": m.host_path, "options": options})
    return mounts
