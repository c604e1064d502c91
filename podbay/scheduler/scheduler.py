"""The scheduler loop: watches pods and nodes, binds each unbound pod to a node it fits.

One pod at a time from a FIFO queue, as kube-scheduler's scheduling cycle, decided on the
Snapshot the watches keep; the pod is assumed on its node at once and the binding (the API call)
runs on its own, up to MAX_BINDINGS_IN_FLIGHT at a time, as kube-scheduler's binding cycle. A pod
that fits nowhere gets PodScheduled=False/Unschedulable and a FailedScheduling event and is
retried when a node or a pod changes.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from podbay.api import Binding, Node, ObjectMeta, ObjectReference, Pod, PodCondition, RuntimeClass, now
from podbay.api.defaults import DEFAULT_SCHEDULER
from podbay.api.errors import Conflict, NotFound
from podbay.api.stored import uid_of
from podbay.client.informer import UID_INDEX, EventHandlerFuncs, SharedInformerFactory, uid_index
from podbay.client.record import EventRecorder
from podbay.scheduler.fit import usage_of
from podbay.scheduler.snapshot import Snapshot

log = logging.getLogger(__name__)

# Bindings sent and not yet answered. Each is assumed in the snapshot, so more in flight never
# overcommits a node; the bound keeps a slow API server from piling up requests.
MAX_BINDINGS_IN_FLIGHT = 32
# kube-scheduler's podInitialBackoffSeconds and podMaxBackoffSeconds: a pod whose binding failed
# waits this long before it is tried again, so an API server that is down is not called in a loop.
POD_INITIAL_BACKOFF = 1.0
POD_MAX_BACKOFF = 10.0


def backoff(attempts: int) -> float:
    """Seconds before the next try of a pod that failed `attempts` times in a row."""
    delay: float = min(POD_INITIAL_BACKOFF * 2 ** min(attempts - 1, 16), POD_MAX_BACKOFF)
    return delay


def _terminal(pod: Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


class Scheduler:
    def __init__(self, client: Any, informers: SharedInformerFactory, name: str = DEFAULT_SCHEDULER) -> None:
        self.client = client
        self.name = name
        self.events = EventRecorder(client, name)
        self.snapshot = Snapshot()
        self.pod_informer = informers.informer(Pod)  # every pod the API holds, looked up by uid
        self.pod_informer.add_indexers({UID_INDEX: uid_index})
        self.node_informer = informers.informer(Node)
        self.assumed: dict[str, str] = {}  # uid -> node, for pods decided here and not yet seen bound
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.queued: set[str] = set()
        self.unschedulable: set[str] = set()
        self._next_start = 0
        self._binding: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_BINDINGS_IN_FLIGHT)
        self.attempts: dict[str, int] = {}  # uid -> bindings failed in a row

    def _pod(self, uid: str) -> Pod | None:
        found = self.pod_informer.by_index(UID_INDEX, uid)
        return found[0] if found else None

    def _enqueue(self, uid: str) -> None:
        if uid not in self.queued:
            self.queued.add(uid)
            self.queue.put_nowait(uid)

    def _retry_unschedulable(self) -> None:
        for uid in list(self.unschedulable):
            self.unschedulable.discard(uid)
            self._enqueue(uid)

    def _wants(self, pod: Pod) -> bool:
        return (not pod.spec.node_name and pod.metadata.deletion_timestamp is None and not _terminal(pod)
                and (pod.spec.scheduler_name or DEFAULT_SCHEDULER) == self.name and uid_of(pod) not in self.assumed)

    def _count(self, pod: Pod) -> None:
        """Keeps each node's used room in step with the pods on it. A pod seen bound confirms
        (or overrides) an assumption; one seen unbound while assumed stays counted where it was
        assumed until its binding is answered."""
        uid = uid_of(pod)
        name = pod.spec.node_name
        if name and not _terminal(pod) and pod.metadata.deletion_timestamp is None:
            self.assumed.pop(uid, None)
            # A pod's spec is immutable but for images: what it uses is worked out once per uid.
            placed = self.snapshot.placed.get(uid)
            self.snapshot.place(uid, name, placed[1] if placed is not None else usage_of(pod))
        elif uid not in self.assumed:
            self.snapshot.unplace(uid)

    def _forget(self, uid: str, node: str) -> None:
        """The binding to `node` failed: the pod counts as what the watch last showed of it."""
        if self.assumed.get(uid) != node:
            return
        del self.assumed[uid]
        self.snapshot.unplace(uid)
        pod = self._pod(uid)
        if pod is not None:
            self._count(pod)
        self._retry_unschedulable()  # the room it held is free again

    def _node_changed(self, node: Node) -> None:
        self.snapshot.set_node(node)
        self._retry_unschedulable()

    def _node_deleted(self, node: Node) -> None:
        self.snapshot.remove_node(node.metadata.name or "")
        self._retry_unschedulable()

    def _pod_added(self, pod: Pod) -> None:
        self._pod_changed(None, pod)

    def _pod_changed(self, old: Pod | None, pod: Pod) -> None:
        uid = uid_of(pod)
        self._count(pod)
        if self._wants(pod):
            if uid not in self.unschedulable:
                self._enqueue(uid)
        elif old is not None and (_terminal(pod) and not _terminal(old)):
            self._retry_unschedulable()

    def _pod_deleted(self, pod: Pod) -> None:
        uid = uid_of(pod)
        self.assumed.pop(uid, None)
        self.attempts.pop(uid, None)
        self.snapshot.unplace(uid)
        self._retry_unschedulable()

    async def watch_nodes(self) -> None:
        await self.node_informer.serve(EventHandlerFuncs(self._node_changed, lambda _, new: self._node_changed(new),
                                                         self._node_deleted))

    async def watch_pods(self) -> None:
        await self.pod_informer.serve(EventHandlerFuncs(self._pod_added, self._pod_changed, self._pod_deleted))

    async def schedule_loop(self) -> None:
        while True:
            # A binding slot first, so the pod is read as it is when it can be bound.
            await self._slots.acquire()
            uid = await self.queue.get()
            self.queued.discard(uid)
            pod = self._pod(uid)
            if pod is None or not self._wants(pod):
                self._slots.release()
                continue
            binding = False
            try:
                binding = await self.schedule_one(pod)
            except Exception:
                log.exception("scheduling pod %s/%s", pod.metadata.namespace, pod.metadata.name)
            finally:
                if not binding:
                    self._slots.release()

    async def schedule_one(self, pod: Pod) -> bool:
        """The scheduling cycle: pick a node and assume the pod there at once; the binding
        cycle (the API call) runs on its own, as in kube-scheduler, so the next pod need not wait.
        True when a binding was started (it releases its slot when answered)."""
        usage = usage_of(pod)
        try:
            handler = await self._runtime_handler(pod)
        except NotFound:
            node, why = None, f'RuntimeClass "{pod.spec.runtime_class_name}" not found'
        else:
            decision = self.snapshot.decide(pod, usage, handler, self._next_start)
            self._next_start += decision.processed
            node, why = decision.node, decision.message
        uid = uid_of(pod)
        if node is None:
            self.unschedulable.add(uid)
            await self._unschedulable(pod, why)
            return False
        self.assumed[uid] = node
        self.snapshot.place(uid, node, usage)
        task = asyncio.create_task(self._bind(pod, node))
        self._binding.add(task)
        task.add_done_callback(self._binding.discard)
        return True

    def _retry(self, uid: str) -> None:
        pod = self._pod(uid)
        if pod is not None and self._wants(pod):
            self._enqueue(uid)

    async def _runtime_handler(self, pod: Pod) -> str | None:
        """The handler of the pod's RuntimeClass (None when it names none), read when the pod
        is scheduled: admission made sure the class existed when the pod was created."""
        if not pod.spec.runtime_class_name:
            return None
        runtime_class: RuntimeClass = await self.client.get(RuntimeClass, pod.spec.runtime_class_name)
        return runtime_class.handler

    async def _bind(self, pod: Pod, node: str) -> None:
        binding = Binding(metadata=ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace,
                                              uid=pod.metadata.uid),
                          target=ObjectReference(kind="Node", name=node))
        uid = uid_of(pod)
        try:
            await self.client.bind(binding)
        except (Conflict, NotFound):
            self._forget(uid, node)  # bound by someone else, or gone: the watch brings the truth
            return
        except Exception:
            log.exception("binding pod %s/%s", pod.metadata.namespace, pod.metadata.name)
            self._forget(uid, node)
            self.attempts[uid] = self.attempts.get(uid, 0) + 1
            asyncio.get_running_loop().call_later(backoff(self.attempts[uid]), self._retry, uid)
            return
        finally:
            self._slots.release()
        self.attempts.pop(uid, None)
        await self.events.record(pod, "Scheduled",
                                 f"Successfully assigned {pod.metadata.namespace}/{pod.metadata.name} to {node}")

    async def _unschedulable(self, pod: Pod, message: str) -> None:
        await self.events.record(pod, "FailedScheduling", message, warning=True)
        for _ in range(3):
            fresh = await self.client.get(Pod, pod.metadata.name, pod.metadata.namespace)
            if fresh.spec.node_name:
                return
            cond = next((c for c in fresh.status.conditions if c.type == "PodScheduled"), None)
            if cond is not None and cond.status == "False" and cond.message == message:
                return
            others = [c for c in fresh.status.conditions if c.type != "PodScheduled"]
            fresh.status.conditions = others + [PodCondition(
                type="PodScheduled", status="False", reason="Unschedulable", message=message,
                last_transition_time=now())]
            fresh.status.phase = fresh.status.phase or "Pending"
            try:
                await self.client.update_status(fresh)
                return
            except Conflict:
                continue
            except NotFound:
                return


async def run(client: Any, name: str = DEFAULT_SCHEDULER, informers: SharedInformerFactory | None = None) -> None:
    """`informers`: the process's, shared with its other consumers (default: the scheduler's own)."""
    factory = informers if informers is not None else SharedInformerFactory(client)
    scheduler = Scheduler(client, factory, name)
    try:
        await asyncio.gather(scheduler.watch_nodes(), scheduler.watch_pods(), scheduler.schedule_loop())
    finally:
        await scheduler.events.close()
        if factory is not informers:
            await factory.shutdown()
