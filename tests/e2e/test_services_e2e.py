"""Services as users see them: a ClusterIP and a DNS name reached from a pod and balanced over
two httpd pods, the EndpointSlice following readiness, a NodePort on 127.0.0.1 from the host,
a headless Service's DNS answer, and the proxy's rules gone with the Service and the server."""
from __future__ import annotations

import asyncio
import subprocess
import urllib.request
from dataclasses import replace
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import pytest

from podbay.api.formats import load_pods
from podbay.api.serialize import from_dict
from podbay.api.services import Endpoints, EndpointSlice, Service
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, free_port, running_cluster, settings_for

pytestmark = pytest.mark.e2e
T = TypeVar("T")


@pytest.fixture
async def svc_cluster(host_env: HostEnv) -> AsyncIterator[Cluster]:
    """The all-in-one with a service range and nodePort range of this test's own (derived from
    its claimed pod subnet 10.123.N.0/24), serving HTTPS for kubectl."""
    require_root()
    n = int(host_env.subnet.split(".")[2])
    settings = replace(settings_for(host_env), api_port=free_port(), service_cluster_ip_range=f"10.127.{n}.0/24",
                       service_node_port_range=f"{30000 + 8 * n}-{30007 + 8 * n}")
    async with running_cluster(settings) as cluster:
        yield cluster


async def until(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = 60.0) -> T:
    """`probe()`'s first non-None result, polled until the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.3)


def web_pod(name: str, body: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web}}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: busybox:1.35
    command: [sh, -c, "mkdir /www && echo {body} > /www/index.html && touch /tmp/ready && httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe: {{exec: {{command: [cat, /tmp/ready]}}, periodSeconds: 1}}
"""


async def fetch_in(cluster: Cluster, pod: str, url: str) -> str | None:
    # No `wget -T`: this busybox's wget crashes with it; the exec's own timeout bounds the try.
    code, out, _ = await cluster.client.exec(pod, "default", ["wget", "-qO-", url], timeout=5)
    return out.decode().strip() if code == 0 else None


def nat_rules() -> str:
    return subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout


async def slice_endpoints(cluster: Cluster, service: str) -> dict[str, bool]:
    """pod name -> ready, over the Service's EndpointSlices."""
    slices, _ = await cluster.client.list(EndpointSlice, "default",
                                          label_selector=f"kubernetes.io/service-name={service}")
    return {ep.target_ref.name: bool(ep.conditions.ready) for es in slices for ep in es.endpoints if ep.target_ref}


async def test_service_reached_by_cluster_ip_dns_and_node_port(svc_cluster: Cluster) -> None:
    cluster = svc_cluster
    web = await cluster.client.create(from_dict(Service, {
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}))
    headless = await cluster.client.create(from_dict(Service, {
        "metadata": {"name": "web-headless"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 8080, "name": "http"}]}}))
    assert headless.spec.cluster_ip == "None"
    empty = await cluster.client.create(from_dict(Service, {
        "metadata": {"name": "empty"}, "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]}}))
    # The pods come after the Services, so their containers get the Services' variables.
    for name, body in (("web-1", "one"), ("web-2", "two")):
        await cluster.client.create(load_pods(web_pod(name, body))[0])
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:1.35, command: [sleep, "3600"]}]
""")[0])
    ip, node_port = web.spec.cluster_ip, web.spec.ports[0].node_port
    assert ip and ip.startswith("10.127.") and node_port

    pods = {}
    for name in ("web-1", "web-2", "client"):
        pods[name] = await cluster.wait_for(name, lambda p: any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions))

    async def both_ready() -> dict[str, bool] | None:
        eps = await slice_endpoints(cluster, "web")
        return eps if eps == {"web-1": True, "web-2": True} else None
    await until("both pods ready in web's EndpointSlice", both_ready)
    # One slice: a pass that ran before the watch brought back the last one's create made no second.
    slices, _ = await cluster.client.list(EndpointSlice, "default", label_selector="kubernetes.io/service-name=web")
    assert len(slices) == 1

    # What kubectl shows (server-side Tables); it runs beside the server, which is in this loop.
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(cluster.settings.kubeconfig), "get", "svc,endpointslices", "-n", "default",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    shown = [line.split() for line in out.decode().splitlines() if line.strip()]
    assert ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] in shown
    assert ["service/web", "NodePort", ip, "<none>", f"80:{node_port}/TCP"] in [row[:5] for row in shown]
    assert ["service/web-headless", "ClusterIP", "None", "<none>", "8080/TCP"] in [row[:5] for row in shown]
    addresses = ",".join(sorted(p.status.pod_ip for n, p in pods.items() if n != "client"))
    assert any(len(row) > 3 and row[0].startswith("endpointslice.discovery.k8s.io/web-")
               and row[1:3] == ["IPv4", "8080"]
               and ",".join(sorted(row[3].split(","))) == addresses for row in shown), out.decode()

    # By ClusterIP from a pod, balanced: both backends answer over a number of tries.
    seen: set[str] = set()

    async def both_answer() -> set[str] | None:
        body = await fetch_in(cluster, "client", f"http://{ip}:80/")
        if body is not None:
            seen.add(body)
        return seen if seen == {"one", "two"} else None
    await until("both backends answer through the ClusterIP", both_answer, timeout=90)

    # A Service without endpoints refuses at once, as kube-proxy's REJECT makes it.
    async def refused() -> bool | None:
        code, _, err = await cluster.client.exec("client", "default",
                                                 ["wget", "-qO-", f"http://{empty.spec.cluster_ip}/"], timeout=5)
        return True if code != 0 and b"refused" in err else None
    await until("a Service without endpoints refuses connections", refused)

    # The Services' environment variables, as the kubelet sets them.
    _, env, _ = await cluster.client.exec("client", "default", ["env"])
    variables = dict(line.split("=", 1) for line in env.decode().splitlines() if "=" in line)
    assert variables["WEB_SERVICE_HOST"] == ip and variables["WEB_PORT"] == f"tcp://{ip}:80"
    assert variables["KUBERNETES_SERVICE_PORT"] == "443" and "WEB_HEADLESS_SERVICE_HOST" not in variables

    # By DNS name, with the kubelet's search path and ndots:5 in the pod's resolv.conf.
    _, resolv, _ = await cluster.client.exec("client", "default", ["cat", "/etc/resolv.conf"])
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv.decode()
    assert "options ndots:5" in resolv.decode()
    assert await until("web.default.svc.cluster.local answers", lambda: fetch_in(
        cluster, "client", "http://web.default.svc.cluster.local/")) in ("one", "two")
    assert await fetch_in(cluster, "client", "http://web/") in ("one", "two")

    # A headless Service's name is its ready pods' IPs.
    pod_ips = {pods["web-1"].status.pod_ip, pods["web-2"].status.pod_ip}

    async def headless_ips() -> set[str] | None:
        code, out, _ = await cluster.client.exec("client", "default",
                                                 ["nslookup", "web-headless.default.svc.cluster.local"])
        found = {line.split()[-1] for line in out.decode().splitlines() if line.startswith("Address")}
        return found if code == 0 and pod_ips <= found else None
    assert await until("the headless name resolves to both pods", headless_ips) & pod_ips == pod_ips

    # NodePort from the host on 127.0.0.1.
    def get_local() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{node_port}/", timeout=3) as resp:
                return resp.read().decode().strip()
        except OSError:
            return None
    assert await until("the nodePort answers on 127.0.0.1", lambda: asyncio.to_thread(get_local)) in ("one", "two")

    # A pod turning not-ready leaves the slice's ready endpoints and the rotation.
    await cluster.client.exec("web-1", "default", ["rm", "/tmp/ready"])

    async def one_unready() -> dict[str, bool] | None:
        eps = await slice_endpoints(cluster, "web")
        return eps if eps == {"web-1": False, "web-2": True} else None
    await until("web-1 not ready in the EndpointSlice", one_unready)

    async def legacy_split() -> bool | None:
        [subset] = (await cluster.client.get(Endpoints, "web", "default")).subsets
        ready, unready = {a.target_ref.name for a in subset.addresses}, \
            {a.target_ref.name for a in subset.not_ready_addresses}
        return True if (ready, unready) == ({"web-2"}, {"web-1"}) else None
    await until("the legacy Endpoints list web-1 as not ready", legacy_split)

    async def only_two() -> bool | None:
        if f"--to-destination {pods['web-1'].status.pod_ip}:8080" in nat_rules():
            return None
        return True
    await until("web-1 gone from the proxy's rules", only_two)
    for _ in range(6):
        assert await fetch_in(cluster, "client", f"http://{ip}:80/") == "two"
    # Hairpin: web-2 reaches itself through its Service.
    assert await fetch_in(cluster, "web-2", f"http://{ip}:80/") == "two"

    # Deleting the Service removes its rules.
    assert f"-d {ip}/32" in nat_rules()
    await cluster.client.delete(Service, "web", "default")

    async def rules_gone() -> bool | None:
        return True if f"-d {ip}/32" not in nat_rules() else None
    await until("the Service's rules are removed", rules_gone)

    async def slices_gone() -> bool | None:
        return True if not await slice_endpoints(cluster, "web") else None
    await until("the Service's EndpointSlices are removed", slices_gone)
