"""A real single-member etcd (Debian's etcd-server) on free loopback ports, for tests."""
from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from tests.ports import free_port, free_ports  # noqa: F401 - the store tests import it from here

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"


class EtcdServer:
    """Started on construction; `stop()` ends it by PID, `start()` runs it again on the
    same data dir and ports (a restart keeps everything etcd had committed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.client_port, self.peer_port = free_ports(2)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        self._log = open(self.root / "etcd.log", "ab")
        self.process = subprocess.Popen(
            [ETCD, "--name", "test", "--data-dir", str(self.data_dir),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"test={peer}",
             # Progress notifications (the store's bookmarks) within a test's patience, not 10 min.
             "--experimental-watch-progress-notify-interval", "500ms"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see {self.root / 'etcd.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if b'"true"' in resp.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd did not become healthy; see {self.root / 'etcd.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def etcdctl(self, *args: str) -> str:
        return subprocess.run([ETCDCTL, f"--endpoints={self.url}", *args], check=True, capture_output=True,
                              text=True, env={"ETCDCTL_API": "3"}, timeout=30).stdout


class EtcdCluster:
    """A real etcd cluster of `size` members on free loopback ports, each its own process and
    data dir. `kill(i)` ends member i with SIGKILL by PID (a crashed machine); `start(i)` runs it
    again on its data dir, rejoining the cluster it was part of."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.names = [f"m{i}" for i in range(size)]
        ports = free_ports(2 * len(self.names))
        self.client_ports, self.peer_ports = ports[:len(self.names)], ports[len(self.names):]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size
        self._logs: list[IO[bytes] | None] = [None] * size
        root.mkdir(parents=True, exist_ok=True)
        self._initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports))
        try:
            for i in range(size):
                self._spawn(i)
            for i in range(size):
                self._wait_healthy(i)
        except BaseException:
            self.stop()
            raise

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.client_ports[i]}"

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(len(self.names))]

    @property
    def servers(self) -> str:
        """Every member's client URL, as `--etcd-servers` takes them."""
        return ",".join(self.urls)

    def _spawn(self, i: int) -> None:
        peer = f"http://127.0.0.1:{self.peer_ports[i]}"
        log = self._logs[i] = open(self.root / f"{self.names[i]}.log", "ab")
        self.processes[i] = subprocess.Popen(
            [ETCD, "--name", self.names[i], "--data-dir", str(self.root / self.names[i]),
             "--listen-client-urls", self.url(i), "--advertise-client-urls", self.url(i),
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", self._initial, "--initial-cluster-token", "podbay-test",
             "--experimental-watch-progress-notify-interval", "500ms"],
            stdout=log, stderr=subprocess.STDOUT,
        )

    def _wait_healthy(self, i: int) -> None:
        """Until member i answers /health true, which needs the cluster to have a leader."""
        process = self.processes[i]
        assert process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"etcd {self.names[i]} exited with {process.returncode}; see {self.root}")
            try:
                with urllib.request.urlopen(f"{self.url(i)}/health", timeout=2) as resp:
                    if b'"true"' in resp.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"etcd {self.names[i]} did not become healthy; see {self.root}")

    def start(self, i: int) -> None:
        self._spawn(i)
        self._wait_healthy(i)

    def kill(self, i: int) -> None:
        process = self.processes[i]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.processes[i] = None
        log = self._logs[i]
        if log is not None:
            log.close()
            self._logs[i] = None

    def stop(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.processes[i] = None
            log = self._logs[i]
            if log is not None:
                log.close()
                self._logs[i] = None
