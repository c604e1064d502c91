"""One streamed exec: a command in a running container under `crun exec`, its stdin,
stdout and stderr (or one terminal) as descriptors the caller streams, and its exit code.

`crun exec` stays in the foreground and exits with the command, so its exit is the
command's. The command's host pid comes from crun's pid file: ending a session kills
that process, not only crun.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from podbay.runtime.console import ConsoleSocket, read_now, set_nonblocking, set_window_size, wait_readable, write_all
from podbay.runtime.files import read_pid_file
from podbay.runtime.handler import RuntimeHandler
from podbay.runtime.types import ContainerRuntimeError

STDOUT, STDERR = 1, 2
KILL_RETRY_SECONDS = 1.0  # no event tells when crun writes the pid file
_DEVNULL = asyncio.subprocess.DEVNULL


@dataclass
class ExecSession:
    process: asyncio.subprocess.Process  # crun exec
    workdir: Path  # the console socket and the pid file
    tty: bool
    stdin_fd: int | None  # ours to write: the pipe to the command's stdin, or the terminal
    output_fds: dict[int, int]  # STDOUT/STDERR -> ours to read
    _exited: asyncio.Future[int] = field(init=False)

    def __post_init__(self) -> None:
        self._exited = asyncio.ensure_future(self.process.wait())

    async def write_stdin(self, data: bytes) -> None:
        if self.stdin_fd is None:
            return
        with contextlib.suppress(BrokenPipeError):  # the command is gone or closed its stdin
            await write_all(self.stdin_fd, data)

    def close_stdin(self) -> None:
        """End of input. A terminal has no half-close: its input just stops."""
        if self.stdin_fd is not None and not self.tty:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def resize(self, width: int, height: int) -> None:
        if self.tty and self.stdin_fd is not None:
            set_window_size(self.stdin_fd, width, height)

    async def output(self, stream: int) -> AsyncIterator[bytes]:
        """Chunks of stdout or stderr (with a terminal, STDOUT is everything) until end of file,
        or until the command has exited and what it wrote is read: a background child that
        keeps the stream open does not hold the session."""
        fd = self.output_fds.get(stream)
        if fd is None:
            return
        while True:
            data = read_now(fd)
            if data is None:
                if self._exited.done():
                    return
                readable = asyncio.ensure_future(wait_readable(fd))
                either: set[asyncio.Future[Any]] = {readable, self._exited}  # None (readable) or the exit code
                try:
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    readable.cancel()  # unregisters the fd before anyone closes it
                continue
            if not data:
                return
            yield data

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    async def kill(self) -> None:
        """Kills the command by its pid (while crun runs it has not reaped it, so the pid
        is still the command's) and waits for crun. Before crun has written the pid, crun
        gets SIGTERM, which it passes on to the command; killing crun itself would orphan
        the command."""
        while not self._exited.done():
            pid = read_pid_file(self.workdir / "pid")
            with contextlib.suppress(ProcessLookupError):
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                else:
                    self.process.send_signal(signal.SIGTERM)
            await asyncio.wait({self._exited}, timeout=KILL_RETRY_SECONDS)

    async def close(self) -> None:
        """Kills the command if it still runs and releases every descriptor and file."""
        await self.kill()
        fds = {fd for fd in (self.stdin_fd, *self.output_fds.values()) if fd is not None}
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stdin_fd = None
        self.output_fds = {}
        shutil.rmtree(self.workdir, ignore_errors=True)


def _pipe(*, child_reads: bool) -> tuple[int, int]:
    """(the command's end, our non-blocking end) of a new pipe."""
    r, w = os.pipe2(os.O_CLOEXEC)
    child, mine = (r, w) if child_reads else (w, r)
    set_nonblocking(mine)
    return child, mine


async def start_exec(handler: RuntimeHandler, container_id: str, process: dict[str, Any], workdir: Path, *,
                     stdin: bool = False, stdout: bool = True, stderr: bool = True) -> ExecSession:
    """Starts the OCI `process` in the container with the streams asked for (one terminal for
    all when `process["terminal"]`); on failure nothing it set up is left."""
    workdir.mkdir(parents=True)
    ours: list[int] = []
    theirs: list[int] = []
    try:
        if process.get("terminal"):
            return await _start_with_terminal(handler, container_id, process, workdir, ours)
        stdio = [_DEVNULL, _DEVNULL, _DEVNULL]
        stdin_fd: int | None = None
        outputs: dict[int, int] = {}
        if stdin:
            stdio[0], stdin_fd = _pipe(child_reads=True)
            theirs.append(stdio[0])
            ours.append(stdin_fd)
        for stream, wanted in ((STDOUT, stdout), (STDERR, stderr)):
            if wanted:
                stdio[stream], outputs[stream] = _pipe(child_reads=False)
                theirs.append(stdio[stream])
                ours.append(outputs[stream])
        proc = await handler.exec(container_id, process, pid_file=workdir / "pid", stdio=(stdio[0], stdio[1], stdio[2]))
        return ExecSession(proc, workdir, False, stdin_fd, outputs)
    except BaseException:
        for fd in ours:
            os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        for fd in theirs:
            os.close(fd)


async def _start_with_terminal(handler: RuntimeHandler, container_id: str, spec: dict[str, Any], workdir: Path,
                               ours: list[int]) -> ExecSession:
    console = ConsoleSocket(workdir / "console.sock")
    try:
        process = await handler.exec(container_id, spec, console_socket=console.path, pid_file=workdir / "pid",
                                 stdio=(_DEVNULL, _DEVNULL, asyncio.subprocess.PIPE))
        receiving = asyncio.ensure_future(console.receive())
        exited = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait({receiving, exited}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                assert process.stderr is not None
                message = (await process.stderr.read()).decode(errors="replace").strip()
                raise ContainerRuntimeError(message or f"crun exec exited {process.returncode} "
                                            "before opening a terminal")
            master = receiving.result()
        except BaseException:
            receiving.cancel()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        finally:
            exited.cancel()
        ours.append(master)
        return ExecSession(process, workdir, True, master, {STDOUT: master})
    finally:
        console.close()
