"""The monitor of one container in a gVisor sandbox: conmon's part for runsc.

conmon cannot hold a runsc subcontainer: the container's process lives inside the
sandbox (not a child conmon could wait for) and its stdio are those of `runsc start`.
So this process runs `runsc start` with pipes for stdio, writes what comes out in the
CRI log format, waits for the exit status with `runsc wait`, writes it to the exit file
(as conmon does) and ends. It detaches first, so it outlives the agent like conmon.

Run as `python -m podbay.runtime.gvisormon SYNC_FD LOG EXIT_FILE -- RUNSC [GLOBAL_ARGS...] ID`;
it answers on SYNC_FD with one JSON line: {"data": monitor_pid} or {"data": -1, "message": ...}.
Only the standard library, to start quickly.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from typing import BinaryIO

# After the exit status is known, what is still buffered in the pipes is written out; a
# descendant that holds them open does not hold the exit back longer than this.
DRAIN_SECONDS = 2.0
_MAX_LINE = 16 * 1024  # longer lines are cut into partial (P) records, as conmon does


def _timestamp() -> bytes:
    now = datetime.now(timezone.utc)
    return (now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z").encode()


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


def _exit_status(runsc: list[str], container_id: str, result: list[int]) -> None:
    out = subprocess.run([*runsc, "wait", container_id], capture_output=True, check=False).stdout
    try:
        result.append(int(json.loads(out)["exitStatus"]))
    except (ValueError, KeyError, TypeError):
        result.append(255)  # the sandbox is gone: the container died with it


def run(sync_fd: int, log_path: str, exit_file: str, runsc: list[str], container_id: str) -> int:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = subprocess.run([*runsc, "start", container_id], stdin=subprocess.DEVNULL, stdout=out_w,
                           stderr=err_w, check=False)
    os.close(out_w)
    os.close(err_w)
    log = _CRILog(log_path)
    if start.returncode != 0:
        # Nothing ran: what came out is runsc's own complaint, the caller's error message.
        os.set_blocking(err_r, False)
        try:
            message = os.read(err_r, 65536).decode(errors="replace").strip()
        except BlockingIOError:
            message = ""
        _reply(sync_fd, {"data": -1, "message": message or f"runsc start exited with {start.returncode}"})
        return 1
    _reply(sync_fd, {"data": os.getpid()})
    status: list[int] = []
    waiter = threading.Thread(target=_exit_status, args=(runsc, container_id, status), daemon=True)
    waiter.start()
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, "stdout")
    sel.register(err_r, selectors.EVENT_READ, "stderr")
    deadline: float | None = None
    while sel.get_map():
        if deadline is None and not waiter.is_alive():
            deadline = time.monotonic() + DRAIN_SECONDS
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        # While the container runs, wake now and then to notice its exit even if it left a
        # descendant holding the pipes.
        for key, _ in sel.select(timeout=0.2 if left is None else left):
            data = os.read(key.fd, 65536)
            if data:
                log.write(key.data, data)
            else:
                sel.unregister(key.fd)
    waiter.join()
    log.flush()
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(status[0]))
    os.replace(tmp, exit_file)
    return 0


def main(argv: list[str]) -> int:
    sync_fd, log_path, exit_file, sep, *rest = argv
    if sep != "--" or len(rest) < 2:
        raise SystemExit("usage: gvisormon SYNC_FD LOG EXIT_FILE -- RUNSC [ARGS...] ID")
    *runsc, container_id = rest
    if os.fork():
        return 0  # the caller waits for this parent only; the monitor goes on detached
    os.setsid()
    return run(int(sync_fd), log_path, exit_file, runsc, container_id)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
