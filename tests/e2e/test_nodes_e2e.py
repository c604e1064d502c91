"""Nodes: this machine's agent registers and keeps its node Ready; a node whose agent falls
silent becomes Ready=Unknown, its pods unready, then deleted — never moved elsewhere."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from podbay.api import Node, Pod, now
from podbay.api.serialize import from_dict
from podbay.cli.allinone import serve_agent
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, free_port, purge, running_cluster, settings_for

pytestmark = pytest.mark.e2e


async def wait_node(cluster: Cluster, name: str, check, timeout: float = 30.0) -> Node:
    async def watch() -> Node:
        async for _, node in cluster.client.watch(Node):
            if node.metadata.name == name and check(node):
                return node
        raise AssertionError("watch ended")
    return await asyncio.wait_for(watch(), timeout)


def ready(node: Node) -> str:
    return next((c.status for c in node.status.conditions if c.type == "Ready"), "")


async def test_a_silent_node_goes_unknown_and_loses_its_pods(cluster: Cluster) -> None:
    local = await cluster.client.get(Node, cluster.settings.node_name)
    assert ready(local) == "True"
    assert {"cpu", "memory", "pods", "ephemeral-storage"} <= set(local.status.allocatable)

    beat = now().isoformat()
    await cluster.client.create(from_dict(Node, {"metadata": {"name": "ghost"}, "status": {
        "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": beat, "lastTransitionTime": beat}]}}))
    await cluster.client.create(from_dict(Pod, {"metadata": {"name": "stranded"}, "spec": {
        "nodeName": "ghost", "containers": [{"name": "c", "image": "busybox:1.35"}]}}))
    node = await wait_node(cluster, "ghost", lambda n: ready(n) == "Unknown")
    assert next(c.reason for c in node.status.conditions if c.type == "Ready") == "NodeStatusUnknown"
    await cluster.wait_for_deleted("stranded", timeout=30)
    # This machine's node kept posting its status all along.
    assert ready(await cluster.client.get(Node, cluster.settings.node_name)) == "True"


async def test_a_second_agent_joins_and_pods_spread_by_requests(host_env: HostEnv,
                                                                second_host_env: HostEnv) -> None:
    require_root()
    async with running_cluster(dataclasses.replace(settings_for(host_env), api_port=free_port())) as cluster:
        await _second_agent(cluster, second_host_env)


async def _second_agent(cluster: Cluster, second_host_env: HostEnv) -> None:
    # It joins over HTTPS with the join token, as `podbay agent --server URL --token T` on another machine.
    other = dataclasses.replace(settings_for(second_host_env),
                                server=f"https://127.0.0.1:{cluster.settings.api_port}")
    token = (cluster.settings.state_root / "node-token").read_text().strip()
    stop = asyncio.Event()
    agent = asyncio.create_task(serve_agent(other, token, stop=stop))
    try:
        await wait_node(cluster, other.node_name, lambda n: ready(n) == "True")
        # Each node has the machine's CPUs; one pod asking for all of them fills a node,
        # so the second such pod must go to the other node.
        cpus = (await cluster.client.get(Node, cluster.settings.node_name)).status.allocatable["cpu"]
        for name in ("big-a", "big-b"):
            await cluster.client.create(from_dict(Pod, {"metadata": {"name": name}, "spec": {
                "terminationGracePeriodSeconds": 0, "containers": [{
                    "name": "c", "image": "busybox:1.35", "command": ["sleep", "600"],
                    "resources": {"requests": {"cpu": cpus}}}]}}))
        pods = [await cluster.wait_for(n, lambda p: p.status.phase == "Running") for n in ("big-a", "big-b")]
        assert {p.spec.node_name for p in pods} == {cluster.settings.node_name, other.node_name}
        # The second agent stops: its node goes Unknown and its pod is deleted, never moved.
        stop.set()
        await agent
        stranded = next(p for p in pods if p.spec.node_name == other.node_name)
        await wait_node(cluster, other.node_name, lambda n: ready(n) == "Unknown")
        await cluster.wait_for_deleted(stranded.metadata.name)
        kept = next(p for p in pods if p.spec.node_name == cluster.settings.node_name)
        await cluster.client.delete(Pod, kept.metadata.name, "default", grace_period_seconds=0)
        await cluster.wait_for_deleted(kept.metadata.name)
    finally:
        stop.set()
        await agent
        await purge(other)


async def test_the_node_reports_its_images_with_their_unpacked_size(cluster: Cluster) -> None:
    from podbay.runtime.images import ImageStore

    busybox = ImageStore(cluster.settings.runtime_config().images_root).image_status("busybox:1.35")
    assert busybox is not None
    node = await wait_node(cluster, cluster.settings.node_name, lambda n: n.status.images)
    [entry] = [i for i in node.status.images if "docker.io/library/busybox:1.35" in i.names]
    assert entry.size_bytes == busybox.size > 1_000_000  # the unpacked busybox, not its gzip
