"""Probe timers: one asyncio task per running container and probe type, as the
kubelet's prober workers. Results live in memory; a change wakes the pod's worker.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from podbay.agent.cri import ContainerRuntime
from podbay.agent.hooks import run_handler
from podbay.agent.probestate import ProbeState, probe_timing
from podbay.api import Container, Pod, Probe
from podbay.api.stored import uid_of

log = logging.getLogger(__name__)

PROBE_TYPES = ("startup", "liveness", "readiness")


def container_probe(container: Container, probe_type: str) -> Probe | None:
    return {"startup": container.startup_probe, "liveness": container.liveness_probe,
            "readiness": container.readiness_probe}[probe_type]


@dataclass
class ProbeTarget:
    pod: Pod
    container: Container
    container_id: str
    started_at: datetime | None
    pod_ip: str | None
    init: bool


class ProbeManager:
    def __init__(self, runtime: ContainerRuntime, on_change: Callable[[str], None],
                 on_failure: Callable[[Pod, Container, str, str, bool], Awaitable[None]]) -> None:
        self.runtime = runtime
        self.on_change = on_change  # pod uid → wake its worker
        self.on_failure = on_failure  # (pod, container, probe type, message, init) → Unhealthy event
        self.results: dict[str, dict[str, bool | None]] = {t: {} for t in PROBE_TYPES}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        # pod uid → its probe timers' keys: a pod's sync changes its own timers, not every pod's
        self._keys: dict[str, set[tuple[str, str]]] = {}

    def set_pod(self, uid: str, targets: list[ProbeTarget]) -> None:
        """Probes exactly `targets` of pod `uid` (none: the pod's timers stop)."""
        wanted = set()
        for t in targets:
            for probe_type in PROBE_TYPES:
                probe = container_probe(t.container, probe_type)
                if probe is None:
                    continue
                key = (t.container_id, probe_type)
                wanted.add(key)
                if key not in self._tasks:
                    state = ProbeState(probe_type, probe_timing(probe))
                    self.results[probe_type][t.container_id] = state.result
                    self._tasks[key] = asyncio.create_task(self._loop(t, probe_type, probe, state))
        for key in self._keys.pop(uid, set()) - wanted:
            self._tasks.pop(key).cancel()
            self.results[key[1]].pop(key[0], None)
        if wanted:
            self._keys[uid] = wanted

    def known(self, probe_type: str) -> dict[str, bool]:
        """The containers (by id) whose `probe_type` probe has a result yet."""
        return {k: v for k, v in self.results[probe_type].items() if v is not None}

    def result(self, probe_type: str, container_id: str) -> bool | None:
        return self.results[probe_type].get(container_id)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, t: ProbeTarget, probe_type: str, probe: Probe, state: ProbeState) -> None:
        uid = uid_of(t.pod)
        start = t.started_at or datetime.now(timezone.utc)
        delay = max(0.0, state.timing.initial_delay - (datetime.now(timezone.utc) - start).total_seconds())
        await asyncio.sleep(delay)
        while not state.on_hold:
            if probe_type != "startup" and t.container.startup_probe is not None \
                    and self.results["startup"].get(t.container_id) is not True:
                await asyncio.sleep(state.timing.period)  # startup gates the others
                continue
            if probe_type == "startup" and state.result is True:
                return  # a passed startup probe is never run again
            try:
                ok, message = await asyncio.wait_for(
                    run_handler(self.runtime, probe, t.container, t.container_id, t.pod_ip, state.timing.timeout),
                    state.timing.timeout + 1)
            except asyncio.TimeoutError:
                ok, message = False, f"probe timed out after {state.timing.timeout}s"
            except Exception as exc:
                ok, message = False, str(exc)
            if not ok:
                await self.on_failure(t.pod, t.container, probe_type, message, t.init)
            if state.observe(ok):
                self.results[probe_type][t.container_id] = state.result
                self.on_change(uid)
            await asyncio.sleep(state.timing.period)
