"""The Deployment strategies (kube-controller-manager's deployment rolling.go and
recreate.go), over the shared steps of `deploymentsync.py`."""
from __future__ import annotations

from podbay.api import Pod
from podbay.api.apps import Deployment, ReplicaSet, controller_of
from podbay.controllers.deploymentsync import DeploymentSyncer, by_age, find_new
from podbay.controllers.rollout import OldSet, new_rs_new_replicas, old_sets_scale_down, surge_and_unavailable


async def rollout_rolling(s: DeploymentSyncer, d: Deployment, rss: list[ReplicaSet]) -> None:
    replicas = d.spec.replicas or 0
    surge, unavailable = surge_and_unavailable(d)
    found = find_new(d, rss)
    old = [rs for rs in rss if rs is not found]
    all_spec = sum(rs.spec.replicas or 0 for rs in old)
    new = await s.new_replica_set(d, rss, new_rs_new_replicas(replicas, surge, all_spec, 0)
                                  if found is None else found.spec.replicas or 0)
    old = [rs for rs in rss if rs.metadata.uid != new.metadata.uid]
    # reconcileNewReplicaSet
    current = new.spec.replicas or 0
    if current > replicas:
        target = replicas
    else:
        target = new_rs_new_replicas(replicas, surge, current + sum(rs.spec.replicas or 0 for rs in old), current)
    if await s.scale(d, new, target):
        await s.sync_status(d, rss, new)
        return
    # reconcileOldReplicaSets
    downs = old_sets_scale_down(
        replicas, unavailable, new.spec.replicas or 0, new.status.available_replicas or 0,
        [OldSet(rs.metadata.name or "", rs.spec.replicas or 0, rs.status.available_replicas or 0)
         for rs in by_age(old)])
    for rs in old:
        if rs.metadata.name in downs:
            await s.scale(d, rs, downs[rs.metadata.name])
    if downs:
        await s.sync_status(d, rss, new)
        return
    await s.finish(d, rss, new, old)


async def rollout_recreate(s: DeploymentSyncer, d: Deployment, rss: list[ReplicaSet]) -> None:
    found = find_new(d, rss)
    old = [rs for rs in rss if rs is not found]
    scaled = False
    for rs in old:
        if rs.spec.replicas:
            scaled |= await s.scale(d, rs, 0)
    if scaled:
        await s.sync_status(d, rss, found)
        return
    uids = {rs.metadata.uid for rs in old}
    pods, _ = await s.client.list(Pod, d.metadata.namespace)
    if any((ref := controller_of(p.metadata)) is not None and ref.uid in uids
           and p.status.phase not in ("Failed", "Succeeded") for p in pods):
        await s.sync_status(d, rss, found)  # the old pods must be gone first
        return
    new = await s.new_replica_set(d, rss, d.spec.replicas or 0)
    await s.scale(d, new, d.spec.replicas or 0)
    await s.finish(d, rss, new, [rs for rs in rss if rs.metadata.uid != new.metadata.uid])
