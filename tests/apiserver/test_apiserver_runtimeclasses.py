"""node.k8s.io/v1 RuntimeClasses over HTTP and the RuntimeClass admission of pods, with the
codes and words kube-apiserver answers with."""
from __future__ import annotations

import json
from typing import Any

from podbay.apiserver.embedded import EmbeddedServer
from tests.apiserver.conftest import admin_session

CLASSES = "/apis/node.k8s.io/v1/runtimeclasses"
PODS = "/api/v1/namespaces/default/pods"


async def call(server: EmbeddedServer, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with admin_session(server) as http:
        async with http.request(method, server.https_url + path, json=body, headers=headers) as response:
            return response.status, json.loads(await response.read())


def a_class(name: str, handler: str, **rest: Any) -> dict[str, Any]:
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": name},
            "handler": handler, **rest}


def a_pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


async def test_discovery_and_verbs(api_server: EmbeddedServer) -> None:
    _, resources = await call(api_server, "GET", "/apis/node.k8s.io/v1")
    [rc] = resources["resources"]
    assert (rc["name"], rc["kind"], rc["namespaced"]) == ("runtimeclasses", "RuntimeClass", False)
    code, created = await call(api_server, "POST", CLASSES, a_class("gvisor", "runsc",
                                                                   overhead={"podFixed": {"cpu": "250m"}}))
    assert code == 201 and created["handler"] == "runsc" and "namespace" not in created["metadata"]
    code, listed = await call(api_server, "GET", CLASSES)
    assert listed["kind"] == "RuntimeClassList" and [i["metadata"]["name"] for i in listed["items"]] == ["gvisor"]
    code, table = await call(api_server, "GET", CLASSES, headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Handler", "Age"]
    assert table["rows"][0]["cells"][:2] == ["gvisor", "runsc"]
    code, status = await call(api_server, "PUT", f"{CLASSES}/gvisor", {**created, "handler": "runc"})
    assert code == 422 and status["details"]["causes"][0]["field"] == "handler"
    assert "field is immutable" in status["message"]
    assert (await call(api_server, "DELETE", f"{CLASSES}/gvisor"))[0] == 200


async def test_validation_names_the_field(api_server: EmbeddedServer) -> None:
    cases = [
        (a_class("a", "Not_A_Label"), "handler"),
        (a_class("b", ""), "handler"),
        (a_class("c", "runsc", overhead={"podFixed": {"cpu": "-1"}}), "overhead.podFixed[cpu]"),
        (a_class("d", "runsc", scheduling={"tolerations": [{"key": "k", "operator": "Maybe"}]}),
         "scheduling.tolerations[0].operator"),
        (a_class("e", "runsc", scheduling={"tolerations": [{"key": "k", "operator": "Exists"}] * 2}),
         "scheduling.tolerations[1]"),
        (a_class("f", "runsc", scheduling={"nodeSelector": {"bad key!": "v"}}), "scheduling.nodeSelector"),
    ]
    for body, field in cases:
        code, status = await call(api_server, "POST", CLASSES, body)
        assert code == 422, body
        assert field in [c["field"] for c in status["details"]["causes"]], status


async def test_admission_takes_overhead_and_scheduling(api_server: EmbeddedServer) -> None:
    await call(api_server, "POST", CLASSES, a_class(
        "sandboxed", "runsc", overhead={"podFixed": {"cpu": "250m", "memory": "120Mi"}},
        scheduling={"nodeSelector": {"sandbox": "gvisor"},
                    "tolerations": [{"key": "sandbox", "operator": "Equal", "value": "gvisor", "effect": "NoSchedule"}]}))
    code, pod = await call(api_server, "POST", PODS, a_pod("p", runtimeClassName="sandboxed"))
    assert code == 201
    assert pod["spec"]["overhead"] == {"cpu": "250m", "memory": "120Mi"}
    assert pod["spec"]["nodeSelector"] == {"sandbox": "gvisor"}
    assert {"key": "sandbox", "operator": "Equal", "value": "gvisor", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    # The same overhead spelled differently is the same overhead.
    code, _ = await call(api_server, "POST", PODS, a_pod("same", runtimeClassName="sandboxed",
                                                         overhead={"cpu": "0.25", "memory": "120Mi"}))
    assert code == 201


async def test_admission_refusals(api_server: EmbeddedServer) -> None:
    await call(api_server, "POST", CLASSES, a_class("costly", "runsc", overhead={"podFixed": {"cpu": "1"}},
                                                    scheduling={"nodeSelector": {"zone": "a"}}))
    await call(api_server, "POST", CLASSES, a_class("free", "runsc"))
    refusals = [
        (a_pod("p1", runtimeClassName="nosuch"), 'pods "p1" is forbidden: pod rejected: RuntimeClass "nosuch" not found'),
        (a_pod("p2", runtimeClassName="costly", overhead={"cpu": "2"}),
         "pods \"p2\" is forbidden: pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"),
        (a_pod("p3", runtimeClassName="free", overhead={"cpu": "2"}),
         'pods "p3" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead'),
        (a_pod("p4", overhead={"cpu": "2"}),
         'pods "p4" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead'),
        (a_pod("p5", runtimeClassName="costly", nodeSelector={"zone": "b"}),
         'pods "p5" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[zone] = a; '
         'pod.spec.nodeSelector[zone] = b'),
    ]
    for body, message in refusals:
        code, status = await call(api_server, "POST", PODS, body)
        assert (code, status["reason"], status["message"]) == (403, "Forbidden", message)
    assert (await call(api_server, "GET", f"{PODS}/p1"))[0] == 404
