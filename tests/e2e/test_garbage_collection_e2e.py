"""Cascading deletion observed on real pods, as `kubectl delete --cascade=...` asks for it:
background (the owner goes at once, its pods after), foreground (the owner stays, marked, until
its pods are gone) and orphan (the pods stay, without the reference)."""
from __future__ import annotations

import asyncio

import pytest

from podbay.api import Pod
from podbay.api.apps import ReplicaSet
from podbay.api.errors import NotFound
from tests.e2e.conftest import Cluster
from tests.e2e.workloads import kube_cluster, kubectl, live, manifest, running, template, wait_objects  # noqa: F401 - fixtures among them

pytestmark = pytest.mark.e2e


async def replica_set(cluster: Cluster, name: str) -> ReplicaSet:
    labels = {"gc": name}
    rs = await cluster.client.create(manifest(ReplicaSet, name, {"replicas": 2, "selector": {"matchLabels": labels},
                                                                 "template": template(labels)}))
    await wait_objects(cluster.client, Pod, lambda ps: len(running(ps)) == 2, label_selector=f"gc={name}",
                       what=f"{name}'s pods")
    return rs


async def gone(cluster: Cluster, name: str) -> None:
    await wait_objects(cluster.client, ReplicaSet, lambda rss: name not in {r.metadata.name for r in rss},
                       what=f"the deletion of {name}")


async def test_cascading_deletion_background_foreground_orphan(kube_cluster: Cluster) -> None:  # noqa: F811
    client = kube_cluster.client
    await asyncio.gather(*(replica_set(kube_cluster, n) for n in ("bg", "fg", "orphan")))

    # Background (kubectl's default): the set is gone at once, the collector removes its pods.
    await kubectl(kube_cluster, "delete", "rs/bg", "--wait=false")
    with pytest.raises(NotFound):
        await client.get(ReplicaSet, "bg", "default")
    await wait_objects(client, Pod, lambda ps: not ps, label_selector="gc=bg", what="bg's pods")

    # Foreground: the set stays, marked and held by the finalizer, until its pods are gone.
    await kubectl(kube_cluster, "delete", "rs/fg", "--cascade=foreground", "--wait=false")
    held = await client.get(ReplicaSet, "fg", "default")
    assert held.metadata.deletion_timestamp is not None and "foregroundDeletion" in held.metadata.finalizers
    await gone(kube_cluster, "fg")
    pods, _ = await client.list(Pod, "default", label_selector="gc=fg")
    assert pods == [], "the owner went before its pods"

    # Orphan: the set goes, its pods keep running without a reference to it.
    await kubectl(kube_cluster, "delete", "rs/orphan", "--cascade=orphan")
    await gone(kube_cluster, "orphan")
    pods = await wait_objects(client, Pod, lambda ps: len(ps) == 2 and all(not p.metadata.owner_references
                                                                          for p in ps),
                              label_selector="gc=orphan", what="the orphans")
    assert len(running(pods)) == 2 and len(live(pods)) == 2
