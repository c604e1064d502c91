"""`get -w` and `logs -f` on the lean read path, against a running server with real pods: the
rows kubectl prints for the listed objects and then for each change (ADDED, MODIFIED, DELETED as
plain rows, no header again), with the same row functions `get` uses; and a followed log, line by
line as the container writes it, until the container ends."""
from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.cli.podbay_cli import ROOT, podbay_cli, wait_until
from tests.conftest import HostEnv, require_root

pytestmark = pytest.mark.e2e

ALPHA = """
apiVersion: v1
kind: Pod
metadata: {name: alpha, labels: {app: alpha}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: main, image: busybox:1.35, command: [sleep, "3600"]}]
"""
BETA = """
apiVersion: v1
kind: Pod
metadata: {name: beta, labels: {app: beta}}
spec:
  terminationGracePeriodSeconds: 0
  restartPolicy: Never
  containers:
  - {name: main, image: busybox:1.35, command: [sh, -c, "echo one; sleep 5; echo two"]}
  - {name: side, image: busybox:1.35, command: [sh, -c, "echo side; sleep 1"]}
"""
_AGE = re.compile(r"\b\d+[smhd](\d+[smhd])?\b")


def _same_but_ages(text: str) -> str:
    return re.sub(r" +", " ", _AGE.sub("AGE", text))


class Streamed:
    """A podbay process whose stdout lines are read as they come (`podbay get -w`, `logs -f`)."""

    def __init__(self, flags: list[str], *argv: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "podbay", *flags, *argv], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, predicate: Callable[[str], bool], timeout: float = 90.0) -> list[str]:
        """The lines read until one meets `predicate` (all lines so far are kept in .seen)."""
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no such line before the deadline; got {self.seen}"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"the process ended: {self.seen} {self.proc.stderr.read() if self.proc.stderr else ''}"
            got.append(line)
            self.seen.append(line)
            if predicate(line):
                return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the process this test started, by its handle
        self.proc.wait(timeout=30)


def test_get_watch_prints_the_rows_get_prints_then_each_change(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    (tmp_path / "alpha.yaml").write_text(ALPHA)
    (tmp_path / "beta.yaml").write_text(BETA)
    assert "podbay is up" in podbay("up").stdout
    flags = podbay.flags
    watchers: list[Streamed] = []
    try:
        podbay("apply", "-f", str(tmp_path / "alpha.yaml"))
        wait_until(lambda: podbay("get", "pod", "alpha", "-o", "jsonpath={.status.phase}").stdout == "Running")
        listed = podbay("get", "pods").stdout.splitlines(keepends=True)
        wide = podbay("get", "pods", "-A", "-o", "wide").stdout.splitlines(keepends=True)
        plain = Streamed(flags, "get", "pods", "-w")
        everywhere = Streamed(flags, "get", "pods", "-A", "-o", "wide", "--watch")
        only = Streamed(flags, "get", "pods", "--watch-only", "-l", "app=beta")
        named = Streamed(flags, "get", "pod", "alpha", "-w", "-o", "name")
        watchers += [plain, everywhere, only, named]
        # The listed objects as `get` prints them: the same header and row.
        assert [_same_but_ages(x) for x in plain.until(lambda line: line.startswith("alpha"))] == \
            [_same_but_ages(x) for x in listed]
        assert [_same_but_ages(x) for x in everywhere.until(lambda line: " alpha " in line)] == \
            [_same_but_ages(x) for x in wide]

        podbay("apply", "-f", str(tmp_path / "beta.yaml"))
        # Each change a row without a header: Pending, then Running, then Completed.
        rows = plain.until(lambda line: re.match(r"beta +0/2 +Completed ", line) is not None)
        assert all(re.fullmatch(r"beta +\d/2 +\S+ +0 +\S+\n", row) for row in rows), rows
        assert re.match(r"beta +0/2 +Pending +0 ", rows[0]), rows
        assert any(re.match(r"beta +[12]/2 +Running ", row) for row in rows), rows
        # --watch-only: no list; the first change brings the header with it.
        first = only.until(lambda line: line.startswith("beta"))
        assert re.fullmatch(r"NAME +READY +STATUS +RESTARTS +AGE\n", first[0]) and len(first) == 2, first
        only.until(lambda line: re.match(r"beta +0/2 +Completed ", line) is not None)
        everywhere.until(lambda line: re.match(r"default +beta +0/2 +Completed ", line) is not None)
        assert named.until(lambda line: True) == ["pod/alpha\n"]

        podbay("delete", "pod", "alpha")
        # Its deletion: rows of the object as it goes (Terminating), the last as it was deleted.
        plain.until(lambda line: re.match(r"alpha +\S+ +Terminating ", line) is not None)
        named.until(lambda line: line == "pod/alpha\n")
        assert all(not line.startswith("NAME") for line in plain.seen[len(listed):])
        assert all(line.startswith(("default ", "NAMESPACE ")) for line in everywhere.seen)
        assert "pod/beta\n" not in named.seen
    finally:
        for w in watchers:
            w.stop()
        podbay("down", "--purge", check=False)


def test_logs_follow_prints_the_log_as_it_grows_until_the_container_ends(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    (tmp_path / "beta.yaml").write_text(BETA)
    assert "podbay is up" in podbay("up").stdout
    flags = podbay.flags
    try:
        podbay("apply", "-f", str(tmp_path / "beta.yaml"))
        wait_until(lambda: podbay("logs", "beta", "-c", "main", check=False).stdout.startswith("one"))
        follow = Streamed(flags, "logs", "-f", "beta", "-c", "main")
        assert follow.until(lambda line: line == "two\n") == ["one\n", "two\n"]
        assert follow.proc.wait(timeout=60) == 0
        # Followed again after the end: the whole log, and the same defaulting message as `logs`.
        again = subprocess.run([sys.executable, "-m", "podbay", *flags, "logs", "beta", "-f", "--tail", "1"],
                               capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert (again.returncode, again.stdout) == (0, "two\n")
        assert 'Defaulted container "main" out of: main, side' in again.stderr
        stamped = subprocess.run([sys.executable, "-m", "podbay", *flags, "logs", "pod/beta", "-c", "side", "-f",
                                  "--timestamps"], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert stamped.stdout.endswith(" side\n")
        assert stamped.stdout == podbay("logs", "pod/beta", "-c", "side", "--timestamps").stdout
        missing = subprocess.run([sys.executable, "-m", "podbay", *flags, "logs", "-f", "nosuch"],
                                 capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert (missing.returncode, missing.stderr) == (1, 'Error from server (NotFound): pods "nosuch" not found\n')
    finally:
        podbay("down", "--purge", check=False)


QUIET = """
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: main, image: busybox:1.35, command: [sh, -c, "echo hello; exec sleep 3600"]}]
"""


def test_a_followed_log_and_a_watch_whose_clients_left_do_not_hold_up_the_server(
        host_env: HostEnv, tmp_path: Path) -> None:
    # A followed log that writes nothing more never noticed its client had gone: the API server's
    # proxy and the agent's follower stayed, and `podbay down` waited for them and gave up.
    require_root()
    podbay = podbay_cli(host_env)
    (tmp_path / "quiet.yaml").write_text(QUIET)
    assert "podbay is up" in podbay("up").stdout
    try:
        podbay("apply", "-f", str(tmp_path / "quiet.yaml"))
        wait_until(lambda: podbay("logs", "quiet", check=False).stdout == "hello\n")
        follow = Streamed(podbay.flags, "logs", "-f", "quiet")
        watch = Streamed(podbay.flags, "get", "pods", "-w")
        assert follow.until(lambda line: True) == ["hello\n"]
        watch.until(lambda line: line.startswith("quiet"))
        follow.stop()  # the clients leave while their streams are idle
        watch.stop()
        kept = Streamed(podbay.flags, "logs", "-f", "quiet")  # and one is still there at shutdown
        assert kept.until(lambda line: True) == ["hello\n"]
        down = podbay("down", "--purge", check=False)
        assert down.returncode == 0, down.stderr
        assert kept.proc.wait(timeout=60) is not None  # its stream ended with the server
    finally:
        podbay("down", "--purge", check=False)
