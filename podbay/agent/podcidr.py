"""This node's pod CIDR, which the runtime's network is made from (the kubelet's podCIDR): the
Node's `spec.podCIDR` when it has one; else the agent's own subnet (`--subnet`), set on the
Node; else the one node IPAM gives the Node, waited for."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import datetime, timezone

from podbay.agent.config import AgentConfig
from podbay.agent.node import node_object
from podbay.api import Node
from podbay.api.errors import AlreadyExists, Conflict
from podbay.client import Client

log = logging.getLogger(__name__)

WAIT_LOG_INTERVAL = 30.0


def _cidr(node: Node) -> str | None:
    return node.spec.pod_cidr or next(iter(node.spec.pod_cidrs), None)


async def _node(client: Client, config: AgentConfig, subnet: str | None) -> Node:
    """The Node, registered first if need be: without a Ready condition, so nothing is scheduled to
    it and no controller judges it before the agent posts its status."""
    node = node_object(replace(config, pod_cidr=subnet), 0, datetime.now(timezone.utc))
    node.status.conditions = []
    with contextlib.suppress(AlreadyExists):
        return await client.create(node)
    return await client.get(Node, config.node_name)


async def node_pod_cidr(client: Client, config: AgentConfig, subnet: str | None) -> str:
    while True:
        node = await _node(client, config, subnet)
        if (cidr := _cidr(node)) is not None:
            if subnet and cidr != subnet:
                # As the kubelet's --pod-cidr: a podCIDR the Node already has wins, as it cannot change.
                log.warning("node %s has podCIDR %s; --subnet %s is ignored", config.node_name, cidr, subnet)
            return cidr
        if not subnet:
            break
        node.spec.pod_cidr, node.spec.pod_cidrs = subnet, [subnet]
        with contextlib.suppress(Conflict):
            return _cidr(await client.update(node)) or subnet
    return await _wait_for_cidr(client, config.node_name)


async def _wait_for_cidr(client: Client, name: str) -> str:
    log.info("node %s: waiting for node IPAM to give it a podCIDR", name)
    while True:
        node = await client.get(Node, name)
        if (cidr := _cidr(node)) is not None:
            return cidr
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT_LOG_INTERVAL):
                async for _, changed in client.watch(Node, resource_version=node.metadata.resource_version,
                                                     field_selector=f"metadata.name={name}"):
                    if (cidr := _cidr(changed)) is not None:
                        log.info("node %s: podCIDR %s", name, cidr)
                        return cidr
        log.info("node %s: still no podCIDR: is a controller running with --allocate-node-cidrs?", name)
