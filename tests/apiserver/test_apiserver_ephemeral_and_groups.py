"""pods/ephemeralcontainers as kube-apiserver serves it (only ephemeral containers change; added,
never removed or changed; validated), and discovery of the computed groups (events.k8s.io,
metrics.k8s.io) with their read-only verbs."""
from __future__ import annotations

import json
from typing import Any

from podbay.apiserver.embedded import EmbeddedServer
from tests.apiserver.conftest import admin_session

PODS = "/api/v1/namespaces/default/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}


async def call(server: EmbeddedServer, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with admin_session(server) as http:
        async with http.request(method, server.https_url + path, data=json.dumps(body) if body is not None else None,
                                headers={"Content-Type": "application/json", **(headers or {})}) as response:
            return response.status, json.loads(await response.read())


def _pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.35"}], **spec}}


def _causes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in body["details"]["causes"]]


async def test_ephemeral_containers_are_added_validated_and_never_removed(api_server: EmbeddedServer) -> None:
    path = f"{PODS}/p/ephemeralcontainers"
    code, body = await call(api_server, "POST", PODS, _pod(ephemeralContainers=[{"name": "d", "image": "b"}]))
    assert code == 422 and _causes(body) == [("spec.ephemeralContainers", "Forbidden: cannot be set on create")]
    assert (await call(api_server, "POST", PODS, _pod()))[0] == 201

    bad = {"spec": {"ephemeralContainers": [{"name": "app", "image": "busybox:1.35", "targetContainerName": "nope",
                                             "ports": [{"containerPort": 80}], "resources": {}}]}}
    code, body = await call(api_server, "PATCH", path, bad, MERGE)
    assert code == 422, body
    fields = dict(_causes(body))
    assert fields["spec.ephemeralContainers[0].ports"] == "Forbidden: cannot be set for an Ephemeral Container"
    assert "Duplicate value" in fields["spec.ephemeralContainers[0].name"]
    assert "Not found" in fields["spec.ephemeralContainers[0].targetContainerName"]
    assert "spec.ephemeralContainers[0].resources" not in fields  # empty is not set

    # Only the ephemeral containers are taken: the image change and the label are dropped.
    added = {"metadata": {"labels": {"x": "y"}}, "spec": {
        "containers": [{"name": "app", "image": "other"}],
        "ephemeralContainers": [{"name": "dbg", "image": "busybox:1.35", "targetContainerName": "app"}]}}
    code, pod = await call(api_server, "PATCH", path, added, MERGE)
    assert code == 200, pod
    assert pod["spec"]["ephemeralContainers"][0]["targetContainerName"] == "app"
    assert pod["spec"]["containers"][0]["image"] == "busybox:1.35" and "x" not in pod["metadata"].get("labels", {})
    code, got = await call(api_server, "GET", path)
    assert code == 200 and got["kind"] == "Pod" and got["spec"]["ephemeralContainers"][0]["name"] == "dbg"

    code, body = await call(api_server, "PATCH", path, {"spec": {"ephemeralContainers": []}}, MERGE)
    assert code == 422 and 'existing ephemeral containers "dbg" may not be removed' in body["message"]
    changed = {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36"}]}}
    code, body = await call(api_server, "PATCH", path, changed, MERGE)
    assert code == 422 and 'existing ephemeral containers "dbg" may not be changed' in body["message"]
    # Nor through the pod itself.
    got["spec"]["ephemeralContainers"].append({"name": "more", "image": "busybox:1.35"})
    code, body = await call(api_server, "PUT", f"{PODS}/p", got)
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec"


async def test_computed_groups_are_discovered_read_only(api_server: EmbeddedServer) -> None:
    _, groups = await call(api_server, "GET", "/apis")
    names = {g["name"]: g["preferredVersion"]["version"] for g in groups["groups"]}
    assert names["metrics.k8s.io"] == "v1beta1" and names["events.k8s.io"] == "v1"
    _, metrics = await call(api_server, "GET", "/apis/metrics.k8s.io/v1beta1")
    assert {(r["name"], r["kind"], tuple(r["verbs"])) for r in metrics["resources"]} == \
        {("nodes", "NodeMetrics", ("get", "list")), ("pods", "PodMetrics", ("get", "list"))}
    _, core = await call(api_server, "GET", "/api/v1")
    [sub] = [r for r in core["resources"] if r["name"] == "pods/ephemeralcontainers"]
    assert sub["verbs"] == ["get", "patch", "update"]
    code, _ = await call(api_server, "POST", "/apis/metrics.k8s.io/v1beta1/nodes", {})
    assert code == 405
    code, body = await call(api_server, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope")
    assert code == 404, body
    code, body = await call(api_server, "GET", "/apis/events.k8s.io/v1/events")
    assert code == 200 and body["kind"] == "EventList"
