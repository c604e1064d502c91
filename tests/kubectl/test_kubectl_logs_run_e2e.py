"""kubectl logs --since, -l across several pods, --all-containers; run --rm -i -t under a real
pseudo-terminal; debug --copy-to (a whole pod sent as protobuf by kubectl 1.32+) and drain (its
DeleteOptions in protobuf) — over every kubectl present, on real pods."""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import struct
import termios

from podbay.api.formats import load_pods
from tests.kubectl.conftest import Kubectl, Result

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: multi, labels: {app: logs}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: a, image: "busybox:1.35", command: [sh, -c, "echo a-line; exec sleep 3600"]}
  - {name: b, image: "busybox:1.35", command: [sh, -c, "echo b-line; exec sleep 3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: single, labels: {app: logs}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: "busybox:1.35", command: [sh, -c, "echo c-line; exec sleep 3600"]}
"""


def _ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


class Terminal:
    """kubectl on the slave side of a pseudo-terminal; what it writes is collected from the master."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.output = bytearray()
        self.changed = asyncio.Event()
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, start_new_session=True)
        os.close(self.slave)
        asyncio.get_running_loop().add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: every holder of the slave side is gone
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.output += data
        self.changed.set()

    async def expect(self, text: bytes, timeout: float = 90) -> None:
        async def seen() -> None:
            while text not in self.output:
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(seen(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{text!r} never appeared; the terminal shows {bytes(self.output)!r}") from None

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    async def close(self) -> int:
        assert self.process is not None
        try:
            code = await asyncio.wait_for(self.process.wait(), 90)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
        return code


async def test_kubectl_logs_since_selector_and_all_containers(kubectl: Kubectl) -> None:
    for pod in load_pods(PODS):
        await kubectl.cluster.client.create(pod)
    for name in ("multi", "single"):
        await kubectl.cluster.wait_for(name, lambda p: p.status.phase == "Running")

    both = await kubectl.until("logs", "multi", "--all-containers=true",
                               check=lambda r: r.code == 0 and {"a-line", "b-line"} <= set(r.out.split()))
    assert sorted(both.out.split()) == ["a-line", "b-line"], both
    every = _ok(await kubectl("logs", "-l", "app=logs", "--all-containers=true"))
    assert sorted(every.out.split()) == ["a-line", "b-line", "c-line"], every
    prefixed = _ok(await kubectl("logs", "-l", "app=logs", "--all-containers=true", "--prefix"))
    assert "[pod/single/c] c-line" in prefixed.out.splitlines(), prefixed

    # --since: the line stays within the last hour and falls out of the last second once it is older.
    assert _ok(await kubectl("logs", "single", "--since=1h")).out == "c-line\n"
    assert _ok(await kubectl("logs", "multi", "-c", "b", "--limit-bytes=3")).out == "b-l"
    await kubectl.until("logs", "single", "--since=1s", check=lambda r: r.code == 0 and r.out == "")
    assert _ok(await kubectl("logs", "single", "--since=1h")).out == "c-line\n"


async def test_kubectl_run_rm_it_under_a_terminal_and_debug_copy_to(kubectl: Kubectl) -> None:
    argv = [kubectl.binary, f"--kubeconfig={kubectl.cluster.settings.kubeconfig}", f"--cache-dir={kubectl.cache}",
            "run", "shell", "--image=busybox:1.35", "--rm", "-i", "-t", "--restart=Never", "--", "sh"]
    terminal = Terminal(argv)
    await terminal.start()
    try:
        await terminal.expect(b"# ")  # the shell's prompt, through kubectl's attach
        terminal.type(b"echo tty-$((40+2)); tty\r")
        await terminal.expect(b"tty-42")
        await terminal.expect(b"/dev/pts/")
        terminal.type(b"exit 0\r")
    finally:
        code = await terminal.close()
    assert code == 0, bytes(terminal.output)
    assert b'pod "shell" deleted' in terminal.output, bytes(terminal.output)
    await kubectl.until("get", "pods", "-o", "name", check=lambda r: r.code == 0 and "pod/shell" not in r.out)

    await kubectl.cluster.client.create(load_pods(PODS)[1])
    await kubectl.cluster.wait_for("single", lambda p: p.status.phase == "Running")
    copied = _ok(await kubectl("debug", "single", "--copy-to=single-copy", "--image=busybox:1.35",
                               "--container=dbg", "--", "sh", "-c", "echo copied; exec sleep 3600"))
    assert copied.code == 0
    await kubectl.until("logs", "single-copy", "-c", "dbg", check=lambda r: r.code == 0 and r.out == "copied\n")
    pod = json.loads(_ok(await kubectl("get", "pod", "single-copy", "-o", "json")).out)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["c", "dbg"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 0, pod["spec"]

    # drain: kubectl 1.32+ deletes each pod with protobuf DeleteOptions.
    [node] = _ok(await kubectl("get", "nodes", "-o", "name")).out.split()
    drained = _ok(await kubectl("drain", node, "--force", "--grace-period=0", "--timeout=60s"))
    assert f"{node} drained" in drained.out and "pod/single-copy deleted" in drained.out, drained
    await kubectl.until("get", "pods", "-o", "name", check=lambda r: r.code == 0 and r.out == "")
    _ok(await kubectl("uncordon", node))
    assert _ok(await kubectl("get", node, "-o", "jsonpath={.spec.unschedulable}")).out == ""
