"""The kubelet's eviction manager on this node: measures the node against the hard eviction
thresholds (its pressure conditions), admits new pods by them, and evicts pods over their
local-storage limits or ranked first for a starved resource. The rules are podbay.agent.eviction's.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from podbay.agent.config import AgentConfig
from podbay.agent.containers import runtime_status
from podbay.agent.cri import ContainerRuntime
from podbay.agent.eviction import (
    EVICTED_REASON, Observation, PodUsage, PressureHistory, StorageUsage, admission_rejection, node_pressure_victim, observe,
    storage_violation, thresholds_met,
)
from podbay.agent.events import PodEvents
from podbay.agent.podworkers import PodWorker, PodWorkers
from podbay.agent.thresholds import parse_thresholds
from podbay.api import Pod
from podbay.api.errors import NotFound
from podbay.api.stored import uid_of
from podbay.runtime.diskusage import disk_usage

log = logging.getLogger(__name__)

# The kubelet's podCleanupTimeout and podCleanupPollFreq (eviction_manager.go).
POD_CLEANUP_TIMEOUT = 30.0
POD_CLEANUP_POLL = 1.0


class EvictionManager:
    def __init__(self, runtime: ContainerRuntime, config: AgentConfig, events: PodEvents,
                 workers: PodWorkers) -> None:
        self.runtime = runtime
        self.config = config
        self.events = events
        self.workers = workers
        self.thresholds = parse_thresholds(config.eviction_hard)
        self.pressure: list[str] = []  # the node's pressure conditions that are True
        self.pressure_history = PressureHistory(config.eviction_pressure_transition_period)

    async def _observe(self) -> dict[str, Observation]:
        return await asyncio.to_thread(observe, self.config.state_root, self.config.state_root / "images")

    async def measure_pressure(self) -> list[str]:
        """The node's pressure conditions now (held for the transition period once met)."""
        observed = await self._observe()
        self.pressure = self.pressure_history.pressed(thresholds_met(self.thresholds, observed), time.monotonic())
        return self.pressure

    def admit(self, pod: Pod) -> str | None:
        """Why the node refuses a new pod under its pressure now; None: admitted."""
        return admission_rejection(pod, self.pressure)

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.housekeeping_interval)
            await self.synchronize()

    async def synchronize(self) -> None:
        """One pass. First local storage: a pod over an emptyDir sizeLimit or an ephemeral-storage
        limit is evicted. If none was, and a hard threshold is met, the pod ranked first for the
        starved resource is (one per pass, as the kubelet). An evicted pod's worker kills it and
        reports it Failed/Evicted."""
        candidates: list[PodUsage] = []
        workers: dict[str, PodWorker] = {}
        evicted = False
        for w in list(self.workers.workers.values()):
            pod = w.pod
            if pod is None or w.evicted is not None or w.rejected is not None or \
                    pod.metadata.deletion_timestamp is not None or \
                    (pod.status is not None and pod.status.phase in ("Succeeded", "Failed")):
                continue
            try:
                usage = await self._pod_usage(w.uid, pod)
            except Exception as exc:
                log.warning("measuring pod %s failed: %s", w.uid, exc)
                continue
            message = storage_violation(pod, usage.storage)
            if message is not None:
                await self._evict(w, pod, message)
                evicted = True
            elif usage.running:
                candidates.append(usage)
                workers[uid_of(pod)] = w
        if evicted:
            return
        chosen = node_pressure_victim(self.thresholds, await self._observe(), candidates)
        if chosen is not None:
            victim, message = chosen
            w = workers[uid_of(victim)]
            if w.pod is not None:
                await self._evict(w, w.pod, message)
                await self._wait_for_cleanup(w.uid)

    async def _wait_for_cleanup(self, uid: str) -> None:
        """The kubelet's waitForPodsCleanup: the next pass waits until the evicted pod's containers
        have stopped and its volumes are gone (at most POD_CLEANUP_TIMEOUT), or the pressure it is
        still being reclaimed from would take a second pod. The kubelet polls for this too: the
        reclaim is spread over the pod worker, the runtime and the volume teardown."""
        deadline = time.monotonic() + POD_CLEANUP_TIMEOUT
        while time.monotonic() < deadline:
            rt = await runtime_status(self.runtime, uid)
            if not rt.running() and not await self.runtime.pod_volume_usage(uid):
                return
            await asyncio.sleep(POD_CLEANUP_POLL)

    async def _evict(self, w: PodWorker, pod: Pod, message: str) -> None:
        w.evicted = message
        await self.events.record(pod, EVICTED_REASON, message, warning=True)
        w.wake.set()

    async def _pod_usage(self, uid: str, pod: Pod) -> PodUsage:
        """The pod's volumes, each container's (latest attempt's) writable layer and log, and its
        sandbox's memory working set and task count."""
        rt = await runtime_status(self.runtime, uid)
        storage = StorageUsage(volumes=await self.runtime.pod_volume_usage(uid))
        for c in rt.containers:
            if c.name in storage.containers:
                continue  # newest first: an older attempt
            with contextlib.suppress(NotFound):
                layer = (await self.runtime.container_stats(c.id)).writable_layer_bytes
                log_path = await self.runtime.container_log_path(c.id)
                storage.containers[c.name] = layer + await asyncio.to_thread(disk_usage, Path(log_path))
        usage = PodUsage(pod, storage, memory=0, processes=0, running=bool(rt.running()))
        ready = [sb for sb in rt.sandboxes if sb.ready]
        if ready:
            stats = await self.runtime.pod_sandbox_stats(ready[0].id)
            usage.memory, usage.processes = stats.memory_working_set_bytes, stats.processes
        return usage
