"""A pod's namespaces, held open without a process (as CRI-O's pinns does).

The network, IPC and UTS namespaces are made by one `unshare` that bind-mounts
each namespace onto a file and exits, so they exist before the first container
and outlive every container restart; without a network namespace (bringing up
its loopback needs `ip`) a short-lived thread of this process does the same.
"""
from __future__ import annotations

import asyncio
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from podbay.runtime.syscalls import CLONE_NEWIPC, CLONE_NEWUTS, MS_BIND, finished_before_cancel, mount, run_off_loop, \
    sethostname, umount, unshare

KINDS = ("net", "ipc", "uts")


@dataclass(frozen=True)
class PinnedNamespaces:
    dir: Path

    def path(self, kind: str) -> Path:
        return self.dir / kind


async def pin_namespaces(directory: Path, hostname: str, kinds: tuple[str, ...] = KINDS) -> PinnedNamespaces:
    if "net" not in kinds:
        # Nothing to bring up: made in-process, three execs (unshare, sh, hostname) fewer on the
        # path of a pod taking a warm sandbox.
        try:
            await finished_before_cancel(_in_thread(_pin_here, directory, hostname, kinds))
        except OSError as exc:
            unpin_namespaces(directory)
            raise OSError(f"creating the pod's namespaces failed: {exc}") from None
        return PinnedNamespaces(directory)
    await finished_before_cancel(asyncio.to_thread(_make_pin_files, directory, kinds))
    args = [f"--{kind}={directory / kind}" for kind in kinds]
    # One short-lived process: set the hostname and bring up loopback in the new namespaces.
    script = " && ".join(part for part, wanted in (('hostname "$1"', "uts" in kinds),
                                                   ("ip link set lo up", "net" in kinds)) if wanted) or "true"
    command = ["sh", "-c", script, "sh", hostname]
    proc = await run_off_loop(["unshare", *args, *command])
    if proc.returncode != 0:
        unpin_namespaces(directory)
        raise OSError(f"creating the pod's namespaces failed: {proc.stderr.decode().strip()}")
    return PinnedNamespaces(directory)


_FLAGS = {"ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}


def _make_pin_files(directory: Path, kinds: tuple[str, ...]) -> None:
    """The files the namespaces are bind-mounted onto; in a worker thread, as each new file waits
    on ext4's journal."""
    directory.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        (directory / kind).touch()


def _pin_here(directory: Path, hostname: str, kinds: tuple[str, ...]) -> None:
    """In a thread of its own, which ends after: makes the files, leaves the process's namespaces
    for new ones, names the UTS one, and bind-mounts them onto the files."""
    _make_pin_files(directory, kinds)
    flags = 0
    for kind in kinds:
        flags |= _FLAGS[kind]
    unshare(flags)
    if "uts" in kinds:
        sethostname(hostname)
    for kind in kinds:
        mount(f"/proc/thread-self/ns/{kind}", str(directory / kind), "", MS_BIND)


async def _in_thread(function: Callable[..., None], *args: object) -> None:
    """`function` in a new thread, never a pooled one: a thread whose namespaces it changed must
    not run anything else."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        try:
            function(*args)
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            loop.call_soon_threadsafe(settle, exc)
        else:
            loop.call_soon_threadsafe(settle, None)

    threading.Thread(target=run, name="pin-namespaces", daemon=True).start()
    await done


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
