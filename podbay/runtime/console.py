"""Pseudo-terminals and raw file descriptors for interactive exec, in asyncio.

`crun exec --tty --console-socket PATH` makes the terminal inside the container
and sends its master end over the unix socket at PATH with SCM_RIGHTS, as it
does to conmon; the caller owns the master from then on. The master and the
exec's pipes are plain non-blocking descriptors, read and written here with the
event loop's readiness callbacks.
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import struct
import termios
from pathlib import Path

READ_SIZE = 32 * 1024


def set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


async def _ready(fd: int, *, write: bool = False) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add(fd, wake)
    try:
        await ready
    finally:
        remove(fd)


def read_now(fd: int) -> bytes | None:
    """What `fd` holds now: bytes, b"" at end of file, None when it would block.
    A terminal master whose every slave is closed reads EIO: its end of file."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


async def wait_readable(fd: int) -> None:
    await _ready(fd)


async def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await _ready(fd, write=True)


def set_window_size(fd: int, width: int, height: int) -> None:
    """TIOCSWINSZ on the terminal: the kernel sends SIGWINCH to its foreground process group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class ConsoleSocket:
    """A listening unix socket that receives one terminal master from the OCI runtime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(str(path))
            self._sock.listen(1)
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise

    async def receive(self) -> int:
        """The master's descriptor, non-blocking, once the runtime has sent it."""
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(self._sock)
        with conn:
            conn.setblocking(False)
            while True:
                try:
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                    break
                except BlockingIOError:
                    await _ready(conn.fileno())
        if not fds:
            raise OSError(errno.EPROTO, "the OCI runtime closed the console socket without sending a terminal")
        set_nonblocking(fds[0])
        return fds[0]

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)
