"""Many pods at once on a real node: the scheduler binds those that fit (by the sum of their
requests, the node's taint and a host port) and only those, and the bound ones run."""
from __future__ import annotations

import asyncio
import urllib.request
from fractions import Fraction

from podbay.api import Node, Pod
from podbay.api.formats import load_pods
from podbay.api.quantity import parse_quantity
from podbay.api.resources import pod_requests
from tests.e2e.conftest import Cluster, free_port

TOLERATE = "tolerations: [{key: dedicated, operator: Equal, value: sched, effect: NoSchedule}]"


def quarter_pod(i: int, milli: int) -> Pod:
    return load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: quarter-{i}}}
spec:
  terminationGracePeriodSeconds: 0
  {TOLERATE}
  containers:
  - {{name: c, image: busybox:1.35, command: [sleep, "600"], resources: {{requests: {{cpu: {milli}m}}}}}}
""")[0]


def web_pod(i: int, port: int) -> Pod:
    return load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: web-{i}}}
spec:
  terminationGracePeriodSeconds: 0
  {TOLERATE}
  containers:
  - {{name: web, image: busybox:1.35,
     command: [sh, -c, "mkdir /www && echo web-{i} > /www/index.html && httpd -f -p 8080 -h /www"],
     ports: [{{containerPort: 8080, hostPort: {port}, hostIP: 127.0.0.1}}]}}
""")[0]


def intolerant_pod() -> Pod:
    return load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: intolerant}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:1.35, command: [sleep, "600"]}]
""")[0]


def unschedulable_message(p: Pod) -> str | None:
    return next((c.message for c in p.status.conditions if c.type == "PodScheduled" and c.status == "False"), None)


async def test_pods_sent_together_bind_only_where_they_fit_and_run(cluster: Cluster) -> None:
    client = cluster.client
    node_name = cluster.settings.node_name
    await client.patch(Node, node_name, {"spec": {"taints": [
        {"key": "dedicated", "value": "sched", "effect": "NoSchedule"}]}})
    node = await client.get(Node, node_name)
    allocatable = parse_quantity(node.status.allocatable["cpu"])
    quarter = int(allocatable * 1000) // 4
    port = free_port()
    pods = [quarter_pod(i, quarter) for i in range(6)] + [web_pod(i, port) for i in range(2)] + [intolerant_pod()]
    await asyncio.gather(*(client.create(p) for p in pods))

    def settled(p: Pod) -> bool:
        return p.status.phase == "Running" if p.spec.node_name else unschedulable_message(p) is not None
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        seen, _ = await client.list(Pod, "default")
        if len(seen) == len(pods) and all(settled(p) for p in seen):
            break
        assert asyncio.get_running_loop().time() < deadline, [(p.metadata.name, p.status.phase) for p in seen]
        await asyncio.sleep(0.2)

    by_name = {p.metadata.name: p for p in seen}
    bound_quarters = [p for name, p in by_name.items() if name.startswith("quarter-") and p.spec.node_name]
    assert len(bound_quarters) == 4
    assert sum((pod_requests(p).get("cpu", Fraction(0)) for p in by_name.values() if p.spec.node_name),
               Fraction(0)) <= allocatable
    for p in by_name.values():
        if p.metadata.name.startswith("quarter-") and not p.spec.node_name:
            assert unschedulable_message(p) == "0/1 nodes are available: 1 Insufficient cpu."
    webs = [by_name[f"web-{i}"] for i in range(2)]
    serving = next(p for p in webs if p.spec.node_name)
    refused = next(p for p in webs if not p.spec.node_name)
    assert unschedulable_message(refused) == \
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    assert unschedulable_message(by_name["intolerant"]) == \
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: sched}."

    def fetch() -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            return resp.read()
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            body = await asyncio.to_thread(fetch)
            break
        except OSError:
            assert asyncio.get_running_loop().time() < deadline, "the host port never answered"
            await asyncio.sleep(0.2)
    assert body == f"{serving.metadata.name}\n".encode()
