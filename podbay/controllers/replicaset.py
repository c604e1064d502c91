"""The ReplicaSet controller (kube-controller-manager's replicaset, which also runs the legacy
ReplicationControllers): keeps `spec.replicas` active pods matching the selector, made from the
template; adopts orphans that match and releases pods that stop matching; replaces pods that
were deleted or failed; on scale-down removes the pods Kubernetes ranks first; reports status.

Pods are read live from the API on every sync (the watches only say which set to sync), and
one worker syncs one set at a time, so its own creations are always seen: no expectations
bookkeeping is needed to avoid creating twice."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from podbay.api import Pod, now
from podbay.api.apps import LabelSelector, PodTemplateSpec, ReplicaSet, ReplicaSetCondition, ReplicaSetStatus, \
    ReplicationController, controller_of, selector_matches
from podbay.api.errors import APIError, Conflict, NotFound
from podbay.client import Client
from podbay.client.informer import NAMESPACE_INDEX, OWNER_UID_INDEX, Key, SharedInformer, SharedInformerFactory, \
    WatchEvents, key_of
from podbay.client.record import EventRecorder
from podbay.controllers.workqueue import WorkQueue, controller_ref, is_pod_active, is_pod_available, is_pod_ready, \
    pod_from_template, ready_since, set_owner_references

log = logging.getLogger(__name__)

BURST_REPLICAS = 500  # at most this many pods made or removed per sync, as Kubernetes' burstReplicas
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


# --- pure rules ----------------------------------------------------------------------------


def _max_restarts(pod: Pod) -> int:
    return max((s.restart_count or 0 for s in pod.status.container_statuses), default=0)


def _log_rank(t: datetime, at: datetime) -> int:
    """The log2 bucket of an age in nanoseconds (logarithmicRankDiff); -1 for no age."""
    d = (at - t).total_seconds() * 1e9
    return int(math.log2(d)) if d > 0 else -1


def _deletion_cost(pod: Pod) -> int:
    try:
        return int(pod.metadata.annotations.get(DELETION_COST, "0"))
    except ValueError:
        return 0


def _compare(a: Pod, b: Pod, rank_a: int, rank_b: int, at: datetime) -> int:
    """ActivePodsWithRanks.Less as a comparison (negative: `a` goes first)."""
    def by(first: bool) -> int:
        return -1 if first else 1
    if a.spec.node_name != b.spec.node_name and (not a.spec.node_name or not b.spec.node_name):
        return by(not a.spec.node_name)  # 1. unassigned before assigned
    pa, pb = _PHASE_ORDER.get(a.status.phase or "", 0), _PHASE_ORDER.get(b.status.phase or "", 0)
    if pa != pb:
        return by(pa < pb)  # 2. Pending < Unknown < Running
    if is_pod_ready(a) != is_pod_ready(b):
        return by(not is_pod_ready(a))  # 3. not ready before ready
    if _deletion_cost(a) != _deletion_cost(b):
        return by(_deletion_cost(a) < _deletion_cost(b))  # 4. lower pod-deletion-cost first
    if rank_a != rank_b:
        return by(rank_a > rank_b)  # 5. doubled up on a node before alone
    if is_pod_ready(a) and is_pod_ready(b):  # 6. ready for less time first (log buckets)
        ra, rb = ready_since(a), ready_since(b)
        if ra != rb:
            if ra is None or rb is None:
                return by(ra is None)
            diff = _log_rank(ra, at) - _log_rank(rb, at)
            if diff != 0:
                return by(diff < 0)
            return by((a.metadata.uid or "") < (b.metadata.uid or ""))
    if _max_restarts(a) != _max_restarts(b):
        return by(_max_restarts(a) > _max_restarts(b))  # 7. more restarts first
    ca, cb = a.metadata.creation_timestamp, b.metadata.creation_timestamp
    if ca != cb:  # 8. newer first (log buckets)
        if ca is None or cb is None:
            return by(ca is None)
        diff = _log_rank(ca, at) - _log_rank(cb, at)
        if diff != 0:
            return by(diff < 0)
        return by((a.metadata.uid or "") < (b.metadata.uid or ""))
    return 0


def pods_to_delete(active: list[Pod], related: list[Pod], count: int, at: datetime) -> list[Pod]:
    """getPodsToDelete: the `count` pods to remove on scale-down, ranked as Kubernetes ranks them;
    a pod's rank is how many `related` active pods share its node."""
    if count >= len(active):
        return list(active)
    on_node: dict[str, int] = {}
    for p in related:
        if p.spec.node_name and is_pod_active(p):
            on_node[p.spec.node_name] = on_node.get(p.spec.node_name, 0) + 1
    ranked = [(p, on_node.get(p.spec.node_name, 0) if p.spec.node_name else 0) for p in active]
    def order(x: tuple[Pod, int], y: tuple[Pod, int]) -> int:
        return _compare(x[0], y[0], x[1], y[1], at)

    ranked.sort(key=functools.cmp_to_key(order))
    return [p for p, _ in ranked[:count]]


def calculate_status(old: ReplicaSetStatus, generation: int | None, template_labels: dict[str, str],
                     active: list[Pod], min_ready_seconds: int, at: datetime,
                     failure: tuple[str, str] | None) -> ReplicaSetStatus:
    """calculateStatus: counts of the active pods; ReplicaFailure (reason, message) while making
    or removing pods fails."""
    status = ReplicaSetStatus(
        replicas=len(active),
        fully_labeled_replicas=sum(1 for p in active
                                   if all(p.metadata.labels.get(k) == v for k, v in template_labels.items())),
        ready_replicas=sum(1 for p in active if is_pod_ready(p)),
        available_replicas=sum(1 for p in active if is_pod_available(p, min_ready_seconds, at)),
        observed_generation=generation,
        conditions=[c for c in old.conditions if c.type != "ReplicaFailure"],
    )
    if failure is not None:
        previous = next((c for c in old.conditions if c.type == "ReplicaFailure"), None)
        status.conditions.append(ReplicaSetCondition(
            type="ReplicaFailure", status="True", reason=failure[0], message=failure[1],
            last_transition_time=previous.last_transition_time if previous else at))
    return status


# --- the controller ------------------------------------------------------------------------

RS = TypeVar("RS", ReplicaSet, ReplicationController)


@dataclass(frozen=True)
class _Kind(Generic[RS]):
    model: type[RS]
    api_version: str
    name: str


def _selector(owner: ReplicaSet | ReplicationController) -> LabelSelector:
    if isinstance(owner, ReplicationController):
        return LabelSelector(match_labels=owner.spec.selector)
    return owner.spec.selector or LabelSelector()


def _controlled_by(pod: Pod, owner: ReplicaSet | ReplicationController) -> bool:
    ref = controller_of(pod.metadata)
    return ref is not None and ref.uid == owner.metadata.uid and selector_matches(_selector(owner),
                                                                                 pod.metadata.labels)


def _template(owner: ReplicaSet | ReplicationController) -> PodTemplateSpec | None:
    return owner.spec.template


class ReplicaSetController(Generic[RS]):
    def __init__(self, client: Client, informers: SharedInformerFactory, kind: type[RS]) -> None:
        self.client = client
        self.kind: _Kind[RS] = _Kind(kind, "apps/v1" if kind is ReplicaSet else "v1", kind.__name__)
        self.queue: WorkQueue[Key] = WorkQueue()
        self.recorder = EventRecorder(client, "replicaset-controller" if kind is ReplicaSet
                                      else "replication-controller")
        self.owners: SharedInformer[RS] = informers.informer(kind)  # to find owners of orphans
        self.pods = informers.informer(Pod)

    # -- event handlers: which sets a change concerns --

    def _on_owner(self, type_: str, owner: RS) -> None:
        self.queue.add(key_of(owner))

    def _on_pod(self, type_: str, pod: Pod) -> None:
        ref = controller_of(pod.metadata)
        ns = pod.metadata.namespace or ""
        if ref is not None:
            if ref.kind == self.kind.name and ref.api_version.startswith(self.kind.api_version.split("/")[0]):
                self.queue.add((ns, ref.name))
            return
        if type_ == "DELETED" or pod.metadata.deletion_timestamp is not None:
            return
        for owner in self.owners.by_index(NAMESPACE_INDEX, ns):
            if selector_matches(_selector(owner), pod.metadata.labels):
                self.queue.add(key_of(owner))

    # -- sync --

    async def sync(self, key: Key) -> None:
        ns, name = key
        try:
            owner = await self.client.get(self.kind.model, name, ns)
        except NotFound:
            return
        pods, _ = await self.client.list(Pod, ns)
        owned = await self._claim(owner, pods)
        active = [p for p in owned if is_pod_active(p)]
        failure: tuple[str, str] | None = None
        if owner.metadata.deletion_timestamp is None:
            failure = await self._manage(owner, active, self._related(owner, pods, owned))
            # The status counts what there is after the changes.
            pods, _ = await self.client.list(Pod, ns)
            active = [p for p in pods if is_pod_active(p) and _controlled_by(p, owner)]
        await self._update_status(owner, active, failure)

    async def _claim(self, owner: RS, pods: list[Pod]) -> list[Pod]:
        """ClaimPods: owned pods that still match stay; those that do not are released;
        matching orphans are adopted (unless the owner is going)."""
        selector = _selector(owner)
        uid = owner.metadata.uid
        owned: list[Pod] = []
        candidate: Pod
        for candidate in pods:
            ref = controller_of(candidate.metadata)
            matches = selector_matches(selector, candidate.metadata.labels)
            if ref is not None:
                if ref.uid != uid:
                    continue
                if matches:
                    owned.append(candidate)
                elif owner.metadata.deletion_timestamp is None:
                    refs = [r for r in candidate.metadata.owner_references if r.uid != uid]
                    with contextlib.suppress(NotFound, Conflict):
                        await set_owner_references(self.client, Pod, candidate, refs)
                        log.info("%s %s/%s released pod %s", self.kind.name, candidate.metadata.namespace,
                                 owner.metadata.name, candidate.metadata.name)
                continue
            if not matches or candidate.metadata.deletion_timestamp is not None or owner.metadata.deletion_timestamp:
                continue
            ours = controller_ref(owner, self.kind.api_version, self.kind.name)
            with contextlib.suppress(NotFound, Conflict):
                adopted = await set_owner_references(self.client, Pod, candidate, [*candidate.metadata.owner_references, ours])
                owned.append(adopted)
                log.info("%s %s/%s adopted pod %s", self.kind.name, candidate.metadata.namespace, owner.metadata.name,
                         candidate.metadata.name)
        return owned

    def _related(self, owner: RS, pods: list[Pod], owned: list[Pod]) -> list[Pod]:
        """getIndirectlyRelatedPods: the pods of every set controlled by this set's controller
        (a Deployment's sets) besides this set's own (`owned`, adopted ones included)."""
        uids = {owner.metadata.uid}
        parent = controller_of(owner.metadata)
        if parent is not None:
            uids |= {o.metadata.uid for o in self.owners.by_index(OWNER_UID_INDEX, parent.uid)
                     if (ref := controller_of(o.metadata)) is not None and ref.uid == parent.uid}
        mine = {p.metadata.uid for p in owned}
        return owned + [p for p in pods if p.metadata.uid not in mine
                        and (ref := controller_of(p.metadata)) is not None and ref.uid in uids]

    async def _manage(self, owner: RS, active: list[Pod], related: list[Pod]) -> tuple[str, str] | None:
        """manageReplicas: make or remove the difference; (reason, message) of a failure."""
        wanted = owner.spec.replicas if owner.spec.replicas is not None else 1
        diff = len(active) - wanted
        ns = owner.metadata.namespace or ""
        template = _template(owner)
        if diff < 0 and template is not None:
            ref = controller_ref(owner, self.kind.api_version, self.kind.name)
            for _ in range(min(-diff, BURST_REPLICAS)):
                pod = pod_from_template(template, ns, owner.metadata.name or "", ref)
                try:
                    made = await self.client.create(pod)
                except APIError as exc:
                    await self.recorder.record(owner, "FailedCreate", f"Error creating: {exc}", warning=True)
                    return ("FailedCreate", str(exc))
                await self.recorder.record(owner, "SuccessfulCreate", f"Created pod: {made.metadata.name}")
        elif diff > 0:
            for pod in pods_to_delete(active, related, min(diff, BURST_REPLICAS), now()):
                try:
                    await self.client.delete(Pod, pod.metadata.name or "", ns, uid=pod.metadata.uid)
                except NotFound:
                    continue
                except APIError as exc:
                    await self.recorder.record(owner, "FailedDelete", f"Error deleting: {exc}", warning=True)
                    return ("FailedDelete", str(exc))
                await self.recorder.record(owner, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
        return None

    async def _update_status(self, owner: RS, active: list[Pod], failure: tuple[str, str] | None) -> None:
        template = _template(owner)
        min_ready = owner.spec.min_ready_seconds or 0
        at = now()
        status = calculate_status(owner.status, owner.metadata.generation,
                                  template.metadata.labels if template else {}, active, min_ready, at, failure)
        if status != owner.status:
            owner.status = status
            with contextlib.suppress(NotFound, Conflict):
                await self.client.update_status(owner)
        if min_ready and (status.ready_replicas or 0) > (status.available_replicas or 0):
            # A ready pod becomes available minReadySeconds later, with no event to say so.
            self.queue.add_after(key_of(owner), min_ready)

    async def run(self) -> None:
        try:
            await asyncio.gather(
                self.owners.serve(WatchEvents(self._on_owner)),
                self.pods.serve(WatchEvents(self._on_pod)),
                self.queue.work(self.sync, self.kind.name))
        finally:
            await self.recorder.close()

