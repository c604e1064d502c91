"""A container's OCI bundle: its rootfs (an overlay of its image's layers, with its devices) and
the config.json the handler runs, with the sandbox's namespaces, /etc files and cgroup; and the
process an exec in it runs."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from podbay.runtime.config import RuntimeConfig
from podbay.runtime.handler import RuntimeHandler
from podbay.runtime.images import ImageStore
from podbay.runtime.images.devices import make_devices
from podbay.runtime.images.unpack import Device
from podbay.runtime.records import ContainerRecord, SandboxRecord
from podbay.runtime.sandboxes import Sandboxes
from podbay.runtime.spec import SandboxPaths, oci_spec
from podbay.runtime.syscalls import finished_before_cancel, mount
from podbay.runtime.types import ContainerConfig, ContainerMetadata, LinuxContainerSecurity, Mount
from podbay.runtime.users import resolve_user

TERMINATION_LOG = "termination-log"


def container_log_path(config: RuntimeConfig, sandbox: SandboxRecord, container: ContainerMetadata) -> Path:
    m = sandbox.metadata
    return (config.state_root / "logs" / f"{m.namespace}_{m.name}_{m.uid}" / container.name /
            f"{container.attempt}.log")


async def make_bundle(images: ImageStore, handler: RuntimeHandler, sandboxes: Sandboxes, sandbox: SandboxRecord,
                      record: ContainerRecord, config: ContainerConfig, pid_namespace: str | None,
                      seccomp_profile: dict[str, Any] | None, rootfs_made: bool = False) -> dict[str, Any]:
    """The rootfs (unless `rootfs_made`: by `make_rootfs` ahead) and config.json under the record's
    bundle, and the record saved; returns the spec's process, which every exec starts from.
    `pid_namespace`: the one to join, else the sandbox's choice."""
    directory, bundle = record.path.parent, sandboxes.config.bundles_root / record.id
    rootfs = bundle / "rootfs"
    layers = images.mount_layers(config.image)
    uid, gid, groups = await finished_before_cancel(asyncio.to_thread(
        _rootfs_and_user, directory, rootfs, Path(record.log_path).parent,
        None if rootfs_made else (layers, images.layer_devices(config.image)), config.security))
    sandbox_dir = sandboxes.sandbox_dir(sandbox.id)
    mounts = _sandbox_mounts(sandbox, sandbox_dir, config, directory)
    paths = _sandbox_paths(sandbox, sandbox_dir, record.id, pid_namespace or _shared_pid(sandbox))
    full = ContainerConfig(**{**config.__dict__, "mounts": mounts + list(config.mounts)})
    spec = handler.container_spec(oci_spec(full, paths, str(rootfs), uid, gid, groups, seccomp_profile),
                                  sandboxes.spec(sandbox))
    await finished_before_cancel(asyncio.to_thread(
        _write_bundle, bundle, spec, directory if config.termination_message_path else None, record))
    process: dict[str, Any] = spec["process"]
    return process


def make_rootfs(directory: Path, rootfs: Path, layers: list[Path], devices: list[list[Device]]) -> None:
    """The container's directories and its mounted overlay with its devices. Called in a worker
    thread: each mkdir and mount waits on the filesystem's journal or the kernel's mount lock, for
    several ms under load, and on the event loop that stalled every other pod."""
    for d in (directory / "upper", directory / "work", rootfs):
        d.mkdir(parents=True)
    mount("overlay", str(rootfs), "overlay", 0, f"lowerdir={':'.join(map(str, layers))},"
          f"upperdir={directory / 'upper'},workdir={directory / 'work'}")
    make_devices(rootfs, layers, devices)


def _rootfs_and_user(directory: Path, rootfs: Path, log_dir: Path,
                     layers_devices: tuple[list[Path], list[list[Device]]] | None,
                     security: LinuxContainerSecurity) -> tuple[int, int, list[int]]:
    """The rootfs (None: made already), the log directory and the user the container runs as:
    one worker-thread call."""
    if layers_devices is not None:
        make_rootfs(directory, rootfs, *layers_devices)
    log_dir.mkdir(parents=True, exist_ok=True)
    return resolve_user(rootfs, security)


def _write_bundle(bundle: Path, spec: dict[str, Any], termination_log_dir: Path | None,
                  record: ContainerRecord) -> None:
    """config.json, the termination-message file the spec mounts (writable by any user), and the
    container's first record (a new file and its spare, the creates a save's cost is made of)."""
    if termination_log_dir is not None:
        log = termination_log_dir / TERMINATION_LOG
        log.touch()
        log.chmod(0o666)
    (bundle / "config.json").write_text(json.dumps(spec))
    record.save()


def _sandbox_paths(sandbox: SandboxRecord, directory: Path, container_id: str, pid: str | None) -> SandboxPaths:
    return SandboxPaths(
        net=None if sandbox.host_network else str(directory / "ns" / "net"),
        ipc=None if sandbox.host_ipc else str(directory / "ns" / "ipc"),
        uts=None if sandbox.host_network else str(directory / "ns" / "uts"),
        pid=pid,
        host_pid=sandbox.host_pid,
        shm=None if sandbox.host_ipc else str(directory / "shm"),
        # From the hierarchies' roots, where the pod's cgroup and its limits are: runc reads a
        # relative path below its own cgroup (podbay's, which is not the root under a service manager).
        cgroups_path=f"/{sandbox.cgroup.strip('/')}/{container_id[:16]}",
    )


def _shared_pid(sandbox: SandboxRecord) -> str | None:
    """With shareProcessNamespace the containers join the sandbox's PID namespace holder's."""
    return f"/proc/{sandbox.pid_holder}/ns/pid" if sandbox.pid_holder else None


def _sandbox_mounts(sandbox: SandboxRecord, sandbox_dir: Path, config: ContainerConfig,
                    directory: Path) -> list[Mount]:
    etc = sandbox_dir / "etc"
    mounts = [Mount("/etc/hosts", str(etc / "hosts")), Mount("/etc/resolv.conf", str(etc / "resolv.conf"))]
    if not sandbox.host_network:
        mounts.append(Mount("/etc/hostname", str(etc / "hostname")))
    if config.termination_message_path:
        mounts.append(Mount(config.termination_message_path, str(directory / TERMINATION_LOG)))
    return mounts


def exec_process(base: dict[str, Any], argv: list[str], tty: bool) -> dict[str, Any]:
    """The container's own process (user and groups, env, cwd, capabilities, no_new_privs,
    rlimits) running `argv`, as CRI-O execs; with a terminal, TERM as CRI-O sets it."""
    process = {k: v for k, v in base.items() if k != "consoleSize"}
    process.update(args=argv, terminal=tty)
    if tty and not any(e.startswith("TERM=") for e in process.get("env", [])):
        process["env"] = [*process.get("env", []), "TERM=xterm"]
    return process
