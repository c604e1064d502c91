"""The scheduler against a real API server: binds by the sum of requests, never half a pod,
and reports what does not fit (the seed's Node_A / Node_B case)."""
from __future__ import annotations

import asyncio
import contextlib
from fractions import Fraction
from pathlib import Path
from typing import AsyncIterator

import pytest

from podbay.api import Event, Node, Pod
from podbay.api.quantity import parse_quantity
from podbay.api.resources import pod_requests
from podbay.api.serialize import from_dict
from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.client import Client
from podbay.scheduler.scheduler import run as run_scheduler
from tests.apiserver.conftest import api_server  # noqa: F401  (the server on SQLite and on etcd)


@contextlib.asynccontextmanager
async def scheduling(url: str) -> AsyncIterator[Client]:
    """A client of the server at `url`, with the scheduler running on it."""
    c = Client.connect(url)
    task = asyncio.create_task(run_scheduler(c))
    try:
        yield c
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await c.close()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with serve_embedded(tmp_path / "api", host=None) as server, scheduling(server.url) as c:
        yield c


@pytest.fixture
async def client_on_each_store(api_server: EmbeddedServer) -> AsyncIterator[Client]:
    async with scheduling(api_server.url) as c:
        yield c


def node(name: str, cpu: str, memory: str) -> Node:
    return from_dict(Node, {"metadata": {"name": name}, "status": {
        "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]}})


def pod(name: str, *cpus: str, memory: str = "100Mi") -> Pod:
    return from_dict(Pod, {"metadata": {"name": name}, "spec": {"containers": [
        {"name": f"c{i}", "image": "busybox:1.35", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
        for i, cpu in enumerate(cpus)]}})


async def wait_pod(client: Client, name: str, check, timeout: float = 10) -> Pod:
    async def watch() -> Pod:
        async for _, p in client.watch(Pod, "default", field_selector=f"metadata.name={name}"):
            if check(p):
                return p
        raise AssertionError("watch ended")
    return await asyncio.wait_for(watch(), timeout)


async def test_pod_goes_where_the_sum_of_its_requests_fits(client: Client) -> None:
    await client.create(node("node-a", "2", "4Gi"))
    await client.create(node("node-b", "4", "4Gi"))
    await client.create(pod("two-by-1500m", "1500m", "1500m"))
    placed = await wait_pod(client, "two-by-1500m", lambda p: bool(p.spec.node_name))
    assert placed.spec.node_name == "node-b"


async def test_pod_that_fits_nowhere_stays_pending_with_the_reason(client: Client) -> None:
    await client.create(node("node-a", "2", "4Gi"))
    await client.create(node("node-b", "2", "4Gi"))
    await client.create(pod("too-big", "1500m", "1500m"))
    unscheduled = await wait_pod(client, "too-big", lambda p: any(
        c.type == "PodScheduled" and c.status == "False" for c in p.status.conditions))
    cond = next(c for c in unscheduled.status.conditions if c.type == "PodScheduled")
    assert cond.reason == "Unschedulable"
    assert cond.message == "0/2 nodes are available: 2 Insufficient cpu."
    assert not unscheduled.spec.node_name
    events, _ = await client.list(Event, "default")
    assert any(e.reason == "FailedScheduling" and e.involved_object.name == "too-big" for e in events)
    # A bigger node arrives: the pod is retried and bound, whole.
    await client.create(node("node-c", "8", "8Gi"))
    placed = await wait_pod(client, "too-big", lambda p: bool(p.spec.node_name))
    assert placed.spec.node_name == "node-c"


async def test_bound_pods_use_up_the_node(client: Client) -> None:
    await client.create(node("only", "2", "4Gi"))
    for name in ("first", "second"):
        await client.create(pod(name, "1500m"))
    await wait_pod(client, "first", lambda p: bool(p.spec.node_name))
    second = await wait_pod(client, "second", lambda p: any(
        c.type == "PodScheduled" and c.status == "False" for c in p.status.conditions))
    assert "Insufficient cpu" in next(c.message for c in second.status.conditions if c.type == "PodScheduled")


async def test_the_seeds_node_a_node_b_case(client: Client) -> None:
    # Seed 004: Node_A has 1.25Gi free, Node_B 2Gi; App (1Gi) + LogCollector (0.5Gi) need 1.5Gi together.
    await client.create(node("node-a", "4", "1280Mi"))
    await client.create(node("node-b", "4", "2Gi"))
    await client.create(from_dict(Pod, {"metadata": {"name": "app-with-logs"}, "spec": {"containers": [
        {"name": "app", "image": "busybox:1.35", "resources": {"requests": {"memory": "1Gi"}}},
        {"name": "log-collector", "image": "busybox:1.35", "resources": {"requests": {"memory": "512Mi"}}}]}}))
    placed = await wait_pod(client, "app-with-logs", lambda p: bool(p.spec.node_name))
    assert placed.spec.node_name == "node-b"


async def test_the_scheduler_runs_alone_against_an_api_url(tmp_path: Path) -> None:
    from podbay.cli.allinone import serve_controllers
    from podbay.cli.settings import Settings

    async with serve_embedded(tmp_path / "api", host=None) as server:
        settings = Settings(tmp_path / "lib", tmp_path / "run", "x", "x", "x", "10.0.0.0/24", "n", 0, server.url)
        stop = asyncio.Event()
        part = asyncio.create_task(serve_controllers(settings, scheduler=True, controllers=False, stop=stop))
        c = Client.connect(server.url)
        try:
            await c.create(node("solo", "2", "2Gi"))
            await c.create(pod("alone", "100m"))
            assert (await wait_pod(c, "alone", lambda p: bool(p.spec.node_name))).spec.node_name == "solo"
        finally:
            stop.set()
            await part
            await c.close()


def crowd_pod(i: int) -> Pod:
    """Pod i of the crowd: 300m, every 6th tolerates the gpu taint, every 5th wants host port 8080,
    every 7th has an init container of 900m (so it needs 900m while it starts)."""
    spec: dict = {"containers": [{"name": "c", "image": "busybox:1.35",
                                  "resources": {"requests": {"cpu": "300m", "memory": "64Mi"}},
                                  "ports": [{"containerPort": 80, "hostPort": 8080}] if i % 5 == 1 else []}]}
    if i % 6 == 0:
        spec["tolerations"] = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if i % 7 == 3:
        spec["initContainers"] = [{"name": "init", "image": "busybox:1.35",
                                   "resources": {"requests": {"cpu": "900m"}}}]
    return from_dict(Pod, {"metadata": {"name": f"crowd-{i}"}, "spec": spec})


async def test_many_pods_at_once_never_overcommit_a_node(client_on_each_store: Client) -> None:
    client = client_on_each_store
    # 20 nodes with room for 72 pods of 300m between them; 200 pods arrive at once, so bindings
    # are in flight together and only the assumed pods keep the scheduler from overcommitting.
    nodes = ([from_dict(Node, {"metadata": {"name": f"gpu-{i}"}, "spec": {"taints": [
        {"key": "gpu", "value": "yes", "effect": "NoSchedule"}]}, "status": {
        "allocatable": {"cpu": "1", "memory": "4Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]}}) for i in range(4)]
        + [node(f"small-{i}", "1", "4Gi") for i in range(12)] + [node(f"big-{i}", "2", "4Gi") for i in range(4)])
    for n in nodes:
        await client.create(n)
    await asyncio.gather(*(client.create(crowd_pod(i)) for i in range(200)))

    def decided(p: Pod) -> bool:
        return bool(p.spec.node_name) or any(c.type == "PodScheduled" and c.status == "False"
                                             for c in p.status.conditions)
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        pods, _ = await client.list(Pod, "default")
        if len(pods) == 200 and all(decided(p) for p in pods):
            break
        assert asyncio.get_running_loop().time() < deadline, "pods still undecided"
        await asyncio.sleep(0.2)

    allocatable = {n.metadata.name: parse_quantity(n.status.allocatable["cpu"]) for n in nodes}
    used = {name: Fraction(0) for name in allocatable}
    ports: dict[str, int] = {name: 0 for name in allocatable}
    for p in pods:
        if p.spec.node_name:
            used[p.spec.node_name] += pod_requests(p)["cpu"]
            ports[p.spec.node_name] += any(port.host_port for c in p.spec.containers for port in c.ports)
            if p.spec.node_name.startswith("gpu-"):
                assert p.spec.tolerations, f"{p.metadata.name} went to a tainted node"
    assert all(used[n] <= allocatable[n] for n in allocatable), used
    assert all(count <= 1 for count in ports.values()), ports
    # Nothing left behind: every pod still pending fits on no node as the nodes are now.
    for p in pods:
        if p.spec.node_name:
            continue
        wants_port = any(port.host_port for c in p.spec.containers for port in c.ports)
        room = [n for n in allocatable if used[n] + pod_requests(p)["cpu"] <= allocatable[n]
                and (not n.startswith("gpu-") or p.spec.tolerations) and not (wants_port and ports[n])]
        assert not room, f"{p.metadata.name} pending while {room} have room"
        cond = next(c for c in p.status.conditions if c.type == "PodScheduled")
        assert cond.reason == "Unschedulable" and cond.message.startswith("0/20 nodes are available: ")
    assert sum(1 for p in pods if p.spec.node_name) >= 60
