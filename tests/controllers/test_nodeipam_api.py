"""Node IPAM and the agent's podCIDR against a real API server: Nodes get distinct CIDRs, a
deleted Node's CIDR is free again, an agent waits for its Node's CIDR, and a podCIDR the Node
already has wins over the agent's --subnet."""
from __future__ import annotations

import asyncio
from pathlib import Path

from podbay.agent.config import AgentConfig
from podbay.agent.podcidr import node_pod_cidr
from podbay.api import Node
from podbay.api.serialize import from_dict
from podbay.client import Client
from podbay.controllers.nodeipam import NodeIPAM


def agent(name: str, tmp_path: Path) -> AgentConfig:
    return AgentConfig(node_name=name, state_root=tmp_path)


async def test_nodes_get_distinct_cidrs_and_a_deleted_nodes_is_free_again(client: Client) -> None:
    ipam = NodeIPAM(client, "10.250.0.0/23", 24)
    for name in ("a", "b"):
        await client.create(from_dict(Node, {"metadata": {"name": name}}))
    given, _ = await ipam.allocate_once()
    assert sorted(given.values()) == ["10.250.0.0/24", "10.250.1.0/24"]
    assert (await client.get(Node, "a")).spec.pod_cidrs == [given["a"]]
    await client.create(from_dict(Node, {"metadata": {"name": "c"}}))
    assert (await ipam.allocate_once())[0] == {}  # the range is full
    await client.delete(Node, "a")
    assert (await ipam.allocate_once())[0] == {"c": given["a"]}


async def test_the_agent_waits_for_its_nodes_cidr(client: Client, tmp_path: Path) -> None:
    waiting = asyncio.create_task(node_pod_cidr(client, agent("n1", tmp_path), None))
    ipam = asyncio.create_task(NodeIPAM(client, "10.250.0.0/16", 24).run())
    try:
        assert await asyncio.wait_for(waiting, 10) == "10.250.0.0/24"
    finally:
        ipam.cancel()
        await asyncio.gather(ipam, return_exceptions=True)
    node = await client.get(Node, "n1")
    # Registered before the agent runs: no Ready condition, so nothing is scheduled to it yet.
    assert node.status.conditions == [] and node.metadata.labels["kubernetes.io/hostname"] == "n1"


async def test_an_explicit_subnet_is_set_on_the_node_unless_it_has_one(client: Client, tmp_path: Path) -> None:
    assert await node_pod_cidr(client, agent("n1", tmp_path), "10.9.0.0/24") == "10.9.0.0/24"
    assert (await client.get(Node, "n1")).spec.pod_cidr == "10.9.0.0/24"
    await client.create(from_dict(Node, {"metadata": {"name": "n2"}}))
    assert await node_pod_cidr(client, agent("n2", tmp_path), "10.9.1.0/24") == "10.9.1.0/24"
    # As the kubelet's --pod-cidr: the Node's own podCIDR wins.
    assert await node_pod_cidr(client, agent("n1", tmp_path), "10.9.5.0/24") == "10.9.0.0/24"
