"""The monitor of one container in a gVisor sandbox: conmon's part for runsc.

conmon cannot hold a runsc subcontainer: the container's process lives inside the
sandbox (not a child conmon could wait for) and its stdio are those of `runsc start`.
So this process runs `runsc start` with pipes for stdio, writes what comes out in the
CRI log format, waits for the exit status (the sandbox's containerManager.Wait, through
gvisorctl, as `runsc wait` asks it but without a runsc process held for the container's life),
writes it to the exit file
(as conmon does) and ends. It detaches first, so it outlives the agent like conmon.
When the sandbox died of the host's OOM killer (`--oom-events`, its memory cgroup's count),
the exit is 137 with conmon's `oom` mark in the bundle, as conmon marks a container's.

It serves conmon's attach socket and control fifo in the bundle too, with the container's
terminal (a master fd runsc sent at create, `--terminal FD`) or a stdin pipe (`--stdin`).

Run as `python -I -S gvisormon.py SYNC_FD LOG EXIT_FILE --sandbox SANDBOX_ID --runsc-root DIR [--go-fd FD]
[--terminal FD] [--stdin] [--stdin-once] [--oom-events FILE] -- RUNSC [GLOBAL_ARGS...] ID`;
it answers on SYNC_FD with one JSON line: {"data": monitor_pid} or {"data": -1, "message": ...}.
With --go-fd it is started with the container's create and waits there for one byte before it
runs `runsc start`; end of file instead (the container deleted unstarted, or its caller gone)
ends it.
Only the standard library, to start quickly: it runs as a script without site-packages
(`python -I -S`; -I also keeps its own directory, whose types.py is not the standard one, off
sys.path), ~100 ms sooner than through the package. And only the modules it cannot do without,
as each adds to the heap it holds for its container's life: not subprocess, threading, datetime
or typing (their imports were 1.3 MiB of each monitor's 7 MiB PSS, two monitors a pod).
"""
from __future__ import annotations

import _thread
import contextlib
import errno
import fcntl
import importlib.util
import json
import os
import selectors
import signal
import socket
import struct
import termios
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without typing's import
if TYPE_CHECKING:
    from typing import BinaryIO

    from podbay.runtime.gvisorctl import SandboxControl

# After the exit status is known, what is still buffered in the pipes is written out; a
# descendant that holds them open does not hold the exit back longer than this.
DRAIN_SECONDS = 2.0
_MAX_LINE = 16 * 1024  # longer lines are cut into partial (P) records, as conmon does
_PACKET = 8192 + 1  # as conmon's: at most 8192 bytes of one read, plus the pipe byte
_SEND_TIMEOUT = 1.0


def _timestamp() -> bytes:
    """RFC 3339 in UTC with nanoseconds, as the CRI log format's."""
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)) + f"{nanoseconds:09d}Z").encode()


class _CRILog:
    def __init__(self, path: str) -> None:
        self.file: BinaryIO = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
        self.pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.pending[stream] + data
        while True:
            line, newline, rest = buf.partition(b"\n")
            if newline:
                self._record(stream, b"F", line)
                buf = rest
            elif len(buf) >= _MAX_LINE:
                self._record(stream, b"P", buf[:_MAX_LINE])
                buf = buf[_MAX_LINE:]
            else:
                break
        self.pending[stream] = buf

    def flush(self) -> None:
        for stream, buf in self.pending.items():
            if buf:
                self._record(stream, b"P", buf)
            self.pending[stream] = b""

    def _record(self, stream: str, tag: bytes, content: bytes) -> None:
        self.file.write(b" ".join((_timestamp(), stream.encode(), tag, content)) + b"\n")


def _reply(sync_fd: int, message: dict[str, object]) -> None:
    os.write(sync_fd, json.dumps(message).encode() + b"\n")
    os.close(sync_fd)


# The exit of a container whose sandbox is gone, so that `runsc wait` has no status for it.
_SANDBOX_GONE = 255
_OOM_KILLED = 128 + 9  # the host's OOM killer sends SIGKILL


def _oom_kills(events_file: str) -> int:
    """The `oom_kill N` count of the sandbox's memory cgroup (memory.events or memory.oom_control)."""
    try:
        with open(events_file) as f:
            return next((int(line.split()[1]) for line in f if line.startswith("oom_kill ")), 0)
    except (OSError, ValueError, IndexError):
        return 0


def _control(sandbox_id: str, runsc_root: str) -> SandboxControl:
    """The sandbox's control client, from gvisorctl's file beside this one: the package is not
    importable here (-I -S), and gvisorctl needs only the standard library."""
    # The source's path, which compiling recorded: the runtime runs this from a compiled copy.
    here = os.path.dirname(_control.__code__.co_filename)
    spec = importlib.util.spec_from_file_location("gvisorctl", os.path.join(here, "gvisorctl.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # where its classes' module is looked up
    spec.loader.exec_module(module)
    control: SandboxControl = module.SandboxControl(sandbox_id, runsc_root)
    return control


def _exit_status(control: SandboxControl, container_id: str, oom_events: str | None, result: list[int]) -> None:
    status = control.wait(container_id)
    if status is not None:
        result.append(status)
    else:
        # The sandbox is gone: the container died with it. Over the pod's memory limit the host's
        # OOM killer took its kernel, which the kubelet reports as each container's OOMKilled
        # (containerd's runsc shim watches the sandbox's cgroup and tells every container).
        if oom_events is not None and _oom_kills(oom_events) > 0:
            with open("oom", "w"):  # conmon's mark in the bundle (the cwd), which the runtime reads
                pass
            result.append(_OOM_KILLED)
        else:
            result.append(_SANDBOX_GONE)


class _Attach:
    """conmon's attach socket and control fifo in the bundle (podbay.runtime.attach is their
    client): every read of the container's output goes to each attached client as one packet,
    its first byte the pipe (2 stdout, 3 stderr); what a client sends is the container's input;
    `1 HEIGHT WIDTH` lines on the fifo resize its terminal."""

    def __init__(self, sel: selectors.BaseSelector, stdin_fd: int | None, terminal: int | None,
                 stdin_once: bool) -> None:
        self.sel = sel
        self.stdin_fd = stdin_fd  # the terminal's master, or the write end of the stdin pipe
        self.terminal = terminal
        self.stdin_once = stdin_once
        self.clients: list[socket.socket] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind("attach")  # relative to the bundle (the cwd): its path may exceed sun_path
        self.listener.listen(8)
        self.listener.setblocking(False)
        sel.register(self.listener, selectors.EVENT_READ, self._accept)
        if terminal is not None:
            os.mkfifo("ctl", 0o600)
            # Read and write: the fifo never reads end of file while no writer has it open.
            self.ctl = os.open("ctl", os.O_RDWR | os.O_NONBLOCK)
            sel.register(self.ctl, selectors.EVENT_READ, self._control)

    def _accept(self, _: object) -> None:
        with contextlib.suppress(BlockingIOError):
            client, _addr = self.listener.accept()
            client.settimeout(_SEND_TIMEOUT)
            self.clients.append(client)
            self.sel.register(client, selectors.EVENT_READ, lambda _: self._input(client))

    def _input(self, client: socket.socket) -> None:
        try:
            data = client.recv(_PACKET)
        except OSError:
            data = b""
        if data:
            if self.stdin_fd is not None:
                with contextlib.suppress(OSError):  # the container closed its stdin
                    os.write(self.stdin_fd, data)
            return
        self._drop(client)
        if self.stdin_once and self.terminal is None and self.stdin_fd is not None:
            os.close(self.stdin_fd)  # the first attach's end of input is the container's
            self.stdin_fd = None

    def _control(self, _: object) -> None:
        with contextlib.suppress(BlockingIOError):
            for line in os.read(self.ctl, 4096).decode(errors="replace").splitlines():
                kind, _sep, size = line.partition(" ")
                if kind == "1" and self.terminal is not None:
                    height, width = (int(v) for v in size.split())
                    fcntl.ioctl(self.terminal, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def _drop(self, client: socket.socket) -> None:
        self.sel.unregister(client)
        self.clients.remove(client)
        client.close()

    def output(self, stream: str, data: bytes) -> None:
        pipe = b"\x02" if stream == "stdout" else b"\x03"
        for client in list(self.clients):
            try:
                for i in range(0, len(data), _PACKET - 1):
                    client.send(pipe + data[i:i + _PACKET - 1])
            except OSError:  # gone, or not reading: an attach never holds the container back
                self._drop(client)

    def close(self) -> None:
        for client in list(self.clients):
            self._drop(client)
        self.listener.close()


def _read(fd: int) -> bytes:
    """A read; a terminal's master whose slave is closed reads EIO: its end of file."""
    try:
        return os.read(fd, 65536)
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


def _complaint(err_r: int) -> str:
    """What `runsc start` wrote before failing: nothing ran, so it is runsc's own complaint, the
    caller's error message."""
    os.set_blocking(err_r, False)
    try:
        return os.read(err_r, 65536).decode(errors="replace").strip()
    except BlockingIOError:
        return ""


def _relay(sel: selectors.BaseSelector, streams: dict[int, str], status: list[int], log: _CRILog,
           attach: _Attach) -> None:
    """The container's output to its log and attached clients, and clients' input to it, until its
    pipes close, or for DRAIN_SECONDS more once its exit status is known (in `status`)."""
    for fd in streams:
        sel.register(fd, selectors.EVENT_READ)
    deadline: float | None = None
    while streams:
        if deadline is None and status:
            deadline = time.monotonic() + DRAIN_SECONDS
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        for key, _ in sel.select(timeout=left):
            if key.data is not None:
                key.data(key.fileobj)
                continue
            fd = int(key.fd)
            data = _read(fd)
            if data:
                log.write(streams[fd], data)
                attach.output(streams[fd], data)
            else:
                sel.unregister(fd)
                del streams[fd]


def _run_start(argv: list[str], stdin: int, stdout: int, stderr: int) -> int:
    """`runsc start`'s exit code; posix_spawn, not subprocess, whose import is 0.9 MiB of heap.
    The signals Python ignores are reset for it, as subprocess's restore_signals does."""
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1), (os.POSIX_SPAWN_DUP2, stderr, 2)],
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _write_exit(exit_file: str, status: int) -> None:
    """Renamed into place: the runtime reads an exit file only whole, as conmon writes it."""
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(status))
    os.replace(tmp, exit_file)


def run(sync_fd: int, log_path: str, exit_file: str, runsc: list[str], container_id: str, control: SandboxControl,
        *, terminal: int | None = None, stdin: bool = False, stdin_once: bool = False,
        oom_events: str | None = None) -> int:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    # A terminal was handed to the sandbox at create: runsc start's stdio are then unused.
    in_r, in_w = os.pipe() if stdin and terminal is None else (os.open(os.devnull, os.O_RDONLY), None)
    sel = selectors.DefaultSelector()
    # Listening before the container runs: an attach may come as soon as the caller hears it started.
    attach = _Attach(sel, terminal if terminal is not None else in_w, terminal, stdin_once)
    returncode = _run_start([*runsc, "start", container_id], in_r, out_w, err_w)
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    log = _CRILog(log_path)
    if returncode != 0:
        _reply(sync_fd, {"data": -1, "message": _complaint(err_r) or f"runsc start exited with {returncode}"})
        attach.close()
        return 1
    _reply(sync_fd, {"data": os.getpid()})
    status: list[int] = []
    # The exit status wakes the relay as soon as it is known (a stop waits for this
    # monitor's exit), even while a descendant holds the pipes or the sandbox the terminal.
    wake_r, wake_w = os.pipe()
    sel.register(wake_r, selectors.EVENT_READ, lambda _: sel.unregister(wake_r))
    waited = _thread.allocate_lock()
    waited.acquire()

    def wait_exit() -> None:
        try:
            _exit_status(control, container_id, oom_events, status)
        finally:
            if not status:  # the wait itself failed: the container's status is unknowable
                status.append(_SANDBOX_GONE)
            os.write(wake_w, b"x")
            waited.release()

    _thread.start_new_thread(wait_exit, ())
    streams = {out_r: "stdout", err_r: "stderr"}
    if terminal is not None:
        streams[terminal] = "stdout"  # a terminal is all stdout, as under conmon
    _relay(sel, streams, status, log, attach)
    waited.acquire()
    log.flush()
    attach.close()
    _write_exit(exit_file, status[0])
    return 0


def main(argv: list[str]) -> int:
    sync_fd, log_path, exit_file, *rest = argv
    terminal: int | None = None
    oom_events: str | None = None
    sandbox_id = runsc_root = ""
    go: int | None = None
    stdin = stdin_once = False
    while rest and rest[0] != "--":
        flag, *rest = rest
        if flag == "--go-fd":
            value, *rest = rest
            go = int(value)
        elif flag == "--terminal":
            value, *rest = rest
            terminal = int(value)
        elif flag == "--oom-events":
            oom_events, *rest = rest
        elif flag == "--sandbox":
            sandbox_id, *rest = rest
        elif flag == "--runsc-root":
            runsc_root, *rest = rest
        elif flag in ("--stdin", "--stdin-once"):
            stdin, stdin_once = True, stdin_once or flag == "--stdin-once"
        else:
            raise SystemExit(f"gvisormon: unknown flag {flag}")
    if len(rest) < 3 or not sandbox_id or not runsc_root:
        raise SystemExit("usage: gvisormon SYNC_FD LOG EXIT_FILE --sandbox ID --runsc-root DIR [--go-fd FD] "
                         "[--terminal FD] [--stdin] [--stdin-once] [--oom-events FILE] -- RUNSC [ARGS...] ID")
    *runsc, container_id = rest[1:]
    # Held by this process only, as subprocess's close_fds kept them from `runsc start`.
    for fd in (int(sync_fd), terminal):
        if fd is not None:
            os.set_inheritable(fd, False)
    control = _control(sandbox_id, runsc_root)  # loaded while the container is created, before its start
    if go is not None:
        started = os.read(go, 1)
        os.close(go)
        if not started:
            return 0
    if os.fork():
        return 0  # the caller waits for this parent only; the monitor goes on detached
    os.setsid()
    status = run(int(sync_fd), log_path, exit_file, runsc, container_id, control, terminal=terminal, stdin=stdin,
                 stdin_once=stdin_once, oom_events=oom_events)
    # The caller's stop waits for this process's exit, and everything is written (the log and exit
    # files unbuffered or closed): the interpreter's teardown would only delay it (50-100 ms on
    # two loaded cores).
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
