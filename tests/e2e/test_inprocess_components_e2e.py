"""`podbay up`'s scheduler, controllers and node agent call its API server in-process (not over its
socket): on real containers a pod is still bound, run and reported by the same components, each
write under the same field manager and each Event under its reporting component."""
from __future__ import annotations

import pytest

from podbay.api import Container, Event, ObjectMeta, Pod, PodSpec
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e


def running(pod: Pod) -> bool:
    return pod.status.phase == "Running" and bool(pod.status.container_statuses) and all(
        cs.state is not None and cs.state.running is not None for cs in pod.status.container_statuses)


async def test_components_bind_run_and_report_a_pod(cluster: Cluster) -> None:
    await cluster.client.create(Pod(metadata=ObjectMeta(name="sleeper"), spec=PodSpec(
        termination_grace_period_seconds=1,
        containers=[Container(name="main", image="busybox:1.35", command=["sleep", "3600"])])))
    pod = await cluster.wait_for("sleeper", running)
    node = cluster.settings.node_name
    assert pod.spec.node_name == node and pod.status.pod_ip
    # Field managers come from the User-Agent, which the in-process requests carry as aiohttp's did:
    # the creator's (this test's client), the binding's and the node agent's status writes.
    managers = {(e["manager"], e["operation"], e.get("subresource", "")) for e in pod.metadata.managed_fields or []}
    assert managers == {("Python", "Update", ""), ("Python", "Update", "status")}, managers

    await cluster.wait_event("sleeper", "Started", "Started container main")
    events, _ = await cluster.client.list(Event, "default")
    mine = sorted((e for e in events if e.involved_object.name == "sleeper"),
                  key=lambda e: int(e.metadata.resource_version or 0))
    assert [(e.reason, e.source.component if e.source else None, e.reporting_component) for e in mine] == [
        ("Scheduled", "default-scheduler", "default-scheduler"),
        ("Pulled", "kubelet", "kubelet"), ("Created", "kubelet", "kubelet"), ("Started", "kubelet", "kubelet")]
    assert all(e.source and e.source.host == node for e in mine[1:])

    # The agent sees the deletion through its watch, stops the container and removes the pod.
    await cluster.client.delete(Pod, "sleeper", "default")
    await cluster.wait_for_deleted("sleeper")
    await cluster.wait_event("sleeper", "Killing", "Stopping container main")
