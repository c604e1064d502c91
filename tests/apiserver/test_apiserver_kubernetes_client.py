"""The official `kubernetes` Python client against a real podbay API server."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from podbay.apiserver.embedded import EmbeddedServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def core(api_server: EmbeddedServer) -> k8s.CoreV1Api:
    api = k8s_config.new_client_from_config(str(api_server.kubeconfig))
    yield k8s.CoreV1Api(api)
    api.close()


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # The official client blocks; the server runs on this loop.
    return await asyncio.to_thread(fn, *args, **kwargs)


def a_pod(name: str, **labels: str) -> k8s.V1Pod:
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, labels=labels or None),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="main", image="busybox")]),
    )


async def test_pod_create_get_list_delete(core: k8s.CoreV1Api) -> None:
    created = await call(core.create_namespaced_pod, "default", a_pod("web", app="web"))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.metadata.resource_version
    assert created.status.phase == "Pending"
    assert created.spec.containers[0].image_pull_policy  # defaulted by podbay.api
    got = await call(core.read_namespaced_pod, "web", "default")
    assert got.metadata.uid == created.metadata.uid
    listed = await call(core.list_namespaced_pod, "default", label_selector="app=web")
    assert [p.metadata.name for p in listed.items] == ["web"]
    assert listed.metadata.resource_version
    everywhere = await call(core.list_pod_for_all_namespaces)
    assert "web" in [p.metadata.name for p in everywhere.items]
    # Unbound: deleted at once.
    await call(core.delete_namespaced_pod, "web", "default")
    with pytest.raises(ApiException) as err:
        await call(core.read_namespaced_pod, "web", "default")
    assert err.value.status == 404
    body = json.loads(err.value.body)
    assert body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["message"] == 'pods "web" not found'


async def test_errors_arrive_with_kubernetes_statuses(core: k8s.CoreV1Api) -> None:
    await call(core.create_namespaced_pod, "default", a_pod("dup"))
    with pytest.raises(ApiException) as err:
        await call(core.create_namespaced_pod, "default", a_pod("dup"))
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"

    bad = a_pod("bad")
    bad.spec.containers[0].image = None
    with pytest.raises(ApiException) as err:
        await call(core.create_namespaced_pod, "default", bad)
    assert err.value.status == 422
    body = json.loads(err.value.body)
    assert body["reason"] == "Invalid"
    assert "spec.containers[0].image" in [c["field"] for c in body["details"]["causes"]]

    with pytest.raises(ApiException) as err:
        await call(core.create_namespaced_pod, "nowhere", a_pod("x"))
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'namespaces "nowhere" not found'

    stale = await call(core.read_namespaced_pod, "dup", "default")
    stale.metadata.labels = {"v": "1"}
    await call(core.replace_namespaced_pod, "dup", "default", stale)
    stale.metadata.labels = {"v": "2"}
    with pytest.raises(ApiException) as err:
        await call(core.replace_namespaced_pod, "dup", "default", stale)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"


async def test_generate_name(core: k8s.CoreV1Api) -> None:
    pod = a_pod(None)  # type: ignore[arg-type]
    pod.metadata.generate_name = "job-"
    created = await call(core.create_namespaced_pod, "default", pod)
    assert created.metadata.name.startswith("job-") and len(created.metadata.name) == 9


async def test_graceful_delete_of_a_bound_pod(core: k8s.CoreV1Api) -> None:
    await call(core.create_namespaced_pod, "default", a_pod("bound"))
    binding = k8s.V1Binding(
        metadata=k8s.V1ObjectMeta(name="bound"), target=k8s.V1ObjectReference(kind="Node", name="n1")
    )
    await call(core.create_namespaced_pod_binding, "bound", "default", binding, _preload_content=False)
    pod = await call(core.read_namespaced_pod, "bound", "default")
    assert pod.spec.node_name == "n1"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions)
    with pytest.raises(ApiException) as err:  # bound once only
        await call(core.create_namespaced_pod_binding, "bound", "default", binding, _preload_content=False)
    assert err.value.status == 409

    marked = await call(core.delete_namespaced_pod, "bound", "default")
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.deletion_grace_period_seconds == 30
    still = await call(core.read_namespaced_pod, "bound", "default")
    assert still.metadata.deletion_timestamp is not None
    # The node's agent finishes the pod, then deletes it with grace 0.
    await call(core.delete_namespaced_pod, "bound", "default", grace_period_seconds=0)
    with pytest.raises(ApiException) as err:
        await call(core.read_namespaced_pod, "bound", "default")
    assert err.value.status == 404


async def test_watch_pods(core: k8s.CoreV1Api) -> None:
    await call(core.create_namespaced_pod, "default", a_pod("before"))
    listed = await call(core.list_namespaced_pod, "default")

    def stream() -> list[tuple[str, str]]:
        seen = []
        w = k8s_watch.Watch()
        for event in w.stream(core.list_namespaced_pod, "default",
                              resource_version=listed.metadata.resource_version, timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                w.stop()
        return seen

    watcher = asyncio.ensure_future(asyncio.to_thread(stream))
    await call(core.create_namespaced_pod, "default", a_pod("w1"))
    await call(core.patch_namespaced_pod, "w1", "default", {"metadata": {"labels": {"x": "y"}}})
    await call(core.delete_namespaced_pod, "w1", "default")
    assert await asyncio.wait_for(watcher, 30) == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


async def test_watch_without_resource_version_starts_with_current_objects(core: k8s.CoreV1Api) -> None:
    await call(core.create_namespaced_pod, "default", a_pod("existing"))

    def stream() -> list[tuple[str, str]]:
        w = k8s_watch.Watch()
        for event in w.stream(core.list_namespaced_pod, "default", timeout_seconds=20):
            w.stop()
            return [(event["type"], event["object"].metadata.name)]
        return []

    assert await asyncio.wait_for(asyncio.to_thread(stream), 30) == [("ADDED", "existing")]


async def test_nodes(core: k8s.CoreV1Api) -> None:
    node = k8s.V1Node(
        metadata=k8s.V1ObjectMeta(name="node-a", labels={"zone": "a"}),
        status=k8s.V1NodeStatus(capacity={"cpu": "2", "memory": "2Gi", "pods": "110"},
                                allocatable={"cpu": "2", "memory": "2Gi", "pods": "110"}),
    )
    created = await call(core.create_node, node)
    assert created.status.capacity["memory"] == "2Gi"
    patched = await call(
        core.patch_node_status,
        "node-a",
        {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}},
    )
    assert [c.type for c in patched.status.conditions] == ["Ready"]
    listed = await call(core.list_node, label_selector="zone=a")
    assert [n.metadata.name for n in listed.items] == ["node-a"]
    await call(core.delete_node, "node-a")
    with pytest.raises(ApiException) as err:
        await call(core.read_node, "node-a")
    assert err.value.status == 404


async def test_namespaces_and_discovery(core: k8s.CoreV1Api, api_server: EmbeddedServer) -> None:
    names = {n.metadata.name for n in (await call(core.list_namespace)).items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    with k8s_config.new_client_from_config(str(api_server.kubeconfig)) as api:
        version = await call(k8s.VersionApi(api).get_code)
        assert version.major == "1"
        resources = await call(core.get_api_resources)
        assert {"pods", "pods/status", "pods/binding", "pods/log", "nodes", "events", "namespaces"} <= {
            r.name for r in resources.resources
        }


async def test_a_deleted_service_comes_back_as_a_service(core: k8s.CoreV1Api) -> None:
    # kube-apiserver's Service registry returns the deleted object; the official client reads
    # the answer of delete_namespaced_service as a V1Service and fails on a Status.
    svc = k8s.V1Service(metadata=k8s.V1ObjectMeta(name="gone"),
                        spec=k8s.V1ServiceSpec(selector={"app": "x"}, ports=[k8s.V1ServicePort(port=80)]))
    made = await call(core.create_namespaced_service, "default", svc)
    deleted = await call(core.delete_namespaced_service, "gone", "default")
    assert isinstance(deleted, k8s.V1Service) and deleted.metadata.uid == made.metadata.uid
    with pytest.raises(ApiException) as err:
        await call(core.read_namespaced_service, "gone", "default")
    assert err.value.status == 404
