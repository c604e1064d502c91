"""The pod garbage collector (kube-controller-manager's podgc):

- terminated pods (Succeeded/Failed) beyond `terminated_threshold` are deleted, oldest first;
- pods bound to a node that no longer exists are deleted (orphans);
- terminating pods on such a node are force-deleted;
- unscheduled pods that are terminating are deleted at once (no kubelet will finish them).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timezone
from typing import Any

from podbay.api import Node, Pod
from podbay.api.errors import NotFound
from podbay.client.informer import SharedInformerFactory

log = logging.getLogger(__name__)


def pods_to_collect(pods: list[Pod], node_names: set[str], terminated_threshold: int) -> list[tuple[Pod, str]]:
    """Which pods to delete and why (pure)."""
    out: list[tuple[Pod, str]] = []
    terminated = [p for p in pods if p.status.phase in ("Succeeded", "Failed")
                  and p.metadata.deletion_timestamp is None]
    excess = len(terminated) - terminated_threshold
    if terminated_threshold > 0 and excess > 0:
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        terminated.sort(key=lambda p: p.metadata.creation_timestamp or epoch)
        out += [(p, "terminated") for p in terminated[:excess]]
    chosen = {p.metadata.uid for p, _ in out}
    for p in pods:
        if p.metadata.uid in chosen:
            continue
        if p.spec.node_name and p.spec.node_name not in node_names:
            out.append((p, "orphaned"))
        elif not p.spec.node_name and p.metadata.deletion_timestamp is not None:
            out.append((p, "unscheduled-terminating"))
    return out


class PodGC:
    def __init__(self, client: Any, informers: SharedInformerFactory, terminated_threshold: int = 12500,
                 interval: float = 20.0) -> None:
        self.client = client
        self.pods = informers.informer(Pod)
        self.nodes = informers.informer(Node)
        self.terminated_threshold = terminated_threshold
        self.interval = interval

    async def collect_once(self) -> list[str]:
        await asyncio.gather(self.pods.wait_synced(), self.nodes.wait_synced())
        nodes = {n.metadata.name or "" for n in self.nodes.list()}
        deleted = []
        for pod, why in pods_to_collect(self.pods.list(), nodes, self.terminated_threshold):
            # The two caches follow separate watches: a pod may be seen bound before its node is.
            # As podgc's quarantine does, the API says whether the node is really gone.
            if why == "orphaned" and await self._node_exists(pod.spec.node_name or ""):
                continue
            with contextlib.suppress(NotFound):
                await self.client.delete(Pod, pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
                log.info("pod GC deleted %s/%s (%s)", pod.metadata.namespace, pod.metadata.name, why)
                deleted.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        return deleted

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.client.get(Node, name)
        except NotFound:
            return False
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.collect_once()
            except Exception as exc:
                log.warning("pod GC pass failed: %s", exc)
            await asyncio.sleep(self.interval)
