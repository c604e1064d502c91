"""The Deployment controller (kube-controller-manager's deployment): a ReplicaSet per pod
template named `<deployment>-<pod-template-hash>`, rolled to with RollingUpdate (maxSurge,
maxUnavailable) or Recreate, revisions in `deployment.kubernetes.io/revision`, old sets beyond
revisionHistoryLimit deleted, and the status and conditions `kubectl rollout status` reads.

As the ReplicaSet controller, it reads its sets live on every sync and syncs one deployment at a
time; the watches (deployments, replica sets, pods) only say which deployment to sync."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from podbay.api import Pod, now
from podbay.api.apps import Deployment, DeploymentStatus, LabelSelector, ReplicaSet, ReplicaSetSpec, \
    controller_of, selector_matches
from podbay.api.errors import AlreadyExists, Conflict, NotFound
from podbay.api.models import ObjectMeta
from podbay.client import Client
from podbay.client.informer import NAMESPACE_INDEX, SharedInformerFactory, WatchEvents
from podbay.client.record import EventRecorder
from podbay.controllers.rollout import DESIRED_REPLICAS, FOUND_NEW_RS, MAX_REPLICAS, MIN_AVAILABLE, MIN_UNAVAILABLE, \
    NEW_RS_CREATED, PAUSED, POD_TEMPLATE_HASH, RESUMED, REVISION, TIMED_OUT, SKIPPED_ANNOTATIONS, ActiveSet, OldSet, canonical_template, \
    compute_hash, condition, \
    deployment_complete, new_rs_new_replicas, old_sets_scale_down, progress_status, proportional_sizes, \
    set_condition, surge_and_unavailable
from podbay.controllers.workqueue import Key, WorkQueue, controller_ref, key_of, set_owner_references

log = logging.getLogger(__name__)


def _revision(rs: ReplicaSet) -> int:
    try:
        return int(rs.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def _by_age(rss: list[ReplicaSet]) -> list[ReplicaSet]:
    epoch = datetime.min.replace(tzinfo=now().tzinfo)
    return sorted(rss, key=lambda r: (r.metadata.creation_timestamp or epoch, r.metadata.name or ""))


class DeploymentController:
    def __init__(self, client: Client, informers: SharedInformerFactory) -> None:
        self.client = client
        self.queue: WorkQueue[Key] = WorkQueue()
        self.recorder = EventRecorder(client, "deployment-controller")
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
        if d.metadata.deletion_timestamp is None and not await self._check_paused_conditions(d):
            return
        if d.metadata.deletion_timestamp is None and d.spec.paused and self._scaling_event(d, rss):
            await self._scale_deployment(d, rss)  # dc.sync: a paused deployment still scales
            return
        if d.metadata.deletion_timestamp is not None or d.spec.paused:
            await self._sync_status(d, rss, self._find_new(d, rss))
            return
        if self._scaling_event(d, rss):
            await self._scale_deployment(d, rss)
            return
        if d.spec.strategy.type == "Recreate":
            await self._recreate(d, rss)
        else:
            await self._rolling(d, rss)

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

    @staticmethod
    def _find_new(d: Deployment, rss: list[ReplicaSet]) -> ReplicaSet | None:
        """FindNewReplicaSet: the oldest set whose template, but for the hash label, is the deployment's."""
        wanted = canonical_template(d.spec.template)
        return next((rs for rs in _by_age(rss) if canonical_template(rs.spec.template, without_hash=True) == wanted),
                    None)

    async def _new_replica_set(self, d: Deployment, rss: list[ReplicaSet], replicas: int) -> ReplicaSet:
        """The new set: found (its revision brought up to date) or created."""
        existing = self._find_new(d, rss)
        revision = max((_revision(rs) for rs in rss if rs is not existing), default=0) + 1
        surge, _ = surge_and_unavailable(d)
        if existing is not None:
            changed = False
            if _revision(existing) < revision:
                existing.metadata.annotations[REVISION] = str(revision)
                changed = True
            if existing.spec.min_ready_seconds != d.spec.min_ready_seconds:
                existing.spec.min_ready_seconds = d.spec.min_ready_seconds
                changed = True
            if changed:
                existing = await self.client.update(existing)
            if not any(c.type == "Progressing" for c in d.status.conditions) and d.spec.progress_deadline_seconds:
                set_condition(d.status, condition("Progressing", "True", FOUND_NEW_RS,
                                                  f'Found new replica set "{existing.metadata.name}"', now()))
            await self._set_revision(d, _revision(existing))
            return existing
        template_hash = compute_hash(d.spec.template, d.status.collision_count)
        template = d.spec.template.model_copy(deep=True)
        template.metadata.labels[POD_TEMPLATE_HASH] = template_hash
        selector = (d.spec.selector or LabelSelector()).model_copy(deep=True)
        selector.match_labels[POD_TEMPLATE_HASH] = template_hash
        annotations = {k: v for k, v in d.metadata.annotations.items() if k not in SKIPPED_ANNOTATIONS}
        annotations.update({REVISION: str(revision), DESIRED_REPLICAS: str(d.spec.replicas or 0),
                            MAX_REPLICAS: str((d.spec.replicas or 0) + surge)})
        rs = ReplicaSet(
            metadata=ObjectMeta(name=f"{d.metadata.name}-{template_hash}", namespace=d.metadata.namespace,
                                labels=dict(template.metadata.labels), annotations=annotations,
                                owner_references=[controller_ref(d, "apps/v1", "Deployment")]),
            spec=ReplicaSetSpec(replicas=replicas, min_ready_seconds=d.spec.min_ready_seconds, selector=selector,
                                template=template))
        try:
            made = await self.client.create(rs)
        except AlreadyExists:
            # Another template hashed to this name: count the collision and try another hash.
            d.status.collision_count = (d.status.collision_count or 0) + 1
            await self.client.update_status(d)
            raise Conflict(f"replica set {rs.metadata.name} exists with another template") from None
        await self.recorder.record(d, "ScalingReplicaSet",
                                   f"Scaled up replica set {made.metadata.name} from 0 to {replicas}")
        if d.spec.progress_deadline_seconds:
            set_condition(d.status, condition("Progressing", "True", NEW_RS_CREATED,
                                              f'Created new replica set "{made.metadata.name}"', now()))
        await self._set_revision(d, revision)
        return made

    async def _set_revision(self, d: Deployment, revision: int) -> None:
        if d.metadata.annotations.get(REVISION) == str(revision):
            return
        patch = {"metadata": {"annotations": {REVISION: str(revision)}}}
        patched = await self.client.patch(Deployment, d.metadata.name or "", patch, d.metadata.namespace,
                                          patch_type="merge")
        d.metadata.annotations, d.metadata.resource_version = patched.metadata.annotations, \
            patched.metadata.resource_version

    async def _scale(self, d: Deployment, rs: ReplicaSet, replicas: int) -> bool:
        """scaleReplicaSet: spec.replicas and the desired/max annotations; True when it changed."""
        surge, _ = surge_and_unavailable(d)
        annotations = {DESIRED_REPLICAS: str(d.spec.replicas or 0), MAX_REPLICAS: str((d.spec.replicas or 0) + surge)}
        if rs.spec.replicas == replicas and all(rs.metadata.annotations.get(k) == v for k, v in annotations.items()):
            return False
        before = rs.spec.replicas or 0
        rs.spec.replicas = replicas
        rs.metadata.annotations.update(annotations)
        await self.client.update(rs)
        if before != replicas:
            direction = "up" if replicas > before else "down"
            await self.recorder.record(d, "ScalingReplicaSet",
                                       f"Scaled {direction} replica set {rs.metadata.name} from {before} to {replicas}")
        return before != replicas

    async def _check_paused_conditions(self, d: Deployment) -> bool:
        """checkPausedConditions: Progressing turns Unknown (DeploymentPaused) while paused and
        says DeploymentResumed once resumed, unless the deadline already passed. False when the
        status write lost to a newer version (synced again)."""
        if d.spec.progress_deadline_seconds is None:
            return True
        current = next((c for c in d.status.conditions if c.type == "Progressing"), None)
        if current is not None and current.reason == TIMED_OUT:
            return True
        was_paused = current is not None and current.reason == PAUSED
        if bool(d.spec.paused) == was_paused:
            return True
        reason, message = (PAUSED, "Deployment is paused") if d.spec.paused else (RESUMED, "Deployment is resumed")
        set_condition(d.status, condition("Progressing", "Unknown", reason, message, now()))
        try:
            updated = await self.client.update_status(d)
        except Conflict:
            self.queue.add(key_of(d))
            return False
        d.metadata.resource_version = updated.metadata.resource_version
        return True

    @staticmethod
    def _scaling_event(d: Deployment, rss: list[ReplicaSet]) -> bool:
        """isScalingEvent: a set with pods was sized for another replica count."""
        return any(rs.spec.replicas and rs.metadata.annotations.get(DESIRED_REPLICAS) not in (None, str(d.spec.replicas))
                   for rs in rss)

    async def _scale_deployment(self, d: Deployment, rss: list[ReplicaSet]) -> None:
        """dc.scale: the one active (or latest) set takes the new count; a saturated new set
        means the old ones go; otherwise the sets share the change in proportion."""
        replicas = d.spec.replicas or 0
        new = self._find_new(d, rss)
        active = [rs for rs in rss if rs.spec.replicas]
        if len(active) <= 1:
            target = active[0] if active else new or (_by_age(rss)[-1] if rss else None)
            if target is not None:
                await self._scale(d, target, replicas)
        elif new is not None and new.spec.replicas == replicas and new.status.available_replicas == replicas \
                and new.metadata.annotations.get(DESIRED_REPLICAS) == str(replicas):
            for rs in active:
                if rs is not new:
                    await self._scale(d, rs, 0)
        elif d.spec.strategy.type == "RollingUpdate":
            surge, _ = surge_and_unavailable(d)
            sizes = proportional_sizes(replicas, surge, [
                ActiveSet(rs.metadata.name or "", rs.spec.replicas or 0,
                          int(rs.metadata.annotations[MAX_REPLICAS])
                          if rs.metadata.annotations.get(MAX_REPLICAS, "").isdigit() else None,
                          rs.metadata.creation_timestamp or now()) for rs in active], d.status.replicas or 0)
            for rs in active:
                await self._scale(d, rs, sizes[rs.metadata.name or ""])
        await self._sync_status(d, rss, new)

    async def _rolling(self, d: Deployment, rss: list[ReplicaSet]) -> None:
        replicas = d.spec.replicas or 0
        surge, unavailable = surge_and_unavailable(d)
        found = self._find_new(d, rss)
        old = [rs for rs in rss if rs is not found]
        all_spec = sum(rs.spec.replicas or 0 for rs in old)
        new = await self._new_replica_set(d, rss, new_rs_new_replicas(replicas, surge, all_spec, 0)
                                          if found is None else found.spec.replicas or 0)
        old = [rs for rs in rss if rs.metadata.uid != new.metadata.uid]
        # reconcileNewReplicaSet
        current = new.spec.replicas or 0
        if current > replicas:
            target = replicas
        else:
            target = new_rs_new_replicas(replicas, surge, current + sum(rs.spec.replicas or 0 for rs in old), current)
        if await self._scale(d, new, target):
            await self._sync_status(d, rss, new)
            return
        # reconcileOldReplicaSets
        downs = old_sets_scale_down(
            replicas, unavailable, new.spec.replicas or 0, new.status.available_replicas or 0,
            [OldSet(rs.metadata.name or "", rs.spec.replicas or 0, rs.status.available_replicas or 0)
             for rs in _by_age(old)])
        for rs in old:
            if rs.metadata.name in downs:
                await self._scale(d, rs, downs[rs.metadata.name])
        if downs:
            await self._sync_status(d, rss, new)
            return
        await self._finish(d, rss, new, old)

    async def _recreate(self, d: Deployment, rss: list[ReplicaSet]) -> None:
        found = self._find_new(d, rss)
        old = [rs for rs in rss if rs is not found]
        scaled = False
        for rs in old:
            if rs.spec.replicas:
                scaled |= await self._scale(d, rs, 0)
        if scaled:
            await self._sync_status(d, rss, found)
            return
        uids = {rs.metadata.uid for rs in old}
        pods, _ = await self.client.list(Pod, d.metadata.namespace)
        if any((ref := controller_of(p.metadata)) is not None and ref.uid in uids
               and p.status.phase not in ("Failed", "Succeeded") for p in pods):
            await self._sync_status(d, rss, found)  # the old pods must be gone first
            return
        new = await self._new_replica_set(d, rss, d.spec.replicas or 0)
        await self._scale(d, new, d.spec.replicas or 0)
        await self._finish(d, rss, new, [rs for rs in rss if rs.metadata.uid != new.metadata.uid])

    async def _finish(self, d: Deployment, rss: list[ReplicaSet], new: ReplicaSet, old: list[ReplicaSet]) -> None:
        status = await self._sync_status(d, rss, new)
        if deployment_complete(d, status):
            await self._cleanup(d, old)

    async def _cleanup(self, d: Deployment, old: list[ReplicaSet]) -> None:
        """cleanupDeployment: old sets with no pods, beyond revisionHistoryLimit, oldest revision first."""
        limit = d.spec.revision_history_limit if d.spec.revision_history_limit is not None else 10
        idle = [rs for rs in old if rs.metadata.deletion_timestamp is None and (rs.spec.replicas or 0) == 0
                and rs.status.replicas == 0]
        idle.sort(key=lambda rs: (_revision(rs), rs.metadata.creation_timestamp or now()))
        for rs in idle[:max(0, len(idle) - limit)]:
            with contextlib.suppress(NotFound):
                await self.client.delete(ReplicaSet, rs.metadata.name or "", rs.metadata.namespace,
                                         uid=rs.metadata.uid, propagation_policy="Background")
                log.info("deployment %s: deleted old replica set %s", d.metadata.name, rs.metadata.name)

    async def _sync_status(self, d: Deployment, rss: list[ReplicaSet], new: ReplicaSet | None) -> DeploymentStatus:
        """calculateStatus and syncRolloutStatus, from the sets as they are now."""
        fresh, _ = await self.client.list(ReplicaSet, d.metadata.namespace)
        uids = {rs.metadata.uid for rs in rss} | ({new.metadata.uid} if new else set())
        current = [rs for rs in fresh if rs.metadata.uid in uids]
        new_now = next((rs for rs in current if new is not None and rs.metadata.uid == new.metadata.uid), None)
        replicas = d.spec.replicas or 0
        available = sum(rs.status.available_replicas or 0 for rs in current)
        total = sum(rs.spec.replicas or 0 for rs in current)
        at = now()
        status = DeploymentStatus(
            observed_generation=d.metadata.generation,
            replicas=sum(rs.status.replicas for rs in current),
            updated_replicas=new_now.status.replicas if new_now else 0,
            ready_replicas=sum(rs.status.ready_replicas or 0 for rs in current),
            available_replicas=available,
            unavailable_replicas=max(total - available, 0),
            collision_count=d.status.collision_count,
            conditions=[c.model_copy() for c in d.status.conditions],
        )
        _, unavailable = surge_and_unavailable(d)
        if available >= replicas - unavailable:
            set_condition(status, condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability.", at))
        else:
            set_condition(status, condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", at))
        if not d.spec.paused:
            progress_status(d, status, new_now.metadata.name if new_now else None, at)
        failure = next((c for rs in current for c in rs.status.conditions if c.type == "ReplicaFailure"
                        and c.status == "True"), None)
        status.conditions = [c for c in status.conditions if c.type != "ReplicaFailure"]
        if failure is not None:
            set_condition(status, condition("ReplicaFailure", "True", failure.reason or "", failure.message or "", at))
        if status != d.status:
            d.status = status
            try:
                await self.client.update_status(d)
            except Conflict:
                self.queue.add(key_of(d))  # changed meanwhile: count again on the new version
        if d.spec.progress_deadline_seconds and not d.spec.paused and not deployment_complete(d, status):
            # A deadline passes with no event to say so.
            self.queue.add_after(key_of(d), d.spec.progress_deadline_seconds + 1)
        return status

    async def run(self) -> None:
        try:
            await asyncio.gather(
                self.deployments.serve(WatchEvents(self._on_deployment)),
                self.replica_sets.serve(WatchEvents(self._on_replica_set)),
                self.pods.serve(WatchEvents(self._on_pod)),
                self.queue.work(self.sync, "deployment"))
        finally:
            await self.recorder.close()
