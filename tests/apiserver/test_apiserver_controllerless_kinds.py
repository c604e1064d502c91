"""The kinds served without a controller, over HTTP on each store: PersistentVolumeClaim and
Ingress stored with PrepareForCreate's status and validated (422 naming fields); DaemonSet,
StatefulSet and CronJob listed, every write 403 (JSON, apply or protobuf) and nothing stored;
a protobuf body of a kind podbay does not serve is 415."""
from __future__ import annotations

from tests.apiserver.test_apiserver_bad_input import API, api, assert_status  # noqa: F401 (fixture)
from tests.apiserver.test_protobuf_bodies import _envelope, _field

PVCS = "/api/v1/namespaces/default/persistentvolumeclaims"
INGRESSES = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"
DAEMONSETS = "/apis/apps/v1/namespaces/default/daemonsets"
CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
         "status": {"phase": "Bound"}}


async def test_a_claim_is_stored_pending_whatever_status_it_was_sent_with(api: API) -> None:
    created = await api.call("POST", PVCS, CLAIM)
    assert created.status == 201, created.body
    assert created.body["status"] == {"phase": "Pending"}
    assert created.body["spec"]["volumeMode"] == "Filesystem"
    changed = {**created.body, "spec": {**created.body["spec"], "accessModes": ["ReadWriteMany"]}}
    assert_status(await api.call("PUT", f"{PVCS}/data", changed), 422, "Invalid", "spec: Forbidden: spec is immutable")
    invalid = await api.call("POST", PVCS, {"metadata": {"name": "bad"}, "spec": {}})
    assert_status(invalid, 422, "Invalid", "spec.accessModes: Required value", "spec.resources.requests[storage]")
    assert invalid.body["details"]["causes"][0]["field"] == "spec.accessModes"


async def test_an_ingress_without_a_port_is_422(api: API) -> None:
    rule = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web"}}}]}}
    answer = await api.call("POST", INGRESSES, {"metadata": {"name": "web"}, "spec": {"rules": [rule]}})
    assert_status(answer, 422, "Invalid", "spec.rules[0].http.paths[0].backend.service.port: Required value")


async def test_daemonsets_list_empty_and_every_write_is_forbidden(api: API) -> None:
    listed = await api.call("GET", DAEMONSETS)
    assert (listed.status, listed.body["kind"], listed.body["items"]) == (200, "DaemonSetList", [])
    body = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {}}
    assert_status(await api.call("POST", DAEMONSETS, body), 403, "Forbidden",
                  'daemonsets.apps "agent" is forbidden: podbay does not run the DaemonSet controller')
    applied = await api.call("PATCH", f"{DAEMONSETS}/agent?fieldManager=me", body,
                             content_type="application/apply-patch+yaml")
    assert_status(applied, 403, "Forbidden", "DaemonSet controller")
    cron = _envelope("batch/v1", "CronJob", _field(1, _field(1, b"nightly")) + _field(2, _field(1, b"* * * * *")))
    answer = await api.call("POST", "/apis/batch/v1/namespaces/default/cronjobs", raw=cron,
                            content_type="application/vnd.kubernetes.protobuf")
    assert_status(answer, 403, "Forbidden", 'cronjobs.batch "nightly" is forbidden')
    assert (await api.call("GET", f"{DAEMONSETS}/agent")).status == 404


async def test_a_protobuf_body_of_a_kind_not_served_is_415(api: API) -> None:
    account = _envelope("v1", "ServiceAccount", _field(1, _field(1, b"robot")))
    answer = await api.call("POST", "/api/v1/namespaces/default/configmaps", raw=account,
                            content_type="application/vnd.kubernetes.protobuf")
    assert_status(answer, 415, "UnsupportedMediaType", "v1 ServiceAccount in protobuf is not supported")
