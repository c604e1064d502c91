"""One container's process under crun, watched by conmon (CRI-O's oci layer).

conmon creates the container with crun, holds its stdio, writes the CRI log
file and, when the container exits, the exit file; so containers keep running
and their exits are recorded while no podbay process is alive.
"""
from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podbay.runtime.syscalls import finished_before_cancel, run_off_loop
from podbay.runtime.types import ContainerRuntimeError

_PIPE = asyncio.subprocess.PIPE


@dataclass(frozen=True)
class OCIRuntime:
    runtime: str  # crun, or runc
    conmon: str
    root: Path  # crun --root: its state directory
    exits: Path  # conmon --exit-dir: one file per exited container, holding the exit code
    global_args: tuple[str, ...] = ()  # before every subcommand, after --root (runsc's --platform...)
    # crun: a start is its exec fifo written here, as `crun start` does it, without its exec
    fifo_start: bool = False

    async def _run(self, *args: str, check: bool = True) -> tuple[int, str]:
        proc = await run_off_loop([self.runtime, f"--root={self.root}", *self.global_args, *args])
        if check and proc.returncode != 0:
            raise ContainerRuntimeError(_runtime_message(proc.stderr) or f"{self.runtime} {args[0]} failed")
        return proc.returncode, proc.stdout.decode()

    async def create(self, container_id: str, bundle: Path, log_path: Path, *, tty: bool = False,
                     stdin: bool = False, stdin_once: bool = False) -> int:
        """Creates the container (process waiting on `start`) under a new conmon; returns its pid."""
        self.exits.mkdir(parents=True, exist_ok=True)
        (self.exits / container_id).unlink(missing_ok=True)
        read_fd, write_fd = os.pipe()
        args = [
            "--api-version", "1", "-c", container_id, "-u", container_id, "-n", container_id,
            "-r", self.runtime, "-b", str(bundle), "-p", str(bundle / "pidfile"),
            "-P", str(bundle / "conmon.pid"), "-l", f"k8s-file:{log_path}",
            "--exit-dir", str(self.exits), "--socket-dir-path", str(bundle),
            "--persist-dir", str(bundle), "--runtime-arg", f"--root={self.root}",
            *(a for g in self.global_args for a in ("--runtime-arg", g)),
            "--log-level", "error", "--no-sync-log",
        ]
        if tty:
            args.append("-t")
        if stdin:
            args.append("-i")
            if not stdin_once:  # as CRI-O: stdin outlives an attach unless stdinOnce
                args.append("--leave-stdin-open")
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "_OCI_SYNCPIPE": str(write_fd)}
        reply, err = await finished_before_cancel(asyncio.to_thread(
            _run_monitor, [self.conmon, *args], env, bundle, read_fd, write_fd))
        pid = int(reply.get("data", -1)) if reply else -1
        if pid < 0:
            message = reply.get("message") if reply else None
            raise ContainerRuntimeError(_runtime_message((message or err.decode()).encode())
                                        or "container create failed")
        return pid

    async def start(self, container_id: str) -> None:
        """Lets the created container's process run. With `fifo_start`, as `crun start` does:
        one byte into the exec fifo crun's create left in its state directory (which the process
        waits on), the fifo unlinked first (crun's state then says running); crun's start does
        no more for a spec without poststart hooks or a notify socket (podbay's have neither).
        That is one exec of crun fewer per container on the way to Running. If the fifo cannot
        be opened (the process died, so nothing reads it; no such container) `crun start` runs
        and reports crun's own error."""
        if self.fifo_start and await asyncio.to_thread(_write_exec_fifo, self.root / container_id / "exec.fifo"):
            return
        await self._run("start", container_id)

    async def kill(self, container_id: str, sig: int | str = signal.SIGTERM,
                   process: tuple[int, int] | None = None) -> None:
        """Sends `sig` to the container's init. With `process` (its host pid and start time, as
        crun keeps them) the signal goes straight through a pidfd, saving the exec of `crun kill`
        (a stop is on the way of every pod deletion and replace); otherwise through crun."""
        name = sig if isinstance(sig, str) else signal.Signals(sig).name
        number = signal_number(name)
        if process is not None and number is not None and signal_process(*process, number):
            return
        await self._run("kill", container_id, name.removeprefix("SIG"), check=False)

    async def delete(self, container_id: str) -> None:
        await self._run("delete", "--force", container_id, check=False)

    async def state(self, container_id: str) -> dict[str, object] | None:
        code, out = await self._run("state", container_id, check=False)
        return json.loads(out) if code == 0 and out else None

    async def exec(self, container_id: str, process: dict[str, Any], *, console_socket: Path | None = None,
                   pid_file: Path | None = None,
                   stdio: tuple[int, int, int] = (_PIPE, _PIPE, _PIPE)) -> asyncio.subprocess.Process:
        """`process` (an OCI process: args, user with its groups, env, cwd, capabilities...) run
        in the running container; `crun exec` exits with it. Its stdio is `stdio` (pipes by
        default); with `process["terminal"]` its terminal's master goes to `console_socket`.
        `pid_file` receives its host pid."""
        # A memfd rather than a file: nothing to clean up, and crun has read it before it forks.
        fd = os.memfd_create("process.json", os.MFD_CLOEXEC)
        try:
            os.write(fd, json.dumps(process).encode())
            args = ["exec", f"--process=/proc/self/fd/{fd}"]
            if console_socket is not None:
                args.append(f"--console-socket={console_socket}")
            if pid_file is not None:
                args.append(f"--pid-file={pid_file}")
            return await asyncio.create_subprocess_exec(
                self.runtime, f"--root={self.root}", *self.global_args, *args, container_id,
                stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], pass_fds=(fd,))
        finally:
            os.close(fd)

    def exit_code(self, container_id: str) -> int | None:
        try:
            return int((self.exits / container_id).read_text().strip())
        except (OSError, ValueError):
            return None


def _write_exec_fifo(fifo: Path) -> bool:
    """crun's libcrun_status_write_exec_fifo: False if no process holds the fifo's read end."""
    try:
        # Non-blocking: an open for writing with no reader fails (ENXIO) instead of waiting.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fifo.unlink()
        os.write(fd, b"\0")
    except OSError:
        return False  # another start got there first: crun's says what state it is in
    finally:
        os.close(fd)
    return True


async def read_sync_pipe(fd: int) -> dict[str, Any] | None:
    """A monitor's first message on the sync pipe (conmon's, or gvisormon's in its format):
    {"data": pid} or {"data": -1, "message": ...}."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(os.dup(fd), "rb", buffering=0))
    try:
        line = await reader.readline()
    finally:
        transport.close()
    return json.loads(line) if line.strip() else None


def _run_monitor(argv: list[str], env: dict[str, str], cwd: Path, read_fd: int,
                 write_fd: int) -> tuple[dict[str, Any] | None, bytes]:
    """conmon run to its daemonising exit, in a worker thread (see `run_off_loop`): its first message on
    the sync pipe and its stderr. Closes both ends of the pipe."""
    try:
        try:
            proc = subprocess.Popen(argv, env=env, pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb", buffering=0, closefd=False) as pipe:
            line = pipe.readline()
        _, err = proc.communicate()
    finally:
        os.close(read_fd)
    return (json.loads(line) if line.strip() else None), err


def _runtime_message(err: bytes) -> str:
    """The OCI runtime's error words without its log framing: crun's JSON records or runc's
    logfmt lines (`time="..." level=error msg="..."`)."""
    text = err.decode(errors="replace").strip()
    lines = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            lines.append(_logfmt_msg(line))
            continue
        lines.append(str(record.get("msg", line)) if isinstance(record, dict) else line)
    return "; ".join(l for l in lines if l)


def _logfmt_msg(line: str) -> str:
    if not line.startswith("time=") or " msg=" not in line:
        return line
    try:
        fields = dict(f.split("=", 1) for f in shlex.split(line) if "=" in f)
    except ValueError:
        return line
    return fields.get("msg", line)


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with the
    pid it names one process for good, as crun's state file does."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def signal_number(name: str) -> int | None:
    """SIGTERM's or TERM's number; None for a name Python's signal module does not know
    (SIGRTMIN+3), which the runtime's own parser takes."""
    signo = getattr(signal.Signals, name if name.startswith("SIG") else f"SIG{name}", None)
    return None if signo is None else int(signo)


def signal_process(pid: int, start_time: int, sig: int) -> bool:
    """Signals the process `pid` if it is still the one that started at `start_time`; False
    when it is gone or the pid now names another process."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        # Checked after the pidfd is open: from here the fd names that process whatever happens.
        if process_start_time(pid) != start_time:
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
