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
    def __init__(self, client: Any, terminated_threshold: int = 12500, interval: float = 20.0) -> None:
        self.client = client
        self.terminated_threshold = terminated_threshold
        self.interval = interval

    async def collect_once(self) -> list[str]:
        pods, _ = await self.client.list(Pod)
        nodes, _ = await self.client.list(Node)
        deleted = []
        for pod, why in pods_to_collect(pods, {n.metadata.name for n in nodes}, self.terminated_threshold):
            with contextlib.suppress(NotFound):
                await self.client.delete(Pod, pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
                log.info("pod GC deleted %s/%s (%s)", pod.metadata.namespace, pod.metadata.name, why)
                deleted.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        return deleted

    async def run(self) -> None:
        while True:
            try:
                await self.collect_once()
            except Exception as exc:
                log.warning("pod GC pass failed: %s", exc)
            await asyncio.sleep(self.interval)
