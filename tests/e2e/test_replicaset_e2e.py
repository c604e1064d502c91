"""ReplicaSets and ReplicationControllers keep their pods on real containers: made from the
template, replaced when deleted, removed on scale-down (kubectl scale) in Kubernetes' order,
orphans adopted, pods whose labels stop matching released."""
from __future__ import annotations

import pytest

from podbay.api import Pod
from podbay.api.apps import ReplicaSet, ReplicationController
from podbay.api.serialize import from_dict
from tests.e2e.conftest import Cluster
from tests.e2e.workloads import SLEEPER, kube_cluster, kubectl, live, manifest, running, template, wait_objects, \
    workload_cluster  # noqa: F401 - the fixtures

pytestmark = pytest.mark.e2e


async def test_replica_set_keeps_replaces_scales_adopts_and_releases(kube_cluster: Cluster) -> None:  # noqa: F811
    client = kube_cluster.client
    labels = {"app": "rs-e2e"}
    rs = await client.create(manifest(ReplicaSet, "web", {"replicas": 3, "selector": {"matchLabels": labels},
                                                          "template": template(labels)}))
    pods = await wait_objects(client, Pod, lambda ps: len(running(ps)) == 3 and len(ps) == 3,
                              label_selector="app=rs-e2e", what="the replica set's pods")
    for p in pods:
        assert p.metadata.name.startswith("web-") and len(p.metadata.name) == len("web-") + 5
        [ref] = p.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
            ("ReplicaSet", "web", rs.metadata.uid, True, True)
    await wait_objects(client, ReplicaSet, lambda rss: any(
        r.status.ready_replicas == 3 and r.status.available_replicas == 3 and r.status.replicas == 3
        and r.status.fully_labeled_replicas == 3 and r.status.observed_generation == 1 for r in rss),
        what="the replica set's status")

    # A deleted pod is replaced.
    victim = pods[0]
    await client.delete(Pod, victim.metadata.name, "default")
    pods = await wait_objects(client, Pod, lambda ps: len(running(ps)) == 3
                              and victim.metadata.uid not in {p.metadata.uid for p in running(ps)},
                              label_selector="app=rs-e2e", what="the replacement")

    # An orphan with matching labels is adopted: one too many, so one goes (the unready newcomer).
    orphan = from_dict(Pod, {"metadata": {"name": "stray", "namespace": "default", "labels": labels},
                             "spec": {"containers": [SLEEPER], "terminationGracePeriodSeconds": 1}})
    await client.create(orphan)
    await wait_objects(client, Pod, lambda ps: len(live(ps)) == 3 and len(running(ps)) == 3
                       and all(p.metadata.owner_references for p in live(ps)),
                       label_selector="app=rs-e2e", what="the adoption")

    # kubectl scale: down to 1 removes two pods, and the RS reports it.
    out = await kubectl(kube_cluster, "scale", "rs/web", "--replicas=1")
    assert "replicaset.apps/web scaled" in out
    pods = await wait_objects(client, Pod, lambda ps: len(live(ps)) == 1 and len(ps) == 1,
                              label_selector="app=rs-e2e", what="the scale-down")
    await wait_objects(client, ReplicaSet, lambda rss: any(r.spec.replicas == 1 and r.status.replicas == 1
                                                           and r.status.ready_replicas == 1 for r in rss),
                       what="the scaled replica set")
    got = await kubectl(kube_cluster, "get", "rs")
    assert got.split("\n")[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert got.split("\n")[1].split()[:4] == ["web", "1", "1", "1"]

    # A pod whose labels stop matching is released (and replaced).
    [kept] = pods
    await client.patch(Pod, kept.metadata.name, {"metadata": {"labels": {"app": "elsewhere"}}}, "default")
    released = await wait_objects(client, Pod, lambda ps: bool(ps) and not ps[0].metadata.owner_references,
                                  label_selector="app=elsewhere", what="the released pod")
    assert released[0].metadata.uid == kept.metadata.uid
    await wait_objects(client, Pod, lambda ps: len(running(ps)) == 1, label_selector="app=rs-e2e",
                       what="the released pod's replacement")


async def test_replication_controller_keeps_its_pods(workload_cluster: Cluster) -> None:  # noqa: F811
    client = workload_cluster.client
    rc = from_dict(ReplicationController, {"metadata": {"name": "legacy", "namespace": "default"},
                                           "spec": {"replicas": 2, "template": template({"app": "rc-e2e"})}})
    made = await client.create(rc)
    assert made.spec.selector == {"app": "rc-e2e"}  # defaulted from the template's labels
    pods = await wait_objects(client, Pod, lambda ps: len(running(ps)) == 2, label_selector="app=rc-e2e",
                              what="the controller's pods")
    assert all(p.metadata.owner_references[0].kind == "ReplicationController" for p in pods)
    await wait_objects(client, ReplicationController, lambda rcs: any(r.status.ready_replicas == 2 for r in rcs),
                       what="the controller's status")


async def test_a_failed_pod_is_replaced(workload_cluster: Cluster) -> None:  # noqa: F811
    client = workload_cluster.client
    labels = {"app": "rs-fails"}
    failing = template(labels)
    failing["spec"]["activeDeadlineSeconds"] = 2  # the node agent fails the pod after 2s
    await client.create(manifest(ReplicaSet, "brief", {"replicas": 1, "selector": {"matchLabels": labels},
                                                       "template": failing}))
    pods = await wait_objects(client, Pod, lambda ps: any(p.status.phase == "Failed" for p in ps)
                              and any(p.status.phase in ("Pending", "Running") for p in ps),
                              label_selector="app=rs-fails", what="the failed pod and its replacement")
    assert all(p.metadata.owner_references[0].name == "brief" for p in pods)
