"""The node lifecycle controller (kube-controller-manager's nodelifecycle): a node whose agent
has not posted status within `grace` becomes Ready=Unknown and its pods Ready=False; after
`eviction_timeout` more its pods are deleted. Pods are never moved to another node: they die
with theirs and are replaced by whoever owns them (seed 001)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from podbay.api import Node, Pod, PodCondition, Taint, now
from podbay.api.errors import Conflict, NotFound
from podbay.api.taints import CONDITION_TAINTS

log = logging.getLogger(__name__)


def heartbeat(node: Node) -> datetime | None:
    ready = next((c for c in node.status.conditions if c.type == "Ready"), None)
    if ready is None:
        return None
    return ready.last_heartbeat_time or ready.last_transition_time


def silent_for(node: Node, at: datetime) -> float | None:
    """Seconds since the node's last heartbeat (None: it never posted one)."""
    beat = heartbeat(node)
    return None if beat is None else (at - beat).total_seconds()


class NodeLifecycle:
    def __init__(self, client: Any, grace: float = 40.0, eviction_timeout: float = 300.0,
                 interval: float = 5.0) -> None:
        self.client = client
        self.grace = grace
        self.eviction_timeout = eviction_timeout
        self.interval = interval

    async def check_once(self) -> None:
        at = now()
        nodes, _ = await self.client.list(Node)
        for node in nodes:
            await self._sync_condition_taints(node)
            silent = silent_for(node, at)
            if silent is None or silent <= self.grace:
                continue
            ready = next(c for c in node.status.conditions if c.type == "Ready")
            if ready.status != "Unknown":
                await self._mark_unknown(node, at)
            elif (at - (ready.last_transition_time or at)).total_seconds() >= self.eviction_timeout:
                await self._evict(node.metadata.name)

    async def _sync_condition_taints(self, node: Node) -> None:
        """A NoSchedule taint for each pressure condition that is True, none for the others."""
        pressed = {c.type for c in node.status.conditions if c.status == "True"}
        wanted = {key for kind, key in CONDITION_TAINTS.items() if kind in pressed}
        ours = set(CONDITION_TAINTS.values())
        have = {t.key for t in node.spec.taints if t.key in ours and t.effect == "NoSchedule"}
        if have == wanted:
            return
        node.spec.taints = [t for t in node.spec.taints if t.key not in ours] + [
            Taint(key=key, effect="NoSchedule") for key in sorted(wanted)]
        with contextlib.suppress(Conflict, NotFound):
            await self.client.update(node)
            log.info("node %s: condition taints now %s", node.metadata.name, sorted(wanted) or "none")

    async def _mark_unknown(self, node: Node, at: datetime) -> None:
        for c in node.status.conditions:
            if c.type == "Ready" or c.type in CONDITION_TAINTS:  # every condition the agent posts
                c.status, c.reason = "Unknown", "NodeStatusUnknown"
                c.message, c.last_transition_time = "Kubelet stopped posting node status.", at
        with contextlib.suppress(Conflict, NotFound):
            await self.client.update_status(node)
            log.info("node %s: no status for %.0fs, Ready=Unknown", node.metadata.name, self.grace)
        pods, _ = await self.client.list(Pod, field_selector=f"spec.nodeName={node.metadata.name}")
        for pod in pods:
            others = [c for c in pod.status.conditions if c.type != "Ready"]
            pod.status.conditions = others + [PodCondition(type="Ready", status="False", reason="NodeNotReady",
                                                           last_transition_time=at)]
            with contextlib.suppress(Conflict, NotFound):
                await self.client.update_status(pod)

    async def _evict(self, node_name: str) -> None:
        pods, _ = await self.client.list(Pod, field_selector=f"spec.nodeName={node_name}")
        for pod in pods:
            with contextlib.suppress(NotFound):
                await self.client.delete(Pod, pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
                log.info("node %s unreachable: deleted pod %s/%s", node_name, pod.metadata.namespace,
                         pod.metadata.name)

    async def run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception as exc:
                log.warning("node lifecycle pass failed: %s", exc)
            await asyncio.sleep(self.interval)

