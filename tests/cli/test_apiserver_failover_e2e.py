"""Two `podbay apiserver` processes on one real etcd, and clients given both URLs: SIGKILL the
first and the CLI, `podbay scheduler`, a client's watch and a joined `podbay agent` go on
through the second, the watch seeing every event exactly once."""
from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest

from podbay.api import ConfigMap, Lease, Node, Pod
from podbay.api.errors import NotFound
from podbay.api.serialize import from_dict
from podbay.apiserver.embedded import serve_embedded
from podbay.client import Client
from podbay.runtime.service import RuntimeService
from podbay.security.pki import server_context
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import free_port, settings_for
from tests.etcd_server import EtcdCluster, EtcdServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Process:
    """A `podbay` process this test started; ended by its PID only."""

    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ApiServer:
    process: Process
    url: str
    state_root: Path

    @property
    def kubeconfig(self) -> Path:
        return self.state_root / "kubeconfig"

    @property
    def join_token(self) -> str:
        return (self.state_root / "node-token").read_text().strip()


Start = Callable[..., Process]


def wait_until(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not before the deadline"
        time.sleep(0.1)


async def eventually(check: Callable[[], Awaitable[object]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not before the deadline"
        await asyncio.sleep(0.1)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[Process] = []

    def run(name: str, *args: str) -> Process:
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen([sys.executable, "-m", "podbay", *args], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        started.append(Process(popen, log))
        return started[-1]

    yield run
    for p in reversed(started):
        p.stop()


def start_apiserver(start: Start, tmp_path: Path, name: str, etcd: EtcdServer | EtcdCluster,
                    first: ApiServer | None = None, port: int | None = None) -> ApiServer:
    """`podbay apiserver` NAME; again on its earlier `port` and state after it was killed."""
    state = tmp_path / name / "state"
    if first is not None and not (state / "pki").exists():
        # What a second control-plane machine is given: the cluster's PKI and token.
        shutil.copytree(first.state_root / "pki", state / "pki")
        shutil.copy2(first.state_root / "api-token", state / "api-token")
    port = port or free_port()
    process = start(name, "--state-root", str(state), "--run-root", str(tmp_path / name / "run"),
                    "--api-port", str(port), "--etcd-servers",
                    etcd.servers if isinstance(etcd, EtcdCluster) else etcd.url, "apiserver")
    wait_until(lambda: "podbay apiserver serving on" in process.text() or process.popen.poll() is not None,
               f"{name} serving")
    assert process.popen.poll() is None, process.text()
    return ApiServer(process, f"https://127.0.0.1:{port}", state)


@pytest.fixture
def two_apiservers(start: Start, tmp_path: Path, etcd_server: EtcdServer) -> tuple[ApiServer, ApiServer]:
    a = start_apiserver(start, tmp_path, "apiserver-a", etcd_server)
    return a, start_apiserver(start, tmp_path, "apiserver-b", etcd_server, first=a)


@pytest.fixture
async def client(two_apiservers: tuple[ApiServer, ApiServer]) -> AsyncIterator[Client]:
    a, b = two_apiservers
    c = Client.from_kubeconfig(a.kubeconfig, server=[a.url, b.url])
    try:
        yield c
    finally:
        await c.close()


async def bound(client: Client, name: str) -> str:
    return (await client.get(Pod, name, "default")).spec.node_name or ""


def a_pod(name: str, command: list[str] | None = None) -> Pod:
    container: dict[str, object] = {"name": "c", "image": "busybox:1.35"}
    if command:
        container["command"] = command
    return from_dict(Pod, {"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 0,
                                                                 "containers": [container]}})


async def test_clients_go_on_through_the_second_server_when_the_first_is_killed(
        two_apiservers: tuple[ApiServer, ApiServer], client: Client, start: Start, tmp_path: Path) -> None:
    a, b = two_apiservers
    assert a.join_token == b.join_token  # the same CA and token: one credential for both
    both = f"{a.url},{b.url}"

    async def cli(*args: str, server: str = both) -> subprocess.CompletedProcess[str]:
        # In a thread: the watch below goes on meanwhile.
        return await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "podbay", "--kubeconfig", str(a.kubeconfig), "--server", server,
                             *args], capture_output=True, text=True, cwd=ROOT, timeout=60)

    await client.create(from_dict(Node, {"metadata": {"name": "node-a"}, "status": {
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]}}))
    scheduler = start("scheduler", "--state-root", str(tmp_path / "scheduler"), "--run-root",
                      str(tmp_path / "scheduler-run"), "--server", both, "scheduler", "--token", a.join_token)
    await client.create(a_pod("before"))
    await eventually(lambda: bound(client, "before"), "pod before bound")

    # A watch from a list's resourceVersion, as a reflector starts, on its own client (on A).
    _, since = await client.list(ConfigMap, "default")
    seen: list[tuple[str, str, int]] = []
    watcher = Client.from_kubeconfig(a.kubeconfig, server=[a.url, b.url])

    async def follow() -> None:
        async for type_, cm in watcher.watch(ConfigMap, "default", resource_version=since):
            seen.append((type_, cm.metadata.name or "", int(cm.metadata.resource_version or 0)))
    watching = asyncio.create_task(follow())
    written: list[tuple[str, str, int]] = []

    async def write(i: int) -> None:
        made = await client.create(from_dict(ConfigMap, {"metadata": {"name": f"cm-{i}"}, "data": {"n": str(i)}}))
        written.append(("ADDED", f"cm-{i}", int(made.metadata.resource_version or 0)))
        made.data = {"n": str(i), "again": "yes"}
        changed = await client.update(made)
        written.append(("MODIFIED", f"cm-{i}", int(changed.metadata.resource_version or 0)))

    for i in range(5):
        await write(i)
    assert (await cli("get", "pod", "before")).returncode == 0

    async def some_watched() -> bool:
        return bool(seen)
    # The watch is under way on A: it resumes from a resourceVersion it delivered.
    await eventually(some_watched, "a first event watched")

    # Killed while the loop runs, as a server dies under a live client: its idle connections
    # close as they do, so only what was in flight could be lost (and nothing is).
    await asyncio.to_thread(a.process.kill)
    for i in range(5, 10):
        await write(i)
    await client.delete(ConfigMap, "cm-0", "default")

    async def all_watched() -> bool:
        return len(seen) >= len(written) + 1
    await eventually(all_watched, "every write watched")
    # A delete's resourceVersion is the deletion's, which only the watch reports: the last one seen.
    assert seen[:-1] == written and seen[-1][:2] == ("DELETED", "cm-0")
    versions = [rv for _, _, rv in seen]
    assert versions == sorted(set(versions)), "resourceVersions not strictly increasing"
    assert watcher.base_url == b.url

    # The CLI with both URLs is answered by B; with A alone it fails, so it was B that answered.
    shown = await cli("get", "pod", "before", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["spec"]["nodeName"] == "node-a"
    assert (await cli("get", "pods", server=a.url)).returncode == 1
    # A create by the CLI finds A refusing connections and is made through B; the scheduler,
    # leader through A, renews through B and binds it.
    manifest = tmp_path / "after.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "after"},
                                    "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}))
    applied = await cli("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    await eventually(lambda: bound(client, "after"), "pod after bound through B", timeout=90)
    assert scheduler.popen.poll() is None, scheduler.text()

    # Meanwhile the watch delivered nothing twice, and is still watching.
    assert len(seen) == len(written) + 1 and not watching.done()
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    await watcher.close()


async def test_an_agent_joined_to_both_keeps_its_node_ready_after_the_first_dies(
        host_env: HostEnv, two_apiservers: tuple[ApiServer, ApiServer], client: Client, start: Start,
        tmp_path: Path) -> None:
    require_root()
    a, b = two_apiservers
    both = f"{a.url},{b.url}"
    grace = "8"  # a node silent this long becomes Unknown: the test outlives it after the kill
    node = f"node-{host_env.prefix}"
    start("controllers", "--state-root", str(tmp_path / "controllers"), "--run-root",
          str(tmp_path / "controllers-run"), "--node-grace", grace, "--server", both, "controllers",
          "--token", a.join_token)
    start("scheduler", "--state-root", str(tmp_path / "scheduler"), "--run-root",
          str(tmp_path / "scheduler-run"), "--server", both, "scheduler", "--token", a.join_token)
    agent = start("agent", "--state-root", str(host_env.state_root), "--run-root", str(host_env.run_root),
                  "--cgroup-parent", host_env.cgroup_parent, "--network", host_env.network_name,
                  "--bridge", host_env.bridge, "--subnet", host_env.subnet, "--node-name", node,
                  "--node-grace", grace, "--warm-sandboxes", "0", "--server", both,
                  "--proxy-chain-prefix", host_env.network_name, "agent",
                  "--token", a.join_token)
    try:
        async def ready() -> str:
            try:
                got = await client.get(Node, node)
            except NotFound:
                return ""
            return next((c.status for c in got.status.conditions if c.type == "Ready"), "")

        async def running(name: str) -> bool:
            pod = await client.get(Pod, name, "default")
            return pod.spec.node_name == node and pod.status.phase == "Running"

        async def node_ready() -> bool:
            return await ready() == "True"
        await eventually(node_ready, "node Ready", 120)
        await client.create(a_pod("first", ["sleep", "600"]))
        await eventually(lambda: running("first"), "pod first running", 120)

        await asyncio.to_thread(a.process.kill)
        killed = time.time()
        # Past the node grace, the node is still Ready with heartbeats posted after the kill.

        async def beat_after_grace() -> bool:
            got = await client.get(Node, node)
            cond = next(c for c in got.status.conditions if c.type == "Ready")
            assert cond.status == "True", f"node {node} is {cond.status} after API server A died"
            beat = cond.last_heartbeat_time
            return beat is not None and beat.timestamp() > killed + float(grace)
        await eventually(beat_after_grace, "a heartbeat through B past the node grace", 60)
        # ... judged by controllers that are themselves still at work through B.
        # (Its lease is renewed every few seconds, on a clock of its own: the node's heartbeat past
        # the grace may come a moment before the lease's renewal past it.)

        async def renewed_after_grace() -> bool:
            held = await client.get(Lease, "kube-controller-manager", "kube-system")
            return held.spec.renew_time is not None and held.spec.renew_time.timestamp() > killed + float(grace)
        await eventually(renewed_after_grace, "the controllers' lease renewed through B past the node grace", 60)

        await client.create(a_pod("second", ["sleep", "600"]))
        await eventually(lambda: running("second"), "pod second running", 120)
        assert agent.popen.poll() is None, agent.text()
    finally:
        for name in ("first", "second"):
            with contextlib.suppress(NotFound):
                await client.delete(Pod, name, "default", grace_period_seconds=0)

        async def gone() -> bool:
            pods, _ = await client.list(Pod, "default")
            return not pods
        await eventually(gone, "pods deleted", 60)
        agent.stop()
        runtime = RuntimeService(settings_for(host_env).runtime_config())
        await runtime.start()
        await runtime.shutdown(purge=True)


async def test_a_server_that_was_never_up_is_passed_over(tmp_path: Path) -> None:
    """A first URL nobody listens on: joining, a create (its connection is refused, so it was
    never sent) and a watch all go to the second at once."""
    dead = f"https://127.0.0.1:{free_port()}"
    async with serve_embedded(tmp_path / "api", unix_socket=False) as server:
        client, ca = await Client.join([dead, server.https_url], server.join_token)
        async with client:
            assert ca == server.pki.ca_pem()
            made = await client.create(from_dict(ConfigMap, {"metadata": {"name": "one"}}))
            assert client.base_url == server.https_url
            events = client.watch(ConfigMap, "default")
            assert await anext(events) == ("ADDED", made)
            await events.aclose()


async def test_only_a_request_never_sent_or_safe_to_repeat_goes_to_the_next_server(tmp_path: Path) -> None:
    """A first server that takes each request and drops the connection without answering, as one
    killed mid-request: a read goes on to the second; a create is not sent again (the first may
    have made it), and the caller gets the error."""
    async with serve_embedded(tmp_path / "api", unix_socket=False) as server:
        received: list[bytes] = []

        async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                received.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
            writer.close()

        dropper = await asyncio.start_server(drop, "127.0.0.1", 0,
                                             ssl=server_context(server.pki.server, server.pki.ca_pem()))
        dropping = f"https://127.0.0.1:{dropper.sockets[0].getsockname()[1]}"
        try:
            async with Client.from_kubeconfig(server.kubeconfig, server=[dropping, server.https_url]) as client:
                assert (await client.list(ConfigMap, "default"))[0] == []
                assert received[-1].startswith(b"GET ") and client.base_url == server.https_url
            async with Client.from_kubeconfig(server.kubeconfig, server=[dropping, server.https_url]) as client:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await client.create(from_dict(ConfigMap, {"metadata": {"name": "once"}}))
                assert received[-1].startswith(b"POST ")
                assert (await client.list(ConfigMap, "default"))[0] == []  # B never saw the create
        finally:
            dropper.close()
            await dropper.wait_closed()
