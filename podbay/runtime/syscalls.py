"""mount(2), umount2(2), setns(2), unshare(2) and sethostname(2) through libc: an exec of mount(8)
per call costs milliseconds, and os.setns and os.unshare need Python 3.12."""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Awaitable, TypeVar

T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUTS = 0x04000000
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(err)}")


async def finished_before_cancel(work: Awaitable[T]) -> T:
    """`work`'s result. A cancelled caller still waits for `work` to end before it is cancelled:
    its cleanup then finds what `work` makes (a mount, pinned namespaces) made or not, never in
    flight in a thread or a child process. Cancels that come while it waits wait too."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # seen here: its failure goes with the cancel, not to the loop's log
        raise


async def all_done(*works: Awaitable[object]) -> None:
    """`works` run at once, each to its end before this returns or raises (the first failure, or
    a cancel): the cleanup after it never races one still changing the host."""
    results = await asyncio.gather(*(finished_before_cancel(w) for w in works), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def run_off_loop(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                      input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """A short program (a CNI plugin, crun, unshare) run to its end in a worker thread, its stdout
    and stderr captured. On the event loop each program's fork, pipes and child watcher were a
    large part of a pod start's loop time in a burst. A cancelled caller waits for it to end, so
    an undoing step never runs while the program is still changing the host."""
    return await finished_before_cancel(asyncio.to_thread(
        subprocess.run, list(argv), env=env, input=input, stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True, check=False))


async def mount_off_loop(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2) in a worker thread. Every new container's mount namespace copies the host's whole
    mount table under the kernel's mount lock, so with hundreds of pods each mount waits longer
    for it; on the event loop that wait stalled the API server, scheduler and agent alike."""
    await finished_before_cancel(asyncio.to_thread(mount, source, target, fstype, flags, data))


def umount(target: str, *, lazy: bool = False) -> None:
    """Unmounts; a target that is not mounted (or gone) is fine."""
    if _libc.umount2(target.encode(), MNT_DETACH if lazy else 0) != 0:
        err = ctypes.get_errno()
        if err in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
            return
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def exchange(a: str, b: str) -> bool:
    """Swaps the two paths' files in one step (renameat2's RENAME_EXCHANGE); False where the
    filesystem cannot (EINVAL) and nothing was done."""
    if _libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        if err == 22:
            return False
        raise OSError(err, f"exchange {a} and {b}: {os.strerror(err)}")
    return True


def is_mountpoint(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def setns(fd: int, nstype: int) -> None:
    """Moves the calling thread (only it) into the namespace open at `fd`."""
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def unshare(flags: int) -> None:
    """Moves the calling thread (only it, for UTS and IPC) into new namespaces."""
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def sethostname(name: str) -> None:
    """The hostname of the calling thread's UTS namespace."""
    raw = name.encode()
    if _libc.sethostname(raw, len(raw)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sethostname {name!r}: {os.strerror(err)}")
