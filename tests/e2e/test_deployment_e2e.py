"""Deployments roll real pods from one template to the next: ReplicaSets named
`<deployment>-<pod-template-hash>` with revisions, never more pods than replicas + maxSurge,
`kubectl rollout status` following along; Recreate replaces all pods at once."""
from __future__ import annotations

import asyncio

import pytest

from podbay.api import Pod
from podbay.api.apps import Deployment, ReplicaSet
from tests.cli.podbay_cli import podbay_cli
from tests.conftest import HostEnv
from tests.e2e.conftest import Cluster
from tests.e2e.workloads import SLEEPER, kube_cluster, kubectl, live, manifest, running, template, \
    wait_objects  # noqa: F401 - fixtures among them

pytestmark = pytest.mark.e2e


def rolled_out(image: str, replicas: int):  # type: ignore[no-untyped-def]
    def check(pods: list[Pod]) -> bool:
        return len(pods) == replicas and len(running(pods)) == replicas \
            and all(p.spec.containers[0].image == image for p in pods)
    return check


async def test_rolling_update_from_image_a_to_b(kube_cluster: Cluster, host_env: HostEnv) -> None:  # noqa: F811
    client = kube_cluster.client
    labels = {"app": "roll"}
    await client.create(manifest(Deployment, "roll", {"replicas": 3, "selector": {"matchLabels": labels},
                                                      "template": template(labels)}))
    out = await kubectl(kube_cluster, "rollout", "status", "deployment/roll", "--timeout=120s")
    assert 'deployment "roll" successfully rolled out' in out
    [first] = (await client.list(ReplicaSet, "default"))[0]
    template_hash = first.metadata.labels["pod-template-hash"]
    assert first.metadata.name == f"roll-{template_hash}"
    assert first.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    pods = await wait_objects(client, Pod, rolled_out("busybox:1.35", 3), label_selector="app=roll")
    assert all(p.metadata.labels["pod-template-hash"] == template_hash for p in pods)

    most = 0

    async def count_pods() -> None:
        nonlocal most
        seen: dict[str, Pod] = {}
        async for type_, pod in client.watch(Pod, "default", label_selector="app=roll"):
            if type_ == "DELETED":
                seen.pop(pod.metadata.uid, None)
            else:
                seen[pod.metadata.uid] = pod
            most = max(most, len(live(list(seen.values()))))

    counter = asyncio.create_task(count_pods())
    try:
        await client.patch(Deployment, "roll", {"spec": {"template": {"spec": {"containers": [
            {**SLEEPER, "image": "busybox:latest"}]}}}}, "default")
        out = await kubectl(kube_cluster, "rollout", "status", "deployment/roll", "--timeout=180s")
        assert 'deployment "roll" successfully rolled out' in out
        await wait_objects(client, Pod, rolled_out("busybox:latest", 3), label_selector="app=roll")
    finally:
        counter.cancel()
    assert most <= 3 + 1, f"{most} pods at once: more than replicas + maxSurge (25% of 3, rounded up)"

    sets = {rs.metadata.name: rs for rs in (await client.list(ReplicaSet, "default"))[0]}
    assert sets[first.metadata.name].spec.replicas == 0
    [new] = [rs for name, rs in sets.items() if name != first.metadata.name]
    assert new.metadata.annotations["deployment.kubernetes.io/revision"] == "2" and new.spec.replicas == 3
    d = await client.get(Deployment, "roll", "default")
    assert (d.status.replicas, d.status.updated_replicas, d.status.ready_replicas, d.status.available_replicas) \
        == (3, 3, 3, 3)
    conditions = {c.type: (c.status, c.reason) for c in d.status.conditions}
    assert conditions == {"Available": ("True", "MinimumReplicasAvailable"),
                          "Progressing": ("True", "NewReplicaSetAvailable")}
    got = await kubectl(kube_cluster, "get", "deploy")
    assert got.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert got.split("\n")[1].split()[:4] == ["roll", "3/3", "3", "3"]
    everything = await kubectl(kube_cluster, "get", "all")
    assert "deployment.apps/roll" in everything and f"replicaset.apps/{new.metadata.name}" in everything
    assert everything.count("pod/roll-") == 3
    # podbay's own get prints the same columns.
    table = (await asyncio.to_thread(podbay_cli(host_env), "get", "deploy")).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["roll", "3/3", "3", "3"]

    # The scale subresource through kubectl.
    await kubectl(kube_cluster, "scale", "deployment/roll", "--replicas=1")
    await wait_objects(client, Pod, rolled_out("busybox:latest", 1), label_selector="app=roll")


async def test_recreate_and_revision_history(kube_cluster: Cluster) -> None:  # noqa: F811
    client = kube_cluster.client
    labels = {"app": "recreate"}
    await client.create(manifest(Deployment, "recreate", {
        "replicas": 2, "selector": {"matchLabels": labels}, "template": template(labels),
        "strategy": {"type": "Recreate"}, "revisionHistoryLimit": 0}))
    await wait_objects(client, Pod, rolled_out("busybox:1.35", 2), label_selector="app=recreate")
    await client.patch(Deployment, "recreate", {"spec": {"template": {"spec": {"containers": [
        {**SLEEPER, "image": "busybox:latest"}]}}}}, "default")
    await wait_objects(client, Pod, rolled_out("busybox:latest", 2), label_selector="app=recreate")
    # revisionHistoryLimit 0: the old set goes once the rollout is complete.
    sets = await wait_objects(client, ReplicaSet, lambda rss: len(rss) == 1, what="the old set's cleanup")
    assert sets[0].metadata.annotations["deployment.kubernetes.io/revision"] == "2"


WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: web, image: busybox:1.35, command: [sleep, "3600"]}]
"""


async def test_the_readmes_kubectl_commands(kube_cluster: Cluster) -> None:  # noqa: F811
    """README's Workloads commands, as a user types them."""
    client = kube_cluster.client
    await kubectl(kube_cluster, "create", "--validate=false", "-f", "-", stdin=WEB)
    assert "successfully rolled out" in await kubectl(kube_cluster, "rollout", "status", "deployment/web",
                                                      "--timeout=120s")
    await kubectl(kube_cluster, "set", "image", "deployment/web", "web=busybox:latest")
    assert "successfully rolled out" in await kubectl(kube_cluster, "rollout", "status", "deployment/web",
                                                      "--timeout=180s")
    await wait_objects(client, Pod, rolled_out("busybox:latest", 3), label_selector="app=web")
    await kubectl(kube_cluster, "scale", "deployment/web", "--replicas=1")
    await wait_objects(client, Pod, rolled_out("busybox:latest", 1), label_selector="app=web")
    assert "deployment.apps/web" in await kubectl(kube_cluster, "get", "all")
    # Foreground: kubectl waits until the deployment, its sets and its pods are gone.
    await kubectl(kube_cluster, "delete", "deployment/web", "--cascade=foreground")
    assert (await client.list(ReplicaSet, "default"))[0] == []
    assert (await client.list(Pod, "default", label_selector="app=web"))[0] == []


async def test_rollout_undo_takes_the_old_set_back(kube_cluster: Cluster) -> None:  # noqa: F811
    client = kube_cluster.client
    labels = {"app": "undo"}
    await client.create(manifest(Deployment, "undo", {"replicas": 1, "selector": {"matchLabels": labels},
                                                      "template": template(labels)}))
    await kubectl(kube_cluster, "rollout", "status", "deployment/undo", "--timeout=60s")
    [first] = (await client.list(ReplicaSet, "default"))[0]
    await kubectl(kube_cluster, "set", "image", "deployment/undo", "c=busybox:latest")
    await kubectl(kube_cluster, "rollout", "status", "deployment/undo", "--timeout=60s")
    assert "rolled back" in await kubectl(kube_cluster, "rollout", "undo", "deployment/undo")
    await kubectl(kube_cluster, "rollout", "status", "deployment/undo", "--timeout=60s")
    sets = {rs.metadata.name: rs for rs in (await client.list(ReplicaSet, "default"))[0]}
    assert len(sets) == 2, "the undo made a new set instead of taking the old one back"
    back = sets[first.metadata.name]
    assert back.spec.replicas == 1 and back.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    await wait_objects(client, Pod, rolled_out("busybox:1.35", 1), label_selector="app=undo")


def sets_of(rss: list[ReplicaSet], name: str) -> list[ReplicaSet]:
    return [rs for rs in rss if any(r.name == name for r in rs.metadata.owner_references)]


async def test_rollout_pause_resume_and_restart(kube_cluster: Cluster) -> None:  # noqa: F811
    """kubectl's own rollout verbs: a paused deployment keeps its pods through a template change
    (and still scales) until resumed; restart rolls every pod to a new set."""
    client = kube_cluster.client
    labels = {"app": "paws"}
    await client.create(manifest(Deployment, "paws", {"replicas": 1, "selector": {"matchLabels": labels},
                                                      "template": template(labels)}))
    await kubectl(kube_cluster, "rollout", "status", "deployment/paws", "--timeout=120s")
    [first] = sets_of((await client.list(ReplicaSet, "default"))[0], "paws")

    assert "deployment.apps/paws paused" in await kubectl(kube_cluster, "rollout", "pause", "deployment/paws")
    paused = await wait_objects(client, Deployment, lambda ds: any(
        c.type == "Progressing" and c.reason == "DeploymentPaused" and c.status == "Unknown"
        for d in ds for c in d.status.conditions), what="the paused condition")
    assert paused[0].spec.paused
    await kubectl(kube_cluster, "set", "image", "deployment/paws", "c=busybox:latest")
    await kubectl(kube_cluster, "scale", "deployment/paws", "--replicas=2")
    # Scaling goes on while paused; the new template does not roll out.
    await wait_objects(client, Pod, rolled_out("busybox:1.35", 2), label_selector="app=paws")
    assert [rs.metadata.name for rs in sets_of((await client.list(ReplicaSet, "default"))[0], "paws")] == \
        [first.metadata.name]
    got = await kubectl(kube_cluster, "get", "deployment/paws", "-o",
                        "jsonpath={.status.updatedReplicas}/{.status.replicas}")
    assert got == "0/2", "no pod has the new template while paused"

    assert "deployment.apps/paws resumed" in await kubectl(kube_cluster, "rollout", "resume", "deployment/paws")
    assert "successfully rolled out" in await kubectl(kube_cluster, "rollout", "status", "deployment/paws",
                                                      "--timeout=180s")
    await wait_objects(client, Pod, rolled_out("busybox:latest", 2), label_selector="app=paws")
    second = {rs.metadata.name for rs in sets_of((await client.list(ReplicaSet, "default"))[0], "paws")} \
        - {first.metadata.name}
    assert len(second) == 1

    assert "deployment.apps/paws restarted" in await kubectl(kube_cluster, "rollout", "restart", "deployment/paws")
    d = await client.get(Deployment, "paws", "default")
    assert "kubectl.kubernetes.io/restartedAt" in d.spec.template.metadata.annotations
    assert "successfully rolled out" in await kubectl(kube_cluster, "rollout", "status", "deployment/paws",
                                                      "--timeout=180s")
    rss = sets_of((await client.list(ReplicaSet, "default"))[0], "paws")
    third = [rs for rs in rss if rs.metadata.name not in second | {first.metadata.name}]
    assert len(third) == 1 and third[0].spec.replicas == 2
    assert third[0].spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] == \
        d.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]
    pods = await wait_objects(client, Pod, lambda ps: len(live(ps)) == 2 and len(running(ps)) == 2 and all(
        p.metadata.labels.get("pod-template-hash") == third[0].metadata.labels["pod-template-hash"] for p in ps),
        label_selector="app=paws", what="the restarted pods")
    assert len(pods) == 2
    history = await kubectl(kube_cluster, "rollout", "history", "deployment/paws")
    assert [line.split()[0] for line in history.strip().split("\n")[2:]] == ["1", "2", "3"]
