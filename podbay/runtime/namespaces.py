"""A pod's namespaces, held open without a process (as CRI-O's pinns does).

The network, IPC and UTS namespaces are made by one `unshare` that bind-mounts
each namespace onto a file and exits, so they exist before the first container
and outlive every container restart.
"""
from __future__ import annotations

import asyncio
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
