"""The agent has a pod's containers' rootfs made while its sandbox is: a pod whose sandbox cannot
be made, retried, keeps none of them (no overlay mount, no bundle) once it is gone."""
from __future__ import annotations

import pytest

from podbay.api import ObjectMeta, Pod, RuntimeClass
from podbay.api.formats import load_pods
from tests.e2e.conftest import Cluster
from tests.runtime.test_rootfs_ahead_e2e import overlay_mounts

pytestmark = pytest.mark.e2e


async def test_a_pod_whose_sandbox_fails_keeps_no_rootfs_made_ahead(cluster: Cluster) -> None:
    await cluster.client.create(RuntimeClass(metadata=ObjectMeta(name="odd"), handler="nosuch"))
    pod = load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: odd}
spec:
  runtimeClassName: odd
  containers:
  - {name: a, image: busybox:1.35, command: [sleep, "600"]}
  - {name: b, image: busybox:1.35, command: [sleep, "600"]}
""")[0]
    pod.spec.node_name = cluster.settings.node_name  # the scheduler would bind it to no node
    await cluster.client.create(pod)
    event = await cluster.wait_event("odd", "FailedCreatePodSandBox", count=2)
    assert event.message == ('Failed to create pod sandbox: failed to get sandbox runtime: '
                             'no runtime for "nosuch" is configured')
    pending = await cluster.client.get(Pod, "odd", "default")
    assert pending.status.phase == "Pending"
    await cluster.client.delete(Pod, "odd", "default", grace_period_seconds=0)
    await cluster.wait_for_deleted("odd")
    bundles = cluster.settings.run_root / "bundles"
    assert overlay_mounts(bundles) == []
    assert not bundles.exists() or list(bundles.iterdir()) == []
