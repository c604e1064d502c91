"""Attaching to a running container's own stdio through conmon's attach socket, as
CRI-O attaches: a SOCK_SEQPACKET unix socket in the bundle. Every packet conmon sends
is one read of the container's output, its first byte the pipe it came from (2 stdout,
3 stderr; a terminal is all stdout); what we send is written to the container's stdin
(held open by conmon for containers with `stdin: true`). Our end of input closes the
container's stdin when it has `stdinOnce` (conmon runs the others with
--leave-stdin-open, as CRI-O does). Terminal resizes
go to conmon's control fifo as `1 HEIGHT WIDTH` lines.

Unlike an exec, an attach has no process of its own: it ends when conmon closes the
socket (the container exited) or the caller closes it.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import termios
from pathlib import Path
from typing import AsyncIterator

STDOUT, STDERR = 1, 2
_PIPES = {2: STDOUT, 3: STDERR}  # conmon's STDOUT_PIPE and STDERR_PIPE
PACKET_SIZE = 8192 + 1  # conmon's stdio reads are at most 8192 bytes, plus the pipe byte
STDIN_PACKET = 4096  # below conmon's receive buffer: a packet is never truncated
_QUEUED = 64
_RESIZE = 1  # conmon's control message type for a window size
FIFO_DRAIN_SECONDS = 1.0
FIFO_POLL_SECONDS = 0.01


def _write_fifo(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _unread(path: Path) -> int:
    """Bytes waiting in a fifo (FIONREAD works on either end of a pipe)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        (waiting,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))
        return int(waiting)
    finally:
        os.close(fd)


def _connect(bundle: Path) -> socket.socket:
    """Connected through /proc/self/fd: a bundle's path can exceed sun_path's 108 bytes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    directory = os.open(bundle, os.O_PATH | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{directory}/attach")
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(directory)
    sock.setblocking(False)
    return sock


class AttachSession:
    """Shaped like an ExecSession, so the agent streams both the same way."""

    def __init__(self, sock: socket.socket, bundle: Path, tty: bool, stdin: bool, outputs: set[int]) -> None:
        self._sock = sock
        self._bundle = bundle
        self.tty = tty
        self._stdin = stdin
        self._queues: dict[int, asyncio.Queue[bytes | None]] = {s: asyncio.Queue(_QUEUED) for s in outputs}
        self._ended: asyncio.Future[int] = asyncio.ensure_future(self._demultiplex())
        self._size: tuple[int, int] | None = None
        self._resizing: asyncio.Future[None] | None = None

    async def _demultiplex(self) -> int:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while packet := await loop.sock_recv(self._sock, PACKET_SIZE):
                queue = self._queues.get(_PIPES.get(packet[0], STDOUT))
                if queue is not None and len(packet) > 1:
                    await queue.put(packet[1:])
        for queue in self._queues.values():
            await queue.put(None)
        return 0

    async def output(self, stream: int) -> AsyncIterator[bytes]:
        queue = self._queues.get(stream)
        if queue is None:
            return
        while (chunk := await queue.get()) is not None:
            yield chunk

    async def write_stdin(self, data: bytes) -> None:
        if not self._stdin:
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            for i in range(0, len(data), STDIN_PACKET):
                await loop.sock_sendall(self._sock, data[i:i + STDIN_PACKET])

    def close_stdin(self) -> None:
        if self._stdin and not self.tty:
            self._stdin = False
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def resize(self, width: int, height: int) -> None:
        """Only the latest size matters: sizes that come faster than conmon takes them are
        coalesced."""
        if not self.tty:
            return
        self._size = (width, height)
        if self._resizing is None or self._resizing.done():
            self._resizing = asyncio.ensure_future(self._send_sizes())

    async def _send_sizes(self) -> None:
        while self._size is not None:
            # conmon (2.1) acts on only the first line of each read of its fifos, so a
            # message written while another is still unread would be lost (kubectl
            # attach sends two sizes at once): each waits for the fifos to be drained.
            await self._fifos_drained()
            width, height = self._size
            self._size = None
            with contextlib.suppress(OSError):  # no reader on the fifo: conmon is gone
                _write_fifo(self._bundle / "ctl", f"{_RESIZE} {height} {width}\n".encode())

    async def _fifos_drained(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIFO_DRAIN_SECONDS
        while loop.time() < deadline and any(_unread(self._bundle / name) for name in ("ctl", "winsz")):
            await asyncio.sleep(FIFO_POLL_SECONDS)  # a fifo tells no one when it has been read

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)

    async def close(self) -> None:
        tasks = [t for t in (self._ended, self._resizing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sock.close()


async def attach(bundle: Path, *, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> AttachSession:
    sock = await asyncio.to_thread(_connect, bundle)
    outputs = {s for s, wanted in ((STDOUT, stdout), (STDERR, stderr and not tty)) if wanted}
    return AttachSession(sock, bundle, tty, stdin, outputs)
