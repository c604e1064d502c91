"""The scheduler loop: watches pods and nodes, binds each unbound pod to a node it fits.

One pod at a time from a FIFO queue, as kube-scheduler's scheduling cycle; a
pod that fits nowhere gets PodScheduled=False/Unschedulable and a
FailedScheduling event and is retried when a node or a pod changes.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from podbay.api import Binding, Node, ObjectMeta, ObjectReference, Pod, PodCondition, RuntimeClass, now
from podbay.api.defaults import DEFAULT_SCHEDULER
from podbay.api.errors import Conflict, NotFound
from podbay.api.resources import pod_requests
from podbay.api.stored import name_of, uid_of
from podbay.client.record import EventRecorder
from podbay.scheduler.fit import NodeInfo, failure_message, score, unfit_reasons

log = logging.getLogger(__name__)

MIN_FEASIBLE_NODES_TO_FIND = 100


def _terminal(pod: Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


class Scheduler:
    def __init__(self, client: Any, name: str = DEFAULT_SCHEDULER) -> None:
        self.client = client
        self.name = name
        self.events = EventRecorder(client, name)
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, Pod] = {}  # by uid, every pod the API holds
        self.counted: dict[str, tuple[str, Pod]] = {}  # uid -> (node, pod) for pods using a node's room
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.queued: set[str] = set()
        self.unschedulable: set[str] = set()
        self._next_start = 0
        self._binding: set[asyncio.Task[None]] = set()

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
                and (pod.spec.scheduler_name or DEFAULT_SCHEDULER) == self.name)

    def _count(self, pod: Pod) -> None:
        """Keeps each node's used room in step with the pods bound to it."""
        uid = uid_of(pod)
        previous = self.counted.pop(uid, None)
        if previous is not None and previous[0] in self.nodes:
            self.nodes[previous[0]].remove(previous[1])
        name = pod.spec.node_name
        if name and not _terminal(pod) and pod.metadata.deletion_timestamp is None:
            self.counted[uid] = (name, pod)
            if name in self.nodes:
                self.nodes[name].add(pod)

    def _uncount(self, uid: str) -> None:
        previous = self.counted.pop(uid, None)
        if previous is not None and previous[0] in self.nodes:
            self.nodes[previous[0]].remove(previous[1])

    async def watch_nodes(self) -> None:
        async for kind, node in self.client.watch(Node):
            name = node.metadata.name
            if kind == "DELETED":
                self.nodes.pop(name, None)
            elif name in self.nodes:
                self.nodes[name].set_node(node)
            else:
                self.nodes[name] = NodeInfo.of(node, tuple(p for n, p in self.counted.values() if n == name))
            self._retry_unschedulable()

    async def watch_pods(self) -> None:
        async for kind, pod in self.client.watch(Pod):
            uid = pod.metadata.uid
            if kind == "DELETED":
                self.pods.pop(uid, None)
                self._uncount(uid)
                self._retry_unschedulable()
                continue
            old = self.pods.get(uid)
            self.pods[uid] = pod
            self._count(pod)
            if self._wants(pod):
                if uid not in self.unschedulable:
                    self._enqueue(uid)
            elif old is not None and (_terminal(pod) and not _terminal(old)):
                self._retry_unschedulable()

    def nodes_to_find(self, total: int) -> int:
        """kube-scheduler's percentageOfNodesToScore: in a large cluster, stop looking once
        this many feasible nodes are found (50% less 1% per 125 nodes, at least 5%, at least 100)."""
        if total < MIN_FEASIBLE_NODES_TO_FIND:
            return total
        percentage = max(5, 50 - total // 125)
        return max(MIN_FEASIBLE_NODES_TO_FIND, total * percentage // 100)

    def pick(self, pod: Pod, handler: str | None = None) -> tuple[str | None, str]:
        infos = list(self.nodes.values())
        want = pod_requests(pod)
        enough = self.nodes_to_find(len(infos))
        reasons: dict[str, list[str]] = {}
        fitting: list[NodeInfo] = []
        # Start where the previous search stopped, so every node gets its turn (as kube-scheduler does).
        start = self._next_start % len(infos) if infos else 0
        for k in range(len(infos)):
            info = infos[(start + k) % len(infos)]
            why = unfit_reasons(pod, info, want, handler)
            if why:
                reasons[name_of(info.node)] = why
            else:
                fitting.append(info)
                if len(fitting) >= enough:
                    self._next_start = start + k + 1
                    break
        if not fitting:
            return None, failure_message(reasons, len(infos))
        best = max(fitting, key=lambda i: (score(want, i), i.node.metadata.name))
        return best.node.metadata.name, ""

    async def schedule_loop(self) -> None:
        while True:
            uid = await self.queue.get()
            self.queued.discard(uid)
            pod = self.pods.get(uid)
            if pod is None or not self._wants(pod):
                continue
            try:
                await self.schedule_one(pod)
            except Exception:
                log.exception("scheduling pod %s/%s", pod.metadata.namespace, pod.metadata.name)

    async def schedule_one(self, pod: Pod) -> None:
        """The scheduling cycle: pick a node and assume the pod there at once; the binding
        cycle (the API call) runs on its own, as in kube-scheduler, so the next pod need not wait."""
        try:
            handler = await self._runtime_handler(pod)
        except NotFound:
            node, why = None, f'RuntimeClass "{pod.spec.runtime_class_name}" not found'
        else:
            node, why = self.pick(pod, handler)
        if node is None:
            self.unschedulable.add(uid_of(pod))
            await self._unschedulable(pod, why)
            return
        assumed = pod.model_copy(deep=True)
        assumed.spec.node_name = node
        self.pods[uid_of(pod)] = assumed
        self._count(assumed)
        task = asyncio.create_task(self._bind(pod, node))
        self._binding.add(task)
        task.add_done_callback(self._binding.discard)

    async def _runtime_handler(self, pod: Pod) -> str | None:
        """The handler of the pod's RuntimeClass (None when it names none), read when the pod
        is scheduled: admission made sure the class existed when the pod was created."""
        if not pod.spec.runtime_class_name:
            return None
        return (await self.client.get(RuntimeClass, pod.spec.runtime_class_name)).handler

    async def _bind(self, pod: Pod, node: str) -> None:
        binding = Binding(metadata=ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace,
                                              uid=pod.metadata.uid),
                          target=ObjectReference(kind="Node", name=node))
        try:
            await self.client.bind(binding)
        except (Conflict, NotFound):
            return  # bound by someone else, or gone: the watch brings the truth
        except Exception:
            log.exception("binding pod %s/%s", pod.metadata.namespace, pod.metadata.name)
            # Forget the assumption and try again.
            uid = uid_of(pod)
            if self.pods.get(uid) is not None and self.pods[uid].spec.node_name == node:
                self.pods[uid] = pod
                self._count(pod)
                self._enqueue(uid)
            return
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


async def run(client: Any, name: str = DEFAULT_SCHEDULER) -> None:
    scheduler = Scheduler(client, name)
    try:
        await asyncio.gather(scheduler.watch_nodes(), scheduler.watch_pods(), scheduler.schedule_loop())
    finally:
        await scheduler.events.close()
