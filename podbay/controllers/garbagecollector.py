"""The garbage collector (kube-controller-manager's garbagecollector): objects whose owners are
all gone are deleted (background cascading); an owner deleted in the foreground (the
`foregroundDeletion` finalizer) has its dependents deleted and goes once no dependent with
blockOwnerDeletion is left; an owner deleted with the `orphan` finalizer has its dependents'
references to it removed, then the finalizer.

Watches of every kind that owns or is owned build the graph of owner references (which
dependents an owner has); whether an owner exists is always asked of the API itself (the live
GET of Kubernetes' isDangling), so a dependent is never deleted on a stale view."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Callable

from podbay.api import ConfigMap, Lease, Node, OwnerReference, Pod, Secret
from podbay.api.apps import Deployment, ReplicaSet, ReplicationController
from podbay.api.batch import Job
from podbay.api.errors import Conflict, NotFound
from podbay.api.owners import FOREGROUND_FINALIZER, ORPHAN_FINALIZER, PropagationPolicy
from podbay.client import Client
from podbay.client.informer import Object, SharedInformerFactory, WatchEvents
from podbay.controllers.workqueue import WorkQueue, set_owner_references

log = logging.getLogger(__name__)

Model = type[Pod] | type[ReplicaSet] | type[ReplicationController] | type[Deployment] | type[Job] | \
    type[ConfigMap] | type[Secret] | type[Lease] | type[Node]
# The kinds the collector watches, and how an owner reference's (group, kind) names one.
WATCHED: tuple[Model, ...] = (Pod, ReplicaSet, ReplicationController, Deployment, Job, ConfigMap, Secret)
_BY_KIND: dict[tuple[str, str], Model] = {
    ("", "Pod"): Pod, ("apps", "ReplicaSet"): ReplicaSet, ("", "ReplicationController"): ReplicationController,
    ("apps", "Deployment"): Deployment, ("batch", "Job"): Job, ("", "ConfigMap"): ConfigMap,
    ("", "Secret"): Secret, ("coordination.k8s.io", "Lease"): Lease, ("", "Node"): Node,
}
_CLUSTER_SCOPED = (Node,)


def owner_model(ref: OwnerReference) -> Model | None:
    group = ref.api_version.rpartition("/")[0]
    return _BY_KIND.get((group, ref.kind))


@dataclass
class _Node:
    """One object of the graph: enough to find it again and to know whom it references."""
    model: Model
    namespace: str
    name: str
    owners: list[OwnerReference] = field(default_factory=list)


class GarbageCollector:
    def __init__(self, client: Client, informers: SharedInformerFactory) -> None:
        self.client = client
        self.informers = informers
        self.queue: WorkQueue[str] = WorkQueue()  # uids
        self.nodes: dict[str, _Node] = {}
        self.dependents: dict[str, set[str]] = {}

    # -- the graph ----------------------------------------------------------------------

    def _handle(self, model: Model, type_: str, obj: Object) -> None:
        meta = obj.metadata
        uid = meta.uid or ""
        old = self.nodes.get(uid)
        for ref in old.owners if old else []:
            self.dependents.get(ref.uid, set()).discard(uid)
        if type_ == "DELETED":
            self.nodes.pop(uid, None)
            # Its dependents may now be dangling; an owner deleting in the foreground may be done.
            for dep in self.dependents.get(uid, set()):
                self.queue.add(dep)
            for ref in meta.owner_references:
                self.queue.add(ref.uid)
            return
        self.nodes[uid] = _Node(model, meta.namespace or "", meta.name or "", list(meta.owner_references))
        for ref in meta.owner_references:
            self.dependents.setdefault(ref.uid, set()).add(uid)
        changed_owners = old is None or old.owners != meta.owner_references
        if meta.owner_references and changed_owners:
            self.queue.add(uid)
        if meta.deletion_timestamp is not None and {ORPHAN_FINALIZER, FOREGROUND_FINALIZER} & set(meta.finalizers):
            self.queue.add(uid)
            for dep in self.dependents.get(uid, set()):
                self.queue.add(dep)
        if old is not None and old.owners != meta.owner_references:
            for ref in old.owners:  # a dependent that left an owner deleting in the foreground
                self.queue.add(ref.uid)

    # -- one object -----------------------------------------------------------------------

    async def _live(self, model: Model, namespace: str, name: str, uid: str) -> Object | None:
        """The object as the API has it now, or None when it is gone (or is another one)."""
        try:
            obj: Object = await self.client.get(model, name, None if model in _CLUSTER_SCOPED else namespace)
        except NotFound:
            return None
        return obj if obj.metadata.uid == uid else None

    async def sync(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None:
            return
        obj = await self._live(node.model, node.namespace, node.name, uid)
        if obj is None:
            return
        meta = obj.metadata
        if meta.deletion_timestamp is not None:
            if ORPHAN_FINALIZER in meta.finalizers:
                await self._orphan_dependents(node, obj)
            elif FOREGROUND_FINALIZER in meta.finalizers:
                await self._delete_dependents(node, obj)
            return
        if meta.owner_references:
            await self._attempt_to_delete(node, obj)

    async def _owner_state(self, dependent: _Node, ref: OwnerReference) -> str:
        """"solid", "dangling" (gone, or another object now has its name) or "waiting" (being
        deleted in the foreground), as attemptToDeleteItem classifies owners."""
        model = owner_model(ref)
        if model is None:
            return "solid"  # a kind podbay does not serve: never a reason to delete
        owner = await self._live(model, dependent.namespace, ref.name, ref.uid)
        if owner is None:
            return "dangling"
        meta = owner.metadata
        if meta.deletion_timestamp is not None and FOREGROUND_FINALIZER in meta.finalizers:
            return "waiting"
        return "solid"

    async def _attempt_to_delete(self, node: _Node, obj: Object) -> None:
        states = {ref.uid: await self._owner_state(node, ref) for ref in obj.metadata.owner_references}
        if "solid" in states.values():
            gone = {uid for uid, state in states.items() if state != "solid"}
            if gone:
                refs = [r for r in obj.metadata.owner_references if r.uid not in gone]
                with contextlib.suppress(NotFound, Conflict):
                    await set_owner_references(self.client, node.model, obj, refs)
            return
        meta = obj.metadata
        policy: PropagationPolicy = "Background"
        if "waiting" in states.values() and self.dependents.get(meta.uid or ""):
            policy = "Foreground"  # keeps blocking its owner until its own dependents are gone
        elif ORPHAN_FINALIZER in meta.finalizers:
            policy = "Orphan"
        elif FOREGROUND_FINALIZER in meta.finalizers:
            policy = "Foreground"
        log.info("garbage collector: deleting %s %s/%s (owners gone), %s", node.model.__name__, node.namespace,
                 node.name, policy)
        with contextlib.suppress(NotFound, Conflict):
            await self.client.delete(node.model, node.name, node.namespace or None, uid=meta.uid,
                                     propagation_policy=policy)

    def _dependent_nodes(self, uid: str) -> list[tuple[str, _Node]]:
        return [(d, self.nodes[d]) for d in sorted(self.dependents.get(uid, set())) if d in self.nodes]

    async def _orphan_dependents(self, node: _Node, owner: Object) -> None:
        uid = owner.metadata.uid or ""
        for dep_uid, dep in self._dependent_nodes(uid):
            for _ in range(5):
                obj = await self._live(dep.model, dep.namespace, dep.name, dep_uid)
                if obj is None:
                    break
                refs = [r for r in obj.metadata.owner_references if r.uid != uid]
                if refs == obj.metadata.owner_references:
                    break
                try:
                    await set_owner_references(self.client, dep.model, obj, refs)
                    break
                except Conflict:
                    continue
                except NotFound:
                    break
            else:
                raise Conflict(f"could not orphan {dep.name}: too many concurrent updates")
        await self._remove_finalizer(node, owner, ORPHAN_FINALIZER)

    async def _delete_dependents(self, node: _Node, owner: Object) -> None:
        """The foreground: every dependent is deleted; the owner's finalizer goes when none that
        blocks its deletion is left."""
        uid = owner.metadata.uid or ""
        blocking = 0
        for dep_uid, dep in self._dependent_nodes(uid):
            obj = await self._live(dep.model, dep.namespace, dep.name, dep_uid)
            if obj is None:
                continue
            ref = next((r for r in obj.metadata.owner_references if r.uid == uid), None)
            if ref is None:
                continue
            if ref.block_owner_deletion:
                blocking += 1
            if obj.metadata.deletion_timestamp is None:
                await self._attempt_to_delete(dep, obj)
        if blocking == 0:
            await self._remove_finalizer(node, owner, FOREGROUND_FINALIZER)

    async def _remove_finalizer(self, node: _Node, owner: Object, finalizer: str) -> None:
        finalizers = [f for f in owner.metadata.finalizers if f != finalizer]
        patch = {"metadata": {"finalizers": finalizers or None, "resourceVersion": owner.metadata.resource_version}}
        with contextlib.suppress(NotFound):
            await self.client.patch(node.model, node.name, patch, node.namespace or None, patch_type="merge")
            log.info("garbage collector: %s %s/%s: removed the %s finalizer", node.model.__name__, node.namespace,
                     node.name, finalizer)

    async def run(self) -> None:
        def handler(model: Model) -> Callable[[str, Object], None]:
            return lambda type_, obj: self._handle(model, type_, obj)
        await asyncio.gather(*(self.informers.informer(m).serve(WatchEvents(handler(m))) for m in WATCHED),
                             self.queue.work(self.sync, "garbage collector"))
