"""The Node object: registered at start, its status (conditions, images, runtime handlers)
refreshed every heartbeat, as the kubelet's node status manager."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from podbay.agent.config import AgentConfig
from podbay.agent.cri import ContainerRuntime
from podbay.agent.eviction import CONDITION_WORDS, pressure_conditions
from podbay.agent.evictionmanager import EvictionManager
from podbay.agent.node import node_images, node_object, node_runtime_handlers, ready_condition
from podbay.api import Node, NodeCondition
from podbay.api.errors import AlreadyExists, NotFound
from podbay.client.client import Client

log = logging.getLogger(__name__)


class NodeStatus:
    def __init__(self, client: Client, runtime: ContainerRuntime, config: AgentConfig,
                 eviction: EvictionManager) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.eviction = eviction
        self.port = config.server_port  # the agent server's, once it listens
        self.ready_since = datetime.now(timezone.utc)

    async def _conditions(self, previous: list[NodeCondition]) -> list[NodeCondition]:
        """MemoryPressure, DiskPressure, PIDPressure (from the hard eviction thresholds, measured
        now) and Ready, in the kubelet's order."""
        now = datetime.now(timezone.utc)
        pressure = await self.eviction.measure_pressure()
        return [*pressure_conditions(pressure, previous, now), ready_condition(now, self.ready_since)]

    async def register(self) -> None:
        node = node_object(self.config, self.port, datetime.now(timezone.utc))
        node.status.conditions = await self._conditions([])
        node.status.images = node_images(await self.runtime.list_images())
        node.status.runtime_handlers = node_runtime_handlers(self.runtime.handlers)
        try:
            await self.client.create(node)
        except AlreadyExists:
            existing = await self.client.get(Node, self.config.node_name)
            existing.status = node.status
            existing.metadata.labels.update(node.metadata.labels)
            await self.client.update_status(existing)

    async def heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                node = await self.client.get(Node, self.config.node_name)
                previous = node.status.conditions
                ours = {"Ready", *CONDITION_WORDS}
                node.status.conditions = [c for c in previous if c.type not in ours] + \
                    await self._conditions(previous)
                node.status.images = node_images(await self.runtime.list_images())
                node.status.runtime_handlers = node_runtime_handlers(self.runtime.handlers)
                await self.client.update_status(node)
            except NotFound:
                await self.register()
            except Exception as exc:
                log.warning("node heartbeat failed: %s", exc)
