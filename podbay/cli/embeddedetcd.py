"""`podbay up --embedded-etcd`: a one-member etcd (Debian's etcd-server) of the server's own.

The all-in-one starts it before its store and stops it after, so the first machine of a cluster
keeps its objects in etcd without running etcd by hand. It listens on loopback only (etcd here
has no TLS or authentication, and the store is every Secret): other machines join through the
API server, never etcd. Its PID is kept in `<run-root>/etcd.pid`: an all-in-one that was killed
and is started again finds its etcd still running and uses it instead of starting a second.
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from podbay.cli.settings import Settings

ETCD_READY_TIMEOUT = 60.0
ETCD_STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class EmbeddedEtcd:
    data_dir: Path
    pidfile: Path
    logfile: Path
    client_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        # The next port, as etcd's own defaults (2379 clients, 2380 peers).
        return f"http://127.0.0.1:{self.client_port + 1}"


def embedded_etcd(settings: Settings, client_port: int) -> EmbeddedEtcd:
    return EmbeddedEtcd(settings.state_root / "etcd", settings.run_root / "etcd.pid",
                        settings.state_root / "etcd.log", client_port)


def _running_pid(etcd: EmbeddedEtcd) -> int | None:
    """The etcd our pidfile names, if that process is still this data dir's etcd."""
    try:
        pid = int(etcd.pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(etcd.data_dir).encode() in cmdline else None


def _healthy(etcd: EmbeddedEtcd) -> bool:
    try:
        with urllib.request.urlopen(f"{etcd.url}/health", timeout=2) as resp:
            return b'"true"' in resp.read()
    except (urllib.error.URLError, OSError):
        return False


def start_etcd(etcd: EmbeddedEtcd, name: str) -> int:
    """Starts etcd (or finds the one a killed server left running) and waits until it is healthy;
    its PID. Raises SystemExit with the end of its log when it does not come up."""
    binary = shutil.which("etcd")
    if binary is None:
        raise SystemExit("--embedded-etcd needs etcd: apt-get install etcd-server (scripts/setup.sh does)")
    pid = _running_pid(etcd)
    process: subprocess.Popen[bytes] | None = None
    if pid is None:
        etcd.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(etcd.logfile, "ab") as log:
            process = subprocess.Popen(
                [binary, "--name", name, "--data-dir", str(etcd.data_dir),
                 "--listen-client-urls", etcd.url, "--advertise-client-urls", etcd.url,
                 "--listen-peer-urls", etcd.peer_url, "--initial-advertise-peer-urls", etcd.peer_url,
                 "--initial-cluster", f"{name}={etcd.peer_url}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for a foreground server reaches etcd only through us.
                start_new_session=True)
        pid = process.pid
        etcd.pidfile.write_text(f"{pid}\n")
    deadline = time.monotonic() + ETCD_READY_TIMEOUT
    while not _healthy(etcd):
        # Our own child is asked directly: its /proc cmdline can read empty for a moment while it
        # starts, which the check for an etcd found running would take for its end.
        alive = process.poll() is None if process is not None else _running_pid(etcd) is not None
        if not alive or time.monotonic() > deadline:
            tail = "\n".join(etcd.logfile.read_text(errors="replace").splitlines()[-10:])
            stop_etcd(etcd, pid)
            raise SystemExit(f"the embedded etcd did not become healthy at {etcd.url}; the end of {etcd.logfile}:\n"
                             f"{tail}")
        time.sleep(0.1)
    return pid


def stop_etcd(etcd: EmbeddedEtcd, pid: int | None = None) -> None:
    """SIGTERM to our etcd by its PID (`pid`, or the one the pidfile names if that is still this
    data dir's etcd), waiting until it has gone (it flushes its WAL)."""
    pid = pid or _running_pid(etcd)
    if pid is not None:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is not None:
            try:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                select.select([pidfd], [], [], ETCD_STOP_TIMEOUT)  # readable once it has exited
            finally:
                os.close(pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our child when this process started it: reap it
    etcd.pidfile.unlink(missing_ok=True)
