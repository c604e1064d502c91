"""HyperContainer's lifecycle on the same Pod objects: create -> Created, start, stop -> Created
(storage kept), replace (the sandbox and its IP handed over), rm."""
from __future__ import annotations

import asyncio

import pytest

from podbay.api import ExecAction, Lifecycle, LifecycleHandler, Pod
from podbay.api.formats import from_hyper
from podbay.api.printing import pod_row
from podbay.api.serialize import from_dict
from podbay.api.wellknown import RUN_STATE_ANNOTATION, SANDBOX_FROM_ANNOTATION
from tests.e2e.conftest import Cluster
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


def hyper_pod(name: str, marker: str) -> Pod:
    pod = from_dict(Pod, from_hyper({
        "id": name,
        "containers": [{"name": "app", "image": "busybox:1.35",
                        "command": ["sh", "-c", f"trap 'exit 0' TERM; echo {marker} >> /data/runs; sleep 600 & wait"],
                        "volumes": [{"volume": "data", "path": "/data"}]}],
        "volumes": [{"name": "data"}]}))
    pod.spec.termination_grace_period_seconds = 2
    return pod


async def set_state(cluster: Cluster, name: str, state: str, **extra: str) -> None:
    pod = await cluster.client.get(Pod, name, "default")
    pod.metadata.annotations[RUN_STATE_ANNOTATION] = state
    pod.metadata.annotations.update(extra)
    await cluster.client.update(pod)


def created(p: Pod) -> bool:
    return p.status.reason == "Created" and pod_row(p).status == "Created"


def running(p: Pod) -> bool:
    return p.status.phase == "Running" and all(s.state and s.state.running for s in p.status.container_statuses)


async def test_create_start_stop_keeps_storage_and_rm(cluster: Cluster) -> None:
    pod = hyper_pod("hyper", "run")
    pod.metadata.annotations[RUN_STATE_ANNOTATION] = "Created"
    await cluster.client.create(pod)
    await cluster.wait_for("hyper", created)
    await set_state(cluster, "hyper", "Running")
    first = await cluster.wait_for("hyper", running)
    await set_state(cluster, "hyper", "Created")
    stopped = await cluster.wait_for("hyper", lambda p: created(p) and not p.status.pod_ip)
    # HyperContainer's stop removes the containers: the next start runs them afresh.
    assert stopped.status.container_statuses[0].state.waiting is not None
    assert stopped.status.container_statuses[0].restart_count == 0
    await set_state(cluster, "hyper", "Running")
    again = await cluster.wait_for("hyper", running)
    # The emptyDir outlived the stop: both runs wrote to it.
    volume = cluster.settings.state_root / "pods" / again.metadata.uid / "volumes" / "data" / "runs"
    # Running is the container started, not its first line run: wait for the second marker.
    await wait_until(lambda: volume.read_text() == "run\nrun\n", "both runs' markers in the emptyDir")
    assert first.metadata.uid == again.metadata.uid
    await cluster.client.delete(Pod, "hyper", "default")
    await cluster.wait_for_deleted("hyper")
    assert not volume.parent.exists()


async def test_replace_hands_the_sandbox_and_ip_to_the_new_pod(cluster: Cluster) -> None:
    await cluster.client.create(hyper_pod("old", "old"))
    old = await cluster.wait_for("old", running)
    new = hyper_pod("new", "new")
    new.metadata.annotations[RUN_STATE_ANNOTATION] = "Created"
    await cluster.client.create(new)
    await cluster.wait_for("new", created)
    await set_state(cluster, "new", "Running", **{SANDBOX_FROM_ANNOTATION: "old"})
    replaced = await cluster.wait_for("new", running)
    assert replaced.status.pod_ip == old.status.pod_ip
    await cluster.wait_for("old", lambda p: created(p) and not p.status.pod_ip)


async def test_a_late_hand_over_leaves_a_new_pod_of_the_old_name_running(cluster: Cluster) -> None:
    await cluster.client.create(hyper_pod("old", "old"))
    old = await cluster.wait_for("old", running)
    new = hyper_pod("new", "new")
    # Its postStart hook holds the new pod's start, and so the hand-over's end, until told to go.
    new.spec.containers[0].lifecycle = Lifecycle(post_start=LifecycleHandler(exec=ExecAction(
        command=["sh", "-c", "until [ -e /data/go ]; do sleep 0.1; done"])))
    new.metadata.annotations[RUN_STATE_ANNOTATION] = "Created"
    await cluster.client.create(new)
    await cluster.wait_for("new", created)
    await set_state(cluster, "new", "Running", **{SANDBOX_FROM_ANNOTATION: "old"})
    await cluster.wait_event("new", "SandboxHandedOver")
    # OLD goes while it is being handed over, and a pod of its name comes.
    await cluster.client.delete(Pod, "old", "default", grace_period_seconds=0)
    await cluster.wait_for_deleted("old")
    await cluster.client.create(hyper_pod("old", "again"))
    again = await cluster.wait_for("old", running)
    new_uid = (await cluster.client.get(Pod, "new", "default")).metadata.uid
    (cluster.settings.state_root / "pods" / new_uid / "volumes" / "data" / "go").touch()
    await cluster.wait_for("new", running)
    # The first OLD's volumes go once the hand-over has ended (its clean-up waits for it).
    old_volumes = cluster.settings.state_root / "pods" / old.metadata.uid / "volumes"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while old_volumes.exists():
        assert loop.time() < deadline, "the deleted pod's volumes were never removed"
        await asyncio.sleep(0.1)
    pod = await cluster.client.get(Pod, "old", "default")
    assert pod.metadata.uid == again.metadata.uid
    assert pod.metadata.annotations.get(RUN_STATE_ANNOTATION) != "Created"
    assert running(pod)
