"""One serialised sync loop per pod, woken by the API's watch, the runtime's exits, probes and
timers (the kubelet's pod_workers.go). What a sync does is the pod sync's business."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from podbay.api import Pod

log = logging.getLogger(__name__)


@dataclass
class PodWorker:
    uid: str
    pod: Pod | None  # the latest object from the API; None once it is gone
    last_pod: Pod | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    next_wake: float | None = None  # monotonic time of a back-off end or deadline
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)  # container → Waiting reason
    warned: bool = False  # unsupported fields reported
    evicted: str | None = None  # the eviction manager's message once it has chosen to evict the pod
    admitted: bool = False  # the node's pressure was checked before the pod's first start
    rejected: str | None = None  # why admission refused the pod

    def update(self, pod: Pod | None) -> None:
        self.pod = pod
        if pod is not None:
            self.last_pod = pod
        self.wake.set()

    def wake_at(self, when: float) -> None:
        if self.next_wake is None or when < self.next_wake:
            self.next_wake = when


SyncPod = Callable[[PodWorker], Awaitable[bool]]


class PodWorkers:
    """`sync` brings the runtime towards a worker's pod and returns True once the pod is gone
    from the node; `on_finished(uid)` then drops what others keep about it."""

    def __init__(self, sync: SyncPod, on_finished: Callable[[str], None]) -> None:
        self.workers: dict[str, PodWorker] = {}
        self._sync = sync
        self._on_finished = on_finished
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, uid: str) -> asyncio.Lock:
        """Held while a pod syncs; a replace takes the old pod's too, to hand its sandbox over."""
        return self._locks.setdefault(uid, asyncio.Lock())

    def get(self, uid: str) -> PodWorker | None:
        return self.workers.get(uid)

    def pods(self, *, with_deleted: bool = False) -> list[Pod]:
        """The pods on this node; `with_deleted`: also those whose object is gone but whose
        containers are still being stopped (their logs can still be read)."""
        pods = [w.pod or (w.last_pod if with_deleted else None) for w in list(self.workers.values())]
        return [p for p in pods if p is not None]

    def wake(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.wake.set()

    def dispatch(self, pod: Pod | None, uid: str) -> None:
        """The pod's latest object (None: deleted) to its worker, starting one if needed."""
        worker = self.workers.get(uid)
        if worker is None:
            if pod is None:
                return
            worker = self._start(PodWorker(uid=uid, pod=pod, last_pod=pod))
        worker.update(pod)

    def adopt_orphan(self, uid: str) -> None:
        """A pod the runtime holds but the API forgot: its worker stops and removes it."""
        self._start(PodWorker(uid=uid, pod=None, last_pod=None)).wake.set()

    def _start(self, worker: PodWorker) -> PodWorker:
        self.workers[worker.uid] = worker
        worker.task = asyncio.create_task(self._loop(worker))
        return worker

    async def _loop(self, w: PodWorker) -> None:
        while True:
            timeout = None
            if w.next_wake is not None:
                timeout = max(0.0, w.next_wake - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(w.wake.wait(), timeout)
            w.wake.clear()
            w.next_wake = None
            try:
                async with self.lock(w.uid):
                    finished = await self._sync(w)
                if finished:
                    self._locks.pop(w.uid, None)
                    self.workers.pop(w.uid, None)
                    self._on_finished(w.uid)
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync of pod %s failed", w.uid)
                w.wake_at(time.monotonic() + 1.0)

    async def stop(self) -> None:
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
