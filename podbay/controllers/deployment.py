"""The Deployment controller (kube-controller-manager's deployment): a ReplicaSet per pod
template named `<deployment>-<pod-template-hash>`, rolled to with RollingUpdate (maxSurge,
maxUnavailable) or Recreate, revisions in `deployment.kubernetes.io/revision`, old sets beyond
revisionHistoryLimit deleted, and the status and conditions `kubectl rollout status` reads.

As the ReplicaSet controller, it reads its sets live on every sync and syncs one deployment at a
time; the watches (deployments, replica sets, pods) only say which deployment to sync."""
from __future__ import annotations

import asyncio
import contextlib

from podbay.api import Pod
from podbay.api.apps import Deployment, LabelSelector, ReplicaSet, controller_of, selector_matches
from podbay.api.errors import Conflict, NotFound
from podbay.client import Client
from podbay.client.informer import NAMESPACE_INDEX, Key, SharedInformerFactory, WatchEvents, key_of
from podbay.client.record import EventRecorder
from podbay.controllers.deploymentstrategy import rollout_recreate, rollout_rolling
from podbay.controllers.deploymentsync import DeploymentSyncer, find_new
from podbay.controllers.workqueue import WorkQueue, controller_ref, set_owner_references


class DeploymentController:
    def __init__(self, client: Client, informers: SharedInformerFactory) -> None:
        self.client = client
        self.queue: WorkQueue[Key] = WorkQueue()
        self.recorder = EventRecorder(client, "deployment-controller")
        self.syncer = DeploymentSyncer(client, self.queue, self.recorder)
        self.deployments = informers.informer(Deployment)
        self.replica_sets = informers.informer(ReplicaSet)
        self.pods = informers.informer(Pod)
        self._set_owner: dict[Key, str] = {}  # replica set -> the deployment controlling it

    # -- which deployment a change concerns --

    def _on_deployment(self, type_: str, d: Deployment) -> None:
        self.queue.add(key_of(d))

    def _on_replica_set(self, type_: str, rs: ReplicaSet) -> None:
        ns = rs.metadata.namespace or ""
        ref = controller_of(rs.metadata)
        if ref is not None:
            if ref.kind == "Deployment":
                self._set_owner[key_of(rs)] = ref.name
                self.queue.add((ns, ref.name))
            return
        for d in self.deployments.by_index(NAMESPACE_INDEX, ns):
            if d.spec.selector and selector_matches(d.spec.selector, rs.metadata.labels):
                self.queue.add(key_of(d))

    def _on_pod(self, type_: str, pod: Pod) -> None:
        # Recreate waits for the old pods to be gone: their deletion is worth a sync.
        ref = controller_of(pod.metadata)
        if type_ == "DELETED" and ref is not None and ref.kind == "ReplicaSet":
            owner = self._set_owner.get((pod.metadata.namespace or "", ref.name))
            if owner is not None:
                self.queue.add((pod.metadata.namespace or "", owner))

    # -- sync --

    async def sync(self, key: Key) -> None:
        ns, name = key
        try:
            d = await self.client.get(Deployment, name, ns)
        except NotFound:
            return
        rss = await self._claim(d)
        s = self.syncer
        if d.metadata.deletion_timestamp is None and not await s.check_paused_conditions(d):
            return
        if d.metadata.deletion_timestamp is None and d.spec.paused and s.scaling_event(d, rss):
            await s.scale_deployment(d, rss)  # dc.sync: a paused deployment still scales
            return
        if d.metadata.deletion_timestamp is not None or d.spec.paused:
            await s.sync_status(d, rss, find_new(d, rss))
            return
        if s.scaling_event(d, rss):
            await s.scale_deployment(d, rss)
            return
        if d.spec.strategy.type == "Recreate":
            await rollout_recreate(s, d, rss)
        else:
            await rollout_rolling(s, d, rss)

    async def _claim(self, d: Deployment) -> list[ReplicaSet]:
        """ClaimReplicaSets: owned sets that match stay, others are released, orphans adopted."""
        selector = d.spec.selector or LabelSelector()
        uid = d.metadata.uid
        rss, _ = await self.client.list(ReplicaSet, d.metadata.namespace)
        owned: list[ReplicaSet] = []
        for rs in rss:
            ref = controller_of(rs.metadata)
            matches = selector_matches(selector, rs.metadata.labels)
            if ref is not None:
                if ref.uid != uid:
                    continue
                if matches:
                    owned.append(rs)
                elif d.metadata.deletion_timestamp is None:
                    with contextlib.suppress(NotFound, Conflict):
                        await set_owner_references(self.client, ReplicaSet, rs,
                                                   [r for r in rs.metadata.owner_references if r.uid != uid])
                continue
            if matches and rs.metadata.deletion_timestamp is None and d.metadata.deletion_timestamp is None:
                with contextlib.suppress(NotFound, Conflict):
                    owned.append(await set_owner_references(
                        self.client, ReplicaSet, rs,
                        [*rs.metadata.owner_references, controller_ref(d, "apps/v1", "Deployment")]))
        return owned

    async def run(self) -> None:
        try:
            await asyncio.gather(
                self.deployments.serve(WatchEvents(self._on_deployment)),
                self.replica_sets.serve(WatchEvents(self._on_replica_set)),
                self.pods.serve(WatchEvents(self._on_pod)),
                self.queue.work(self.sync, "deployment"))
        finally:
            await self.recorder.close()
