"""A pod's namespaces, held open without a process (as CRI-O's pinns does).

The network, IPC and UTS namespaces are made by one `unshare` that bind-mounts
each namespace onto a file and exits, so they exist before the first container
and outlive every container restart.
"""
from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from podbay.runtime.syscalls import umount

KINDS = ("net", "ipc", "uts")


@dataclass(frozen=True)
class PinnedNamespaces:
    dir: Path

    def path(self, kind: str) -> Path:
        return self.dir / kind


async def pin_namespaces(directory: Path, hostname: str, kinds: tuple[str, ...] = KINDS) -> PinnedNamespaces:
    directory.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        (directory / kind).touch()
    args = [f"--{kind}={directory / kind}" for kind in kinds]
    # One short-lived process: set the hostname and bring up loopback in the new namespaces.
    script = " && ".join(part for part, wanted in (('hostname "$1"', "uts" in kinds),
                                                   ("ip link set lo up", "net" in kinds)) if wanted) or "true"
    command = ["sh", "-c", script, "sh", hostname]
    proc = await asyncio.create_subprocess_exec(
        "unshare", *args, *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        unpin_namespaces(directory)
        raise OSError(f"creating the pod's namespaces failed: {err.decode().strip()}")
    return PinnedNamespaces(directory)


def unpin_namespaces(directory: Path) -> None:
    """Releases the namespaces (idempotent); they end when no process is left in them."""
    for kind in KINDS + ("pid",):
        path = directory / kind
        umount(str(path), lazy=True)
        path.unlink(missing_ok=True)
    if directory.exists():
        directory.rmdir()


async def start_pid_holder(directory: Path) -> int:
    """A pod-wide PID namespace for shareProcessNamespace: catatonit as its PID 1 (the role of
    Kubernetes' pause container), started under `unshare`. Returns the PID of catatonit; its
    /proc/<pid>/ns/pid is what the containers join. The sandbox directory is in the command line
    so the process is recognisably the sandbox's."""
    proc = await asyncio.create_subprocess_exec(
        "unshare", "--pid", "--fork", "--kill-child", "--", "catatonit", "-P", "--", str(directory),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        text = children.read_text().split() if children.exists() else []
        if text:
            return int(text[0])
        if proc.returncode is not None or loop.time() > deadline:
            raise OSError("the pod's PID namespace holder did not start")
        await asyncio.sleep(0.001)  # the fork happens within a millisecond or two


def stop_pid_holder(pid: int | None) -> None:
    """Ends the holder we started (catatonit; `unshare --kill-child` then exits too)."""
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
