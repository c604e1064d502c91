"""exec -i, cp both ways and port-forward with every kubectl present: those before 1.30
stream exec over SPDY/3.1, those before 1.31 port-forward over SPDY, the newer ones over
WebSocket (exec) and SPDY tunnelled in a WebSocket (port-forward)."""
from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import re
import termios
from pathlib import Path

import pytest

from podbay.api.formats import load_pods
from podbay.runtime.console import set_window_size, write_all
from tests.e2e.conftest import free_ports
from tests.exec.conftest import ExecTarget
from tests.exec.test_exec_cli_e2e import _controlling_terminal, press_enter_until, read_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", os.path.basename(path)))


VERSIONED = sorted(glob.glob("/usr/lib/google-cloud-sdk/bin/kubectl.1.*"), key=_version)
KUBECTLS = [pytest.param(p, id=os.path.basename(p)) for p in VERSIONED] or [
    pytest.param(None, id="kubectl", marks=pytest.mark.skip(reason="no /usr/lib/google-cloud-sdk/bin/kubectl.1.* present"))]


async def run(argv: list[str], stdin: bytes = b"", timeout: float = 60) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out, err


def kubectl(binary: str | None, target: ExecTarget) -> list[str]:
    assert binary is not None
    return [binary, f"--kubeconfig={target.kubeconfig}"]


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_exec_i_and_cp_both_ways(target: ExecTarget, binary: str | None, tmp_path: Path) -> None:
    k = kubectl(binary, target)
    data = b"".join(b"line %d\n" % i for i in range(3000))  # more than one frame
    code, out, err = await run([*k, "exec", "-i", target.pod, "--", "cat"], data)
    assert (code, out) == (0, data), err
    code, out, err = await run([*k, "exec", target.pod, "--", "sh", "-c", "echo out; echo err >&2; exit 6"])
    assert (code, out, err) == (6, b"out\n", b"err\ncommand terminated with exit code 6\n")

    local = tmp_path / "in.bin"
    local.write_bytes(os.urandom(200_000))
    code, out, err = await run([*k, "cp", str(local), f"{target.pod}:/tmp/in.bin"])
    assert code == 0, err
    code, out, err = await run([*k, "exec", target.pod, "--", "md5sum", "/tmp/in.bin"])
    assert code == 0 and out.split()[0].decode() == hashlib.md5(local.read_bytes()).hexdigest(), err
    back = tmp_path / "back.bin"
    code, out, err = await run([*k, "cp", f"{target.pod}:/tmp/in.bin", str(back)])
    assert code == 0, err
    assert back.read_bytes() == local.read_bytes()


WEB_POD = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: httpd
    image: "busybox:1.35"
    # On the pod's loopback only: reachable through the pod's network namespace, not its IP.
    command: [sh, -c, "mkdir -p /www && echo hello from httpd > /www/index.html && seq 1 100000 > /www/big
                       && exec httpd -f -p 127.0.0.1:8080 -h /www"]
    # Ready once it serves (writing /www/big first takes a while): a forward sooner is refused.
    readinessProbe: {exec: {command: [wget, -q, -O, /dev/null, "http://127.0.0.1:8080/index.html"]}, periodSeconds: 1}
  - name: echo
    image: "busybox:1.35"
    command: [nc, -ll, -p, "7000", -e, cat]
  - name: count
    image: "busybox:1.35"
    command: [nc, -ll, -p, "7001", -e, wc, -c]
  - name: six
    image: "busybox:1.35"
    # IPv6 loopback only: reached after IPv4 is refused, as containerd dials.
    command: [sh, -c, "mkdir -p /six && echo hello over ipv6 > /six/index.html && exec httpd -f -p '[::1]:8086' -h /six"]
    readinessProbe: {exec: {command: [wget, -q, -O, /dev/null, "http://[::1]:8086/"]}, periodSeconds: 1}
"""


class PortForward:
    """`kubectl port-forward` running, its stdout and stderr collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out = b""
        self.err = b""
        self._readers = [asyncio.create_task(self._collect("out")), asyncio.create_task(self._collect("err"))]

    async def _collect(self, which: str) -> None:
        stream = self.proc.stdout if which == "out" else self.proc.stderr
        assert stream is not None
        while chunk := await stream.read(4096):
            setattr(self, which, getattr(self, which) + chunk)

    async def wait_for(self, which: str, wanted: bytes, timeout: float = 30) -> None:
        async def poll() -> None:
            while wanted not in getattr(self, which):
                if all(r.done() for r in self._readers):
                    raise AssertionError(f"kubectl ended without {wanted!r}: {self.out!r} {self.err!r}")
                await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(poll(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"never saw {wanted!r}; stdout {self.out!r}, stderr {self.err!r}") from None

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 30)
        await asyncio.gather(*self._readers, return_exceptions=True)


async def exchange(port: int, send: bytes, *, half_close: bool = True, timeout: float = 30) -> bytes:
    """Sends `send` to 127.0.0.1:`port` (then ends our side), returns all that comes back."""
    async def go() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(send)
            await writer.drain()
            if half_close:
                writer.write_eof()
            return await reader.read()
        finally:
            writer.close()
    return await asyncio.wait_for(go(), timeout)


async def echo(port: int, payload: bytes, timeout: float = 30) -> bytes:
    """Writes `payload` and reads until as many bytes came back, the connection left open."""
    async def go() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(payload)
            await writer.drain()
            return await reader.readexactly(len(payload))
        finally:
            writer.close()
    return await asyncio.wait_for(go(), timeout)


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_port_forward_several_ports_both_ways(target: ExecTarget, binary: str | None) -> None:
    cluster = target.cluster
    await cluster.client.create(load_pods(WEB_POD)[0])
    await cluster.wait_for("web", lambda p: p.status.phase == "Running" and all(
        c.ready for c in p.status.container_statuses or []))
    web, echo_port, count, closed, six = free_ports(5)
    proc = await asyncio.create_subprocess_exec(
        *kubectl(binary, target), "-v=6", "port-forward", "--address=127.0.0.1", "pod/web",
        f"{web}:8080", f"{echo_port}:7000", f"{count}:7001", f"{closed}:7999", f"{six}:8086",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    forward = PortForward(proc)
    try:
        for local, remote in ((web, 8080), (echo_port, 7000), (count, 7001), (closed, 7999), (six, 8086)):
            await forward.wait_for("out", f"Forwarding from 127.0.0.1:{local} -> {remote}".encode())

        reply = await exchange(web, b"GET /index.html HTTP/1.0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.") and reply.endswith(b"\r\n\r\nhello from httpd\n"), reply[:200]
        assert (await exchange(six, b"GET / HTTP/1.0\r\n\r\n")).endswith(b"\r\n\r\nhello over ipv6\n")
        big = await exchange(web, b"GET /big HTTP/1.0\r\n\r\n")
        assert big.split(b"\r\n\r\n", 1)[1] == b"".join(b"%d\n" % i for i in range(1, 100001))

        payload = os.urandom(300_000)
        assert await echo(echo_port, payload) == payload
        results = await asyncio.gather(*(echo(echo_port, b"conn %d\n" % i * 100) for i in range(5)))
        assert results == [b"conn %d\n" % i * 100 for i in range(5)]
        # Our end of input reaches the pod's server as its end of input: it answers after it.
        assert (await exchange(count, b"x" * 50_000)).strip() == b"50000"

        # 1.31 and later tunnel SPDY in a WebSocket (GET); the others upgrade a POST to SPDY.
        assert binary is not None
        upgrade = re.search(rb'(GET|POST)\W+(?:url=")?https://\S+/portforward\S*\W+(?:status=")?101', forward.err)
        assert upgrade is not None, forward.err
        assert upgrade.group(1) == (b"GET" if _version(binary) >= (1, 31) else b"POST")

        assert await exchange(closed, b"anyone?") == b""
        await forward.wait_for("err", b"error forwarding port 7999 to pod web")
        await forward.wait_for("err", b"IPv4: dial tcp4 127.0.0.1:7999: connect: connection refused")
    finally:
        await forward.stop()


CAT_POD = """
apiVersion: v1
kind: Pod
metadata: {name: cat}
spec:
  terminationGracePeriodSeconds: 0
  restartPolicy: Never
  containers: [{name: cat, image: "busybox:1.35", command: [cat], stdin: true, stdinOnce: true}]
"""


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_attach_i_echoes_through_the_containers_own_stdin(target: ExecTarget, binary: str | None) -> None:
    cluster = target.cluster
    await cluster.client.create(load_pods(CAT_POD)[0])
    await cluster.wait_for("cat", lambda p: p.status.phase == "Running")
    code, out, err = await run([*kubectl(binary, target), "attach", "-i", "cat"], b"hello through attach\n")
    # Our end of input is cat's: it echoes the line and exits, which ends the attach.
    assert (code, out) == (0, b"hello through attach\n"), err
    pod = await cluster.wait_for("cat", lambda p: p.status.phase == "Succeeded")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0


SH_POD = """
apiVersion: v1
kind: Pod
metadata: {name: term}
spec:
  terminationGracePeriodSeconds: 0
  restartPolicy: Never
  containers: [{name: sh, image: "busybox:1.35", command: [sh], stdin: true, tty: true}]
"""
# The oldest (SPDY) and the newest (WebSocket) present.
ENDS = [KUBECTLS[0], KUBECTLS[-1]] if len(KUBECTLS) > 1 else KUBECTLS


async def type_until(fd: int, keys: bytes, wanted: bytes) -> None:
    """Types `keys` until `wanted` shows."""
    async def typing() -> None:
        while True:
            await write_all(fd, keys)
            await asyncio.sleep(0.3)
    task = asyncio.create_task(typing())
    try:
        await read_until(fd, wanted)
    finally:
        task.cancel()


@pytest.mark.parametrize("binary", ENDS)
async def test_exec_it_and_attach_it_follow_our_terminal(target: ExecTarget, binary: str | None) -> None:
    cluster = target.cluster
    await cluster.client.create(load_pods(SH_POD)[0])
    await cluster.wait_for("term", lambda p: p.status.phase == "Running")
    k = kubectl(binary, target)
    for argv, done in (([*k, "exec", "-it", target.pod, "--", "sh", "-c", "while read l; do stty size; done; exit 3"], 3),
                       ([*k, "attach", "-it", "term"], 0)):
        master, slave = os.openpty()
        try:
            os.set_blocking(master, False)
            set_window_size(master, 111, 33)
            before = termios.tcgetattr(slave)
            proc = await asyncio.create_subprocess_exec(*argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                                                        start_new_session=True, preexec_fn=_controlling_terminal)
            if argv[len(k)] == "exec":
                await press_enter_until(master, b"33 111")
                set_window_size(master, 120, 44)
                await press_enter_until(master, b"44 120")
                await write_all(master, b"\x04")  # ^D: the remote terminal's end of input
            else:
                # kubectl attach sends a size one larger, then the real one (to make the
                # shell redraw): the line typed in between may see either.
                await type_until(master, b"stty size\r", b"33 111")
                set_window_size(master, 120, 44)
                await type_until(master, b"stty size\r", b"44 120")  # the attached shell's own terminal
                await write_all(master, b"exit\r")
            assert await asyncio.wait_for(proc.wait(), 30) == done
            assert termios.tcgetattr(slave) == before
        finally:
            os.close(master)
            os.close(slave)
