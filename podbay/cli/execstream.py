"""`podbay exec -i/-t`: our stdin, stdout, stderr and terminal joined to a command in a
pod's container over the exec stream, as `kubectl exec -it` joins them."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
import termios
import tty as ttymod
from typing import Iterator

from podbay.api.remotecommand import STDOUT
from podbay.client import Client
from podbay.client.streams import ExecStream

READ_SIZE = 32 * 1024


def use_tty(stdin: bool, tty: bool) -> bool:
    """kubectl's rule: a terminal only with -i and a terminal on our stdin."""
    if tty and not (stdin and sys.stdin.isatty()):
        print("Unable to use a TTY - input is not a terminal or the right kind of file", file=sys.stderr)
        return False
    return tty


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Our terminal in raw mode (keys go to the remote one as typed), restored on the way out."""
    saved = termios.tcgetattr(fd)
    ttymod.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def run_exec(client: Client, name: str, namespace: str, command: list[str], container: str | None,
                   *, stdin: bool, tty: bool) -> int:
    """Streams the command; its exit code."""
    async with client.exec_stream(name, namespace, command, container, stdin=stdin, stdout=True,
                                  stderr=not tty, tty=tty) as stream:
        with raw_terminal(sys.stdin.fileno()) if tty else contextlib.nullcontext():
            helpers = [asyncio.create_task(_send_stdin(stream))] if stdin else []
            if tty:
                helpers.append(asyncio.create_task(_send_resizes(stream)))
            try:
                async for channel, data in stream:
                    out = sys.stdout if channel == STDOUT else sys.stderr
                    out.buffer.write(data)
                    out.flush()
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
    return stream.exit_code if stream.exit_code is not None else 1


async def _send_stdin(stream: ExecStream) -> None:
    fd = sys.stdin.fileno()
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd):
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(os.dup(fd), "rb", buffering=0))
        try:
            while chunk := await reader.read(READ_SIZE):
                await stream.write_stdin(chunk)
        finally:
            transport.close()
            os.set_blocking(fd, True)  # the pipe transport made the shared file description non-blocking
    else:
        # A regular file (or /dev/null) is always readable and cannot be polled.
        while chunk := os.read(fd, READ_SIZE):
            await stream.write_stdin(chunk)
    await stream.close_stdin()


async def _send_resizes(stream: ExecStream) -> None:
    """Our terminal's size now and after every SIGWINCH."""
    changed = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGWINCH, changed.set)
    try:
        while True:
            with contextlib.suppress(OSError):  # stdout is not a terminal
                size = os.get_terminal_size(sys.stdout.fileno())
                await stream.resize(size.columns, size.lines)
            await changed.wait()
            changed.clear()
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
