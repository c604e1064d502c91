"""What every Deployment rollout does (kube-controller-manager's deployment sync.go and
progress.go): find or create the new ReplicaSet, scale sets, write the status and
conditions, and delete old sets beyond the revision history. The strategies themselves
are `deploymentstrategy.py`'s; the event handling and dispatch are `deployment.py`'s."""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from podbay.api import now
from podbay.api.apps import Deployment, DeploymentStatus, LabelSelector, ReplicaSet, ReplicaSetSpec
from podbay.api.errors import AlreadyExists, Conflict, NotFound
from podbay.api.models import ObjectMeta
from podbay.client import Client
from podbay.client.informer import Key, key_of
from podbay.client.record import EventRecorder
from podbay.controllers.rollout import DESIRED_REPLICAS, FOUND_NEW_RS, MAX_REPLICAS, MIN_AVAILABLE, MIN_UNAVAILABLE, \
    NEW_RS_CREATED, PAUSED, POD_TEMPLATE_HASH, RESUMED, REVISION, SKIPPED_ANNOTATIONS, TIMED_OUT, ActiveSet, \
    canonical_template, compute_hash, condition, deployment_complete, progress_status, proportional_sizes, \
    set_condition, surge_and_unavailable
from podbay.controllers.workqueue import WorkQueue, controller_ref

log = logging.getLogger(__name__)


def revision_of(rs: ReplicaSet) -> int:
    try:
        return int(rs.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def by_age(rss: list[ReplicaSet]) -> list[ReplicaSet]:
    epoch = datetime.min.replace(tzinfo=now().tzinfo)
    return sorted(rss, key=lambda r: (r.metadata.creation_timestamp or epoch, r.metadata.name or ""))


def find_new(d: Deployment, rss: list[ReplicaSet]) -> ReplicaSet | None:
    """FindNewReplicaSet: the oldest set whose template, but for the hash label, is the deployment's."""
    wanted = canonical_template(d.spec.template)
    return next((rs for rs in by_age(rss) if canonical_template(rs.spec.template, without_hash=True) == wanted),
                None)


class DeploymentSyncer:
    def __init__(self, client: Client, queue: WorkQueue[Key], recorder: EventRecorder) -> None:
        self.client = client
        self.queue = queue  # a deployment whose write lost to a newer version is synced again
        self.recorder = recorder

    async def new_replica_set(self, d: Deployment, rss: list[ReplicaSet], replicas: int) -> ReplicaSet:
        """The new set: found (its revision brought up to date) or created."""
        existing = find_new(d, rss)
        revision = max((revision_of(rs) for rs in rss if rs is not existing), default=0) + 1
        surge, _ = surge_and_unavailable(d)
        if existing is not None:
            changed = False
            if revision_of(existing) < revision:
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
            await self.set_revision(d, revision_of(existing))
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
        await self.set_revision(d, revision)
        return made

    async def set_revision(self, d: Deployment, revision: int) -> None:
        if d.metadata.annotations.get(REVISION) == str(revision):
            return
        patch = {"metadata": {"annotations": {REVISION: str(revision)}}}
        patched = await self.client.patch(Deployment, d.metadata.name or "", patch, d.metadata.namespace,
                                          patch_type="merge")
        d.metadata.annotations, d.metadata.resource_version = patched.metadata.annotations, \
            patched.metadata.resource_version

    async def scale(self, d: Deployment, rs: ReplicaSet, replicas: int) -> bool:
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

    async def check_paused_conditions(self, d: Deployment) -> bool:
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
    def scaling_event(d: Deployment, rss: list[ReplicaSet]) -> bool:
        """isScalingEvent: a set with pods was sized for another replica count."""
        return any(rs.spec.replicas and rs.metadata.annotations.get(DESIRED_REPLICAS) not in (None, str(d.spec.replicas))
                   for rs in rss)

    async def scale_deployment(self, d: Deployment, rss: list[ReplicaSet]) -> None:
        """dc.scale: the one active (or latest) set takes the new count; a saturated new set
        means the old ones go; otherwise the sets share the change in proportion."""
        replicas = d.spec.replicas or 0
        new = find_new(d, rss)
        active = [rs for rs in rss if rs.spec.replicas]
        if len(active) <= 1:
            target = active[0] if active else new or (by_age(rss)[-1] if rss else None)
            if target is not None:
                await self.scale(d, target, replicas)
        elif new is not None and new.spec.replicas == replicas and new.status.available_replicas == replicas \
                and new.metadata.annotations.get(DESIRED_REPLICAS) == str(replicas):
            for rs in active:
                if rs is not new:
                    await self.scale(d, rs, 0)
        elif d.spec.strategy.type == "RollingUpdate":
            surge, _ = surge_and_unavailable(d)
            sizes = proportional_sizes(replicas, surge, [
                ActiveSet(rs.metadata.name or "", rs.spec.replicas or 0,
                          int(rs.metadata.annotations[MAX_REPLICAS])
                          if rs.metadata.annotations.get(MAX_REPLICAS, "").isdigit() else None,
                          rs.metadata.creation_timestamp or now()) for rs in active], d.status.replicas or 0)
            for rs in active:
                await self.scale(d, rs, sizes[rs.metadata.name or ""])
        await self.sync_status(d, rss, new)

    async def finish(self, d: Deployment, rss: list[ReplicaSet], new: ReplicaSet, old: list[ReplicaSet]) -> None:
        status = await self.sync_status(d, rss, new)
        if deployment_complete(d, status):
            await self.cleanup(d, old)

    async def cleanup(self, d: Deployment, old: list[ReplicaSet]) -> None:
        """cleanupDeployment: old sets with no pods, beyond revisionHistoryLimit, oldest revision first."""
        limit = d.spec.revision_history_limit if d.spec.revision_history_limit is not None else 10
        idle = [rs for rs in old if rs.metadata.deletion_timestamp is None and (rs.spec.replicas or 0) == 0
                and rs.status.replicas == 0]
        idle.sort(key=lambda rs: (revision_of(rs), rs.metadata.creation_timestamp or now()))
        for rs in idle[:max(0, len(idle) - limit)]:
            with contextlib.suppress(NotFound):
                await self.client.delete(ReplicaSet, rs.metadata.name or "", rs.metadata.namespace,
                                         uid=rs.metadata.uid, propagation_policy="Background")
                log.info("deployment %s: deleted old replica set %s", d.metadata.name, rs.metadata.name)

    async def sync_status(self, d: Deployment, rss: list[ReplicaSet], new: ReplicaSet | None) -> DeploymentStatus:
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
