"""coordination.k8s.io/v1 Leases over HTTP as kube-apiserver serves them: the named group's
discovery, the verbs, optimistic concurrency and validation."""
from __future__ import annotations

import json
from typing import Any

import pytest

from podbay.api import Lease
from podbay.api.errors import Conflict
from podbay.api.serialize import from_dict
from podbay.apiserver.embedded import EmbeddedServer
from podbay.client import Client
from tests.apiserver.conftest import admin_session

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


async def call(server: EmbeddedServer, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with admin_session(server) as http:
        async with http.request(method, server.https_url + path, json=body, headers=headers) as response:
            return response.status, json.loads(await response.read())


def a_lease(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": spec}


async def test_discovery_names_the_group(api_server: EmbeddedServer) -> None:
    _, groups = await call(api_server, "GET", "/apis")
    assert groups["kind"] == "APIGroupList"
    [group] = [g for g in groups["groups"] if g["name"] == "coordination.k8s.io"]
    assert group["preferredVersion"] == {"groupVersion": "coordination.k8s.io/v1", "version": "v1"}
    _, one = await call(api_server, "GET", "/apis/coordination.k8s.io")
    assert one["kind"] == "APIGroup" and one["versions"] == [group["preferredVersion"]]
    _, resources = await call(api_server, "GET", "/apis/coordination.k8s.io/v1")
    assert resources["groupVersion"] == "coordination.k8s.io/v1"
    [leases] = resources["resources"]
    assert (leases["name"], leases["kind"], leases["namespaced"]) == ("leases", "Lease", True)
    assert set(leases["verbs"]) == {"create", "delete", "get", "list", "patch", "update", "watch"}
    assert (await call(api_server, "GET", "/apis/policy/v1"))[0] == 404
    assert (await call(api_server, "GET", "/apis/nowhere.io"))[0] == 404
    # The core group keeps its own resources: no leases under /api/v1.
    assert (await call(api_server, "GET", "/api/v1/namespaces/kube-system/leases"))[0] == 404


async def test_create_get_list_update_patch_delete(api_server: EmbeddedServer) -> None:
    code, created = await call(api_server, "POST", LEASES, a_lease(
        "lock", holderIdentity="a", leaseDurationSeconds=15, acquireTime="2026-01-01T12:00:00.123456Z",
        renewTime="2026-01-01T12:00:00.123456Z", leaseTransitions=0))
    assert code == 201 and created["apiVersion"] == "coordination.k8s.io/v1"
    assert created["spec"]["renewTime"] == "2026-01-01T12:00:00.123456Z"  # MicroTime keeps microseconds
    code, got = await call(api_server, "GET", f"{LEASES}/lock")
    assert code == 200 and got["spec"]["holderIdentity"] == "a"
    code, listed = await call(api_server, "GET", LEASES)
    assert listed["kind"] == "LeaseList" and listed["apiVersion"] == "coordination.k8s.io/v1"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["lock"]

    got["spec"]["holderIdentity"] = "b"
    code, updated = await call(api_server, "PUT", f"{LEASES}/lock", got)
    assert code == 200 and updated["spec"]["holderIdentity"] == "b"
    # The same resourceVersion again: someone else wrote meanwhile.
    got["spec"]["holderIdentity"] = "c"
    code, status = await call(api_server, "PUT", f"{LEASES}/lock", got)
    assert code == 409 and status["reason"] == "Conflict"

    code, patched = await call(api_server, "PATCH", f"{LEASES}/lock", {"spec": {"holderIdentity": ""}},
                               headers={"Content-Type": "application/merge-patch+json"})
    assert code == 200 and patched["spec"]["holderIdentity"] == ""
    assert (await call(api_server, "DELETE", f"{LEASES}/lock"))[0] == 200
    assert (await call(api_server, "GET", f"{LEASES}/lock"))[0] == 404


@pytest.mark.parametrize("spec, field", [
    ({"leaseDurationSeconds": 0}, "spec.leaseDurationSeconds"),
    ({"leaseTransitions": -1}, "spec.leaseTransitions"),
    ({"preferredHolder": "a"}, "spec.preferredHolder"),
    ({"strategy": "Newest"}, "spec.strategy"),
    ({"renewTime": "yesterday"}, "spec.renewTime"),
])
async def test_invalid_leases_are_refused_naming_the_field(api_server: EmbeddedServer, spec: dict[str, Any],
                                                           field: str) -> None:
    code, status = await call(api_server, "POST", LEASES, a_lease("lock", **spec))
    assert code == 422 and status["reason"] == "Invalid"
    assert field in [c["field"] for c in status["details"]["causes"]]


async def test_unknown_lease_fields_are_refused_when_strict(api_server: EmbeddedServer) -> None:
    # Without fieldValidation kube-apiserver's default, Warn, drops them (see test_server_side_apply).
    code, status = await call(api_server, "POST", f"{LEASES}?fieldValidation=Strict", a_lease("lock", holder="a"))
    assert code == 400 and 'strict decoding error: unknown field "spec.holder"' in status["message"]


async def test_wrong_group_and_bad_names_are_refused(api_server: EmbeddedServer) -> None:
    code, status = await call(api_server, "POST", LEASES, {**a_lease("lock"), "apiVersion": "v1"})
    assert code == 400 and "coordination.k8s.io/v1/Lease" in status["message"]
    code, status = await call(api_server, "POST", LEASES, a_lease("Not_A_Name"))
    assert code == 422 and status["details"]["causes"][0]["field"] == "metadata.name"


async def test_the_typed_client_and_table_printing(api_server: EmbeddedServer, api_client: Client) -> None:
    lease = await api_client.create(from_dict(Lease, {"metadata": {"name": "kube-scheduler",
                                                                   "namespace": "kube-system"},
                                                      "spec": {"holderIdentity": "host_1", "leaseDurationSeconds": 15}}))
    stale = lease.model_copy(deep=True)
    lease.spec.holder_identity = "host_2"
    await api_client.update(lease)
    stale.spec.holder_identity = "host_3"
    with pytest.raises(Conflict):
        await api_client.update(stale)
    code, table = await call(api_server, "GET", LEASES, headers={"Accept": TABLE})
    assert code == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Holder", "Age"]
    assert table["rows"][0]["cells"][:2] == ["kube-scheduler", "host_2"]
