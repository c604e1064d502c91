"""Leader election end to end: `podbay scheduler` processes against one real API server, as a
user runs them for a standby scheduler; what they see is the Lease's holder and pods bound."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest

from podbay.api import Event, Lease, Node, Pod
from podbay.api.errors import NotFound
from podbay.api.serialize import from_dict
from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.client import Client
from tests.cli.podbay_cli import podbay_cli, wait_until
from tests.conftest import HostEnv, require_root
from tests.polling import wait_until as eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Short timings: a standby takes an abandoned lease 4 s after the last renewal it saw (long
# enough that a leader slowed down by a busy machine still renews in time).
FAST = ["--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s",
        "--leader-elect-retry-period", "500ms"]
# A lease that would take 60 s to expire: a standby taking over sooner shows it was released.
SLOW = ["--leader-elect-lease-duration", "60s", "--leader-elect-renew-deadline", "5s",
        "--leader-elect-retry-period", "500ms"]


@dataclass
class Part:
    """A `podbay scheduler` or `podbay controllers` process."""

    process: asyncio.subprocess.Process
    log: Path

    def identity(self) -> str | None:
        found = re.search(r"attempting to acquire leader lease kube-system/\S+ as (\S+)\.\.\.", self.log.read_text())
        return found.group(1) if found else None


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with serve_embedded(tmp_path / "api") as s:
        yield s


@pytest.fixture
async def client(server: EmbeddedServer) -> AsyncIterator[Client]:
    c = Client.connect(server.url)
    await c.create(from_dict(Node, {"metadata": {"name": "node-a"}, "status": {
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]}}))
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def start(server: EmbeddedServer, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Part]]]:
    started: list[Part] = []

    async def run(*flags: str, verb: str = "scheduler") -> Part:
        log = tmp_path / f"{verb}-{len(started)}.log"
        with open(log, "wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "podbay", "--state-root", str(tmp_path / "state"), "--run-root",
                str(tmp_path / "run"), "--server", server.url, verb, *flags,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, cwd=ROOT)
        part = Part(process, log)
        started.append(part)
        await eventually(lambda: part.identity() is not None, what=f"{log.name} standing")
        return part

    yield run
    for s in started:
        if s.process.returncode is None:
            s.process.kill()  # by its PID: only what this test started
            await s.process.wait()


async def lease(client: Client, name: str = "kube-scheduler") -> Lease | None:
    try:
        return await client.get(Lease, name, "kube-system")
    except NotFound:
        return None


async def holder(client: Client, name: str = "kube-scheduler") -> str:
    held = await lease(client, name)
    return (held.spec.holder_identity or "") if held else ""


async def wait_holder(client: Client, identity: str | None, timeout: float = 30.0,
                      name: str = "kube-scheduler") -> None:
    deadline = time.monotonic() + timeout
    while (current := await holder(client, name)) != identity:
        assert time.monotonic() < deadline, f"the lease is held by {current!r}, not {identity!r}"
        await asyncio.sleep(0.1)


async def wait_bound(client: Client, name: str, timeout: float = 30.0) -> Pod:
    deadline = time.monotonic() + timeout
    while not (pod := await client.get(Pod, name, "default")).spec.node_name:
        assert time.monotonic() < deadline, f"pod {name} not bound before the deadline"
        await asyncio.sleep(0.1)
    return pod


def a_pod(name: str) -> Pod:
    return from_dict(Pod, {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})


async def test_standby_takes_over_when_the_leader_is_killed(
        client: Client, start: Callable[..., Awaitable[Part]]) -> None:
    leader = await start(*FAST)
    await wait_holder(client, leader.identity())
    standby = await start(*FAST)
    assert standby.identity() != leader.identity()

    await client.create(a_pod("first"))
    assert (await wait_bound(client, "first")).spec.node_name == "node-a"
    held = await lease(client)
    assert held is not None and held.spec.holder_identity == leader.identity()
    assert held.spec.lease_transitions == 0 and held.spec.lease_duration_seconds == 4
    assert "successfully acquired lease" not in standby.log.read_text()

    os.kill(leader.process.pid, signal.SIGKILL)
    await leader.process.wait()
    await wait_holder(client, standby.identity())
    held = await lease(client)
    assert held is not None and held.spec.lease_transitions == 1

    await client.create(a_pod("second"))
    assert (await wait_bound(client, "second")).spec.node_name == "node-a"
    events, _ = await client.list(Event, "kube-system", field_selector="reason=LeaderElection")
    assert {e.message for e in events} >= {f"{leader.identity()} became leader", f"{standby.identity()} became leader"}
    assert all(e.involved_object.kind == "Lease" and e.involved_object.name == "kube-scheduler" for e in events)


async def test_clean_shutdown_releases_the_lease_and_the_standby_takes_it_at_once(
        client: Client, start: Callable[..., Awaitable[Part]], server: EmbeddedServer, tmp_path: Path) -> None:
    leader = await start(*SLOW)
    await wait_holder(client, leader.identity())
    standby = await start(*SLOW)
    held = await lease(client)
    assert held is not None
    seen: list[str] = []

    async def watch() -> None:
        async for _, obj in client.watch(Lease, "kube-system", resource_version=held.metadata.resource_version):
            seen.append(obj.spec.holder_identity or "")

    watching = asyncio.create_task(watch())
    try:
        os.kill(leader.process.pid, signal.SIGTERM)
        assert await leader.process.wait() == 0
        # Well inside the 60 s lease: only a released lease is taken this soon.
        await wait_holder(client, standby.identity(), timeout=20)
        await eventually(lambda: standby.identity() in seen, what="the takeover watched")
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    assert "" in seen and seen.index("") < seen.index(standby.identity())

    await client.create(a_pod("after"))
    assert (await wait_bound(client, "after")).spec.node_name == "node-a"

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = server.kubeconfig  # what `podbay kubeconfig` prints
    kubectl = await asyncio.create_subprocess_exec("kubectl", f"--kubeconfig={kubeconfig}", "get", "leases",
                                                   "-n", "kube-system", stdout=asyncio.subprocess.PIPE)
    stdout, _ = await asyncio.wait_for(kubectl.communicate(), 60)
    assert kubectl.returncode == 0
    rows = [line.split() for line in stdout.decode().splitlines()]
    assert rows[0] == ["NAME", "HOLDER", "AGE"]
    assert rows[1][:2] == ["kube-scheduler", standby.identity()]


def test_podbay_up_holds_the_leases_and_a_second_scheduler_stands_by(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    server = f"unix://{host_env.run_root}/api.sock"

    async def read(what: Callable[[Client], Awaitable[object]]) -> object:
        async with Client.connect(server) as c:
            return await what(c)

    def holder_of(name: str) -> str:
        async def get(c: Client) -> str:
            try:
                return (await c.get(Lease, name, "kube-system")).spec.holder_identity or ""
            except NotFound:
                return ""
        return str(asyncio.run(read(get)))

    assert "podbay is up" in podbay("up").stdout
    log = tmp_path / "standby.log"
    standby: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: holder_of("kube-scheduler") != "" and holder_of("kube-controller-manager") != "")
        all_in_one = holder_of("kube-scheduler")
        with open(log, "wb") as out:
            standby = subprocess.Popen([sys.executable, "-m", "podbay", "--server", server, "scheduler"],
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=ROOT)
        wait_until(lambda: f"new leader elected: {all_in_one}" in log.read_text())
        manifest = tmp_path / "idle.yaml"
        manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: idle}\nspec:\n  containers:\n"
                            "  - {name: c, image: busybox:1.35, command: [sleep, '3600']}\n")
        podbay("apply", "-f", str(manifest))
        wait_until(lambda: bool(asyncio.run(read(lambda c: c.get(Pod, "idle", "default"))).spec.node_name))
        assert holder_of("kube-scheduler") == all_in_one
        assert "successfully acquired lease" not in log.read_text()
        rows = [line.split() for line in podbay("get", "leases", "-n", "kube-system").stdout.splitlines()]
        assert rows == [["NAME", "HOLDER", "AGE"], ["kube-controller-manager", all_in_one, rows[1][2]],
                        ["kube-scheduler", all_in_one, rows[2][2]]]
    finally:
        if standby is not None:
            standby.kill()  # by its PID: only what this test started
            standby.wait()
        podbay("down", "--purge")


async def test_controllers_elect_one_leader_and_hand_over(
        client: Client, start: Callable[..., Awaitable[Part]]) -> None:
    leader = await start(*FAST, verb="controllers")
    await wait_holder(client, leader.identity(), name="kube-controller-manager")
    standby = await start(*FAST, verb="controllers")
    os.kill(leader.process.pid, signal.SIGKILL)
    await leader.process.wait()
    await wait_holder(client, standby.identity(), name="kube-controller-manager")
    assert await holder(client, "kube-scheduler") == ""  # the controllers hold only their own lease
