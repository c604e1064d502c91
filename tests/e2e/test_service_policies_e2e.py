"""What a Service's policies do to real traffic, seen from pods and the host: three busybox httpd
pods answer with their hostname (and, through a CGI, the client address they see).

- 50 requests from one pod through the ClusterIP and through the DNS name reach every ready
  backend; with sessionAffinity ClientIP they all reach one, and another one once it turns
  unready. A name outside the cluster gets SERVFAIL (tests run cluster DNS without upstreams).
- externalTrafficPolicy Local: a client outside --cluster-cidr reaching the nodePort keeps its
  address (Cluster: masqueraded to the node's); with no endpoint on this node its packets are
  dropped, while the host itself still gets through.
- internalTrafficPolicy Local: the ClusterIP reaches only this node's endpoints, and none drops.

The pods' subnet (10.123.N.0/24) lies outside the cluster's --cluster-cidr (10.244.0.0/16), so the
proxy treats the client pod as it treats a machine beside the node: an outside client."""
from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from podbay.api import Pod
from podbay.api.serialize import from_dict
from podbay.api.services import EndpointSlice, Service
from tests.e2e.conftest import Cluster
from tests.e2e.test_services_e2e import slice_endpoints, svc_cluster, until

__all__ = ["svc_cluster"]  # the fixture, shared with test_services_e2e

# httpd's index is the pod's hostname; /cgi-bin/ip prints the address the request came from; the
# pod is ready while /tmp/ready exists.
ECHO = ("mkdir -p /www/cgi-bin && hostname > /www/index.html && "
        "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && "
        "chmod +x /www/cgi-bin/ip && touch /tmp/ready && exec httpd -f -p 8080 -h /www")
BACKENDS = ("echo-1", "echo-2", "echo-3")


def echo_pod(name: str) -> Pod:
    return from_dict(Pod, {"metadata": {"name": name, "labels": {"app": "echo"}}, "spec": {
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "web", "image": "busybox:1.35", "command": ["sh", "-c", ECHO],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}}]}})


def client_pod() -> Pod:
    return from_dict(Pod, {"metadata": {"name": "client"}, "spec": {
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "busybox:1.35", "command": ["sleep", "3600"]}]}})


def a_service(name: str, **spec: Any) -> Service:
    spec.setdefault("ports", [{"port": 80, "targetPort": "http"}])
    return from_dict(Service, {"metadata": {"name": name}, "spec": spec})


async def start_pods(cluster: Cluster) -> dict[str, Pod]:
    for pod in (*map(echo_pod, BACKENDS), client_pod()):
        await cluster.client.create(pod)
    return {name: await cluster.wait_for(name, lambda p: any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions), timeout=120)
        for name in (*BACKENDS, "client")}


async def ready_in_slices(cluster: Cluster, service: str, names: set[str]) -> None:
    async def all_ready() -> bool | None:
        eps = await slice_endpoints(cluster, service)
        return True if eps == dict.fromkeys(names, True) else None
    await until(f"{sorted(names)} ready in {service}'s EndpointSlice", all_ready)


async def fifty(cluster: Cluster, url: str) -> Counter[str]:
    """The bodies of 50 requests from the client pod, each a new connection."""
    code, out, err = await cluster.client.exec(
        "client", "default", ["sh", "-c", f"for i in $(seq 50); do wget -qO- {url} || echo FAILED; done"],
        timeout=120)
    assert code == 0, err
    return Counter(out.decode().split())


async def fetch(cluster: Cluster, url: str) -> tuple[int, str, str]:
    """One request from the client pod, given up after 3 s (a dropped SYN is never answered)."""
    code, out, err = await cluster.client.exec("client", "default", ["timeout", "3", "wget", "-qO-", url],
                                               timeout=30)
    return code, out.decode().strip(), err.decode()


def from_host(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.read().decode().strip()
    except OSError:
        return None


def drop_count(prefix: str, comment: str) -> int:
    """Packets the filter rule with `comment` (a DROP) has matched."""
    out = subprocess.run(["iptables-save", "-c", "-t", "filter"], capture_output=True, text=True,
                         check=True).stdout
    counts = [int(line[1:].split(":")[0]) for line in out.splitlines()
              if line.startswith("[") and f"-A {prefix}-" in line and f'"{comment}"' in line and "-j DROP" in line]
    assert counts, f"no DROP rule {comment!r}"
    return sum(counts)


async def test_requests_spread_over_ready_backends_unless_client_ip_affinity(svc_cluster: Cluster) -> None:
    cluster = svc_cluster
    spread = await cluster.client.create(a_service("echo", selector={"app": "echo"}))
    sticky = await cluster.client.create(a_service("echo-sticky", selector={"app": "echo"},
                                                   sessionAffinity="ClientIP"))
    assert sticky.spec.session_affinity_config and sticky.spec.session_affinity_config.client_ip
    assert sticky.spec.session_affinity_config.client_ip.timeout_seconds == 10800
    await start_pods(cluster)
    for name in ("echo", "echo-sticky"):
        await ready_in_slices(cluster, name, set(BACKENDS))

    # Every ready backend answers, by ClusterIP and by DNS name (the proxy's rules follow the
    # slices within a moment: polled until all three are in them).
    async def all_three(url: str) -> Counter[str] | None:
        seen = await fifty(cluster, url)
        return seen if set(seen) == set(BACKENDS) else None
    by_ip = await until("50 requests to the ClusterIP reach all three", lambda: all_three(
        f"http://{spread.spec.cluster_ip}/"))
    assert sum(by_ip.values()) == 50
    by_name = await all_three("http://echo.default.svc.cluster.local/")
    assert by_name is not None and sum(by_name.values()) == 50, by_name

    # A name outside the cluster: the test server has no upstream resolvers (nothing is sent off
    # the machine), so the pod is told SERVFAIL.
    code, out, _ = await cluster.client.exec("client", "default", ["nslookup", "example.com."], timeout=30)
    assert code != 0 and b"SERVFAIL" in out, out

    # ClientIP affinity: the same 50 requests all reach the backend the first one reached.
    sticky_seen = await fifty(cluster, f"http://{sticky.spec.cluster_ip}/")
    assert len(sticky_seen) == 1 and set(sticky_seen) <= set(BACKENDS), sticky_seen
    assert await fifty(cluster, "http://echo-sticky.default.svc.cluster.local/") == sticky_seen

    # The kernel's view: one `recent` list per endpoint chain, the client's address in one of them.
    prefix = cluster.settings.proxy_chain_prefix
    lists = {p.name: p.read_text() for p in Path("/proc/net/xt_recent").glob(f"{prefix}-SEP-*")}
    client_ip = (await cluster.client.get(Pod, "client", "default")).status.pod_ip
    assert len(lists) == 3 and sum(f"src={client_ip} " in text for text in lists.values()) == 1, lists

    # The backend it sticks to turning unready: the client moves to another and stays there,
    # and nothing goes to the unready one any more.
    [chosen] = sticky_seen
    await cluster.client.exec(chosen, "default", ["rm", "/tmp/ready"])
    rest = set(BACKENDS) - {chosen}

    async def moved() -> Counter[str] | None:
        seen = await fifty(cluster, f"http://{sticky.spec.cluster_ip}/")
        return seen if len(seen) == 1 and set(seen) <= rest else None
    await until("the sticky client moves to a ready backend", moved, timeout=90)
    after = await fifty(cluster, f"http://{spread.spec.cluster_ip}/")
    assert chosen not in after and sum(after.values()) == 50 and set(after) <= rest, after


async def test_traffic_policies_local(svc_cluster: Cluster) -> None:
    cluster = svc_cluster
    node = cluster.settings.node_name
    assert cluster.settings.subnet
    gateway = str(ipaddress.ip_network(cluster.settings.subnet).network_address + 1)  # a node address pods reach
    cluster_np = await cluster.client.create(a_service("np-cluster", type="NodePort", selector={"app": "echo"}))
    local_np = await cluster.client.create(a_service("np-local", type="NodePort", selector={"app": "echo"},
                                                     externalTrafficPolicy="Local", internalTrafficPolicy="Local"))
    # Services without a selector, their one endpoint (echo-1) said to be on this node or on another.
    here = await cluster.client.create(a_service("here", type="NodePort", ports=[{"port": 80}],
                                                 externalTrafficPolicy="Local", internalTrafficPolicy="Local"))
    elsewhere = await cluster.client.create(a_service("elsewhere", type="NodePort", ports=[{"port": 80}],
                                                      externalTrafficPolicy="Local", internalTrafficPolicy="Local"))
    pods = await start_pods(cluster)
    client_ip, echo_1 = pods["client"].status.pod_ip, pods["echo-1"].status.pod_ip
    for name, on in (("here", node), ("elsewhere", "another-node")):
        await cluster.client.create(from_dict(EndpointSlice, {
            "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [echo_1], "nodeName": on, "conditions": {"ready": True}}]}))
    for name in ("np-cluster", "np-local"):
        await ready_in_slices(cluster, name, set(BACKENDS))

    def port_of(svc: Service) -> int:
        assert svc.spec.ports[0].node_port
        return svc.spec.ports[0].node_port

    async def answer(url: str) -> str | None:
        code, body, _ = await fetch(cluster, url)
        return body if code == 0 else None

    async def client_address(url: str) -> str | None:
        """What /cgi-bin/ip says (httpd gives an IPv4 client as [::ffff:a.b.c.d])."""
        seen = await answer(url)
        return seen.strip("[]").removeprefix("::ffff:") if seen else None

    # Cluster: the backend sees the node's address (masqueraded); Local: the client's own.
    seen_cluster = await until("the Cluster nodePort answers", lambda: client_address(
        f"http://{gateway}:{port_of(cluster_np)}/cgi-bin/ip"))
    assert seen_cluster == gateway
    seen_local = await until("the Local nodePort answers", lambda: client_address(
        f"http://{gateway}:{port_of(local_np)}/cgi-bin/ip"))
    assert seen_local == client_ip
    # internalTrafficPolicy Local with every endpoint here: the ClusterIP reaches them all.
    assert set(await fifty(cluster, f"http://{local_np.spec.cluster_ip}/")) <= set(BACKENDS)

    # The endpoint on this node serves both the nodePort and the ClusterIP.
    assert await until("the nodePort with a local endpoint answers", lambda: answer(
        f"http://{gateway}:{port_of(here)}/")) == "echo-1"
    assert await answer(f"http://{here.spec.cluster_ip}/") == "echo-1"

    # No endpoint on this node: an outside client's packets to the nodePort and the ClusterIP are
    # dropped (not refused: the filter rules' DROP counts them), ...
    prefix = cluster.settings.proxy_chain_prefix
    comment = "default/elsewhere has no local endpoints"

    async def dropped(url: str) -> None:
        before = drop_count(prefix, comment)
        code, body, err = await fetch(cluster, url)
        assert code != 0 and not body and "refused" not in err, (code, body, err)
        assert drop_count(prefix, comment) > before
    await until("the elsewhere Service's rules are in place", lambda: asyncio.to_thread(
        lambda: True if any(f'"{comment}"' in line for line in subprocess.run(
            ["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout.splitlines()) else None))
    await dropped(f"http://{gateway}:{port_of(elsewhere)}/")
    await dropped(f"http://{elsewhere.spec.cluster_ip}/")
    # ... while the host itself still reaches the nodePort, through the cluster-wide endpoints.
    assert await until("the host reaches the Local nodePort without local endpoints", lambda: asyncio.to_thread(
        from_host, f"http://127.0.0.1:{port_of(elsewhere)}/")) == "echo-1"
