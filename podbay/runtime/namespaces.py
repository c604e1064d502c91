"""A pod's namespaces, held open without a process (as CRI-O's pinns does).

A short-lived thread of this process leaves its namespaces for new network, IPC
and UTS ones, names the UTS one and bind-mounts each onto a file, so they exist
before the first container and outlive every container restart. The network
namespace's lo is set up when the pod's network is attached (`loopback_up`).
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import signal
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from podbay.runtime.syscalls import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUTS, MS_BIND, finished_before_cancel, mount, \
    sethostname, setns, umount, unshare

KINDS = ("net", "ipc", "uts")


@dataclass(frozen=True)
class PinnedNamespaces:
    dir: Path

    def path(self, kind: str) -> Path:
        return self.dir / kind


async def pin_namespaces(directory: Path, hostname: str, kinds: tuple[str, ...] = KINDS) -> PinnedNamespaces:
    # In a thread rather than by `unshare`: four execs (unshare, sh, hostname, ip) per sandbox saved.
    try:
        await finished_before_cancel(_in_thread(_pin_here, directory, hostname, kinds))
    except OSError as exc:
        unpin_namespaces(directory)
        raise OSError(f"creating the pod's namespaces failed: {exc}") from None
    return PinnedNamespaces(directory)


_FLAGS = {"net": CLONE_NEWNET, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}


def _pin_here(directory: Path, hostname: str, kinds: tuple[str, ...]) -> None:
    """In a thread of its own, which ends after: makes the files, leaves the process's namespaces
    for new ones, names the UTS one, and bind-mounts them onto the files."""
    directory.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        (directory / kind).touch()  # what it is bind-mounted onto
    flags = 0
    for kind in kinds:
        flags |= _FLAGS[kind]
    unshare(flags)
    if "uts" in kinds:
        sethostname(hostname)
    for kind in kinds:
        mount(f"/proc/thread-self/ns/{kind}", str(directory / kind), "", MS_BIND)


_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = struct.Struct("16sH14x")  # struct ifreq: the name, then ifr_flags in the union


async def loopback_up(netns: Path) -> None:
    """Sets lo up in `netns`, as CRI-O and containerd 2 do themselves: the CNI loopback plugin,
    which the CNI maintainers deprecate, was an exec of a Go program per sandbox for one ioctl."""
    await finished_before_cancel(_in_thread(_loopback_up_here, netns))


def _loopback_up_here(netns: Path) -> None:
    """In a thread of its own, which ends after: joins `netns`, whose sockets then are its."""
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = _IFREQ.unpack(fcntl.ioctl(s, _SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(s, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


class _FreshThreads:
    """Threads used once each, for work that changes its thread's namespaces. The spare that
    takes the next work is started by a worker, before its work (while its namespaces are still
    the process's): the event loop hands work over without starting a thread, as Thread.start
    waits until the new thread runs (1-3 ms of the loop's time per start on a loaded machine,
    twice per sandbox). Only when work comes faster than spares does the loop start one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: queue.SimpleQueue[Callable[[], None]] | None = None
        self._starting = False  # a worker is starting the next spare

    def run(self, work: Callable[[], None]) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None:
            spare = self._start()
        spare.put(work)

    def _start(self) -> queue.SimpleQueue[Callable[[], None]]:
        inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, args=(inbox,), name="fresh-namespaces", daemon=True).start()
        return inbox

    def _serve(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        work = inbox.get()
        with self._lock:
            starting = self._spare is None and not self._starting
            self._starting = self._starting or starting
        if starting:
            spare = self._start()
            with self._lock:
                self._spare, self._starting = spare, False
        work()


_fresh_threads = _FreshThreads()


async def _in_thread(function: Callable[..., None], *args: object) -> None:
    """`function` in a thread that has run nothing else and runs nothing after: a thread whose
    namespaces it changed must not run anything else."""
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

    _fresh_threads.run(run)
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
