"""core/v1 Services over HTTP as kube-apiserver serves them: ClusterIP and NodePort allocation
from the configured ranges, the `kubernetes` Service, validation as 422s naming the field,
immutable cluster IPs, the Table kubectl prints; discovery.k8s.io EndpointSlices served."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.apiserver.ipallocator import ServiceRanges
from tests.apiserver.conftest import admin_session
from tests.apiserver.test_openapi_kubectl import kubectl

SERVICES = "/api/v1/namespaces/default/services"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
RANGES = ServiceRanges("10.99.0.0/24", "30100-30110")


@pytest.fixture
async def server(tmp_path: Any) -> AsyncIterator[EmbeddedServer]:
    async with serve_embedded(tmp_path, service_ranges=RANGES) as running:
        yield running


async def call(server: EmbeddedServer, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with admin_session(server) as http:
        async with http.request(method, server.https_url + path, json=body, headers=headers) as response:
            return response.status, json.loads(await response.read())


def a_service(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


async def test_cluster_ip_comes_from_the_range_and_defaults_apply(server: EmbeddedServer) -> None:
    code, svc = await call(server, "POST", SERVICES, a_service("web", selector={"app": "web"},
                                                                ports=[{"port": 80, "targetPort": "http"}]))
    assert code == 201, svc
    spec = svc["spec"]
    assert spec["clusterIP"].startswith("10.99.0.") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["clusterIP"] != RANGES.kubernetes_ip()
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": "http"}]


async def test_client_ip_affinity_and_traffic_policies_are_defaulted_and_kept(server: EmbeddedServer) -> None:
    code, svc = await call(server, "POST", SERVICES, a_service("sticky", sessionAffinity="ClientIP"))
    assert code == 201, svc
    assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert svc["spec"]["internalTrafficPolicy"] == "Cluster" and "externalTrafficPolicy" not in svc["spec"]
    code, svc = await call(server, "POST", SERVICES, a_service(
        "local", type="NodePort", externalTrafficPolicy="Local", internalTrafficPolicy="Local",
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    assert code == 201, svc
    assert (svc["spec"]["externalTrafficPolicy"], svc["spec"]["internalTrafficPolicy"]) == ("Local", "Local")
    assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}
    assert "healthCheckNodePort" not in svc["spec"]


async def test_changing_only_the_type_drops_node_ports_and_external_policy(server: EmbeddedServer) -> None:
    """As kubectl edit of `type: NodePort` to ClusterIP: the rest sent back unchanged."""
    code, svc = await call(server, "POST", SERVICES, a_service("retype", type="NodePort",
                                                                externalTrafficPolicy="Local"))
    assert code == 201, svc
    code, again = await call(server, "PUT", f"{SERVICES}/retype", {**svc, "spec": {**svc["spec"], "type": "ClusterIP"}})
    assert code == 200, again
    assert "externalTrafficPolicy" not in again["spec"] and "nodePort" not in again["spec"]["ports"][0]
    code, status = await call(server, "PUT", f"{SERVICES}/retype", {
        **again, "spec": {**again["spec"], "externalTrafficPolicy": "Local"}})
    assert code == 422 and status["details"]["causes"][0]["field"] == "spec.externalTrafficPolicy"


async def test_kubernetes_service_holds_the_first_address(server: EmbeddedServer) -> None:
    code, svc = await call(server, "GET", f"{SERVICES}/kubernetes")
    assert code == 200 and svc["spec"]["clusterIP"] == "10.99.0.1"
    code, _ = await call(server, "POST", SERVICES, a_service("taken", clusterIP="10.99.0.1"))
    assert code == 422


async def test_node_ports_are_allocated_and_kept(server: EmbeddedServer) -> None:
    code, svc = await call(server, "POST", SERVICES, a_service("np", type="NodePort"))
    assert code == 201, svc
    port = svc["spec"]["ports"][0]["nodePort"]
    assert 30100 <= port <= 30110
    code, clash = await call(server, "POST", SERVICES, a_service("np2", type="NodePort",
                                                                  ports=[{"port": 80, "nodePort": port}]))
    assert code == 422
    assert clash["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    # An apply of the original file (no clusterIP, no nodePort) keeps what was allocated.
    code, again = await call(server, "PUT", f"{SERVICES}/np", {**a_service("np", type="NodePort"),
                                                                "metadata": svc["metadata"]})
    assert code == 200, again
    assert again["spec"]["ports"][0]["nodePort"] == port and again["spec"]["clusterIP"] == svc["spec"]["clusterIP"]


@pytest.mark.parametrize("spec, field", [
    ({"ports": []}, "spec.ports"),
    ({"ports": [{"port": 0}]}, "spec.ports[0].port"),
    ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
    ({"ports": [{"port": 80, "protocol": "HTTP"}]}, "spec.ports[0].protocol"),
    ({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}, "spec.ports[0].targetPort"),
    ({"ports": [{"port": 80, "nodePort": 30101}]}, "spec.ports[0].nodePort"),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 70000}]}, "spec.ports[0].nodePort"),
    ({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}, "spec.ports[1].name"),
    ({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}, "spec.ports[1]"),
    ({"selector": {"app": "not a label!"}}, "spec.selector"),
    ({"clusterIPs": ["10.99.0.5", "10.99.0.6"]}, "spec.clusterIPs"),
    ({"type": "LoadBalancer"}, "spec.type"),
    ({"clusterIP": "10.98.0.5"}, "spec.clusterIPs"),
    ({"clusterIP": "not-an-ip"}, "spec.clusterIPs[0]"),
    ({"clusterIP": "None", "type": "NodePort"}, "spec.clusterIPs[0]"),
    ({"sessionAffinity": "Sticky"}, "spec.sessionAffinity"),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10 ** 30}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": "soon"}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
    ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}, "spec.sessionAffinityConfig"),
    ({"externalTrafficPolicy": "Local"}, "spec.externalTrafficPolicy"),
    ({"type": "NodePort", "externalTrafficPolicy": "Nearby"}, "spec.externalTrafficPolicy"),
    ({"internalTrafficPolicy": "Nearby"}, "spec.internalTrafficPolicy"),
    ({"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30102},
     "spec.healthCheckNodePort"),
])
async def test_invalid_services_are_422_naming_the_field(server: EmbeddedServer, spec: dict[str, Any],
                                                         field: str) -> None:
    code, status = await call(server, "POST", SERVICES, a_service("bad", **spec))
    assert code == 422, status
    assert field in [c["field"] for c in status["details"]["causes"]], status
    code, _ = await call(server, "GET", f"{SERVICES}/bad")
    assert code == 404  # nothing half-made


async def test_cluster_ip_is_immutable_and_headless_allocates_nothing(server: EmbeddedServer) -> None:
    code, svc = await call(server, "POST", SERVICES, a_service("h", clusterIP="None", selector={"app": "h"}))
    assert code == 201 and svc["spec"]["clusterIP"] == "None"
    changed = {**svc, "spec": {**svc["spec"], "clusterIP": "10.99.0.7", "clusterIPs": ["10.99.0.7"]}}
    code, status = await call(server, "PUT", f"{SERVICES}/h", changed)
    assert code == 422 and status["details"]["causes"][0]["field"] == "spec.clusterIPs[0]"


async def test_table_and_endpointslices_are_served(server: EmbeddedServer) -> None:
    await call(server, "POST", SERVICES, a_service("np", type="NodePort", clusterIP="10.99.0.9",
                                                   ports=[{"port": 80, "nodePort": 30105}]))
    code, table = await call(server, "GET", SERVICES, headers={"Accept": TABLE})
    assert code == 200
    assert [c["name"] for c in table["columnDefinitions"]][:6] == \
        ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    rows = {r["cells"][0]: r["cells"][:5] for r in table["rows"]}
    assert rows["np"] == ["np", "NodePort", "10.99.0.9", "<none>", "80:30105/TCP"]
    code, slices = await call(server, "GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices")
    assert code == 200 and slices["kind"] == "EndpointSliceList"


async def test_allocation_on_each_store_sees_the_others(api_server: EmbeddedServer) -> None:
    """On SQLite and on etcd: the default range, and an address taken is refused to the next."""
    code, first = await call(api_server, "POST", SERVICES, a_service("one"))
    assert code == 201 and ipaddress.IPv4Address(first["spec"]["clusterIP"]) in ipaddress.IPv4Network("10.96.0.0/12")
    code, status = await call(api_server, "POST", SERVICES, a_service("two", clusterIP=first["spec"]["clusterIP"]))
    assert code == 422 and "provided IP is already allocated" in status["message"]


async def test_strategic_merge_patch_merges_service_ports_by_port(server: EmbeddedServer) -> None:
    """ServicePort's patchMergeKey is `port` (kubectl apply sends such patches)."""
    await call(server, "POST", SERVICES, a_service("sm", ports=[{"name": "a", "port": 80, "targetPort": 8080},
                                                                {"name": "b", "port": 443}]))
    async with admin_session(server) as http:
        async with http.patch(server.https_url + f"{SERVICES}/sm", data=json.dumps(
                {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
                headers={"Content-Type": "application/strategic-merge-patch+json"}) as response:
            assert response.status == 200, await response.text()
            ports = json.loads(await response.read())["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [("a", 80, 9090), ("b", 443, 443)]


SERVICE_YAML = """apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: {target}}}
  - {{name: https, port: 443}}
"""


async def test_kubectl_apply_configures_a_service(server: EmbeddedServer, tmp_path: Path) -> None:
    """Real kubectl: apply, apply a changed targetPort (a strategic merge patch by port), get svc."""
    if not Path("/usr/bin/kubectl").exists():
        pytest.skip("kubectl is not installed")
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_YAML.format(target="http"))
    created = await kubectl("/usr/bin/kubectl", server, tmp_path, "apply", "-f", str(manifest))
    assert (created.code, created.out.strip()) == (0, "service/web created"), created.err
    manifest.write_text(SERVICE_YAML.format(target=8080))
    changed = await kubectl("/usr/bin/kubectl", server, tmp_path, "apply", "-f", str(manifest))
    assert (changed.code, changed.out.strip()) == (0, "service/web configured"), changed.err
    _, svc = await call(server, "GET", f"{SERVICES}/web")
    assert [(p["name"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("http", 8080), ("https", 443)]
    shown = await kubectl("/usr/bin/kubectl", server, tmp_path, "get", "svc", "web")
    assert shown.out.split()[6:11] == ["web", "ClusterIP", svc["spec"]["clusterIP"], "<none>", "80/TCP,443/TCP"]
