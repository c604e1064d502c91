"""Pod networking as users see it: localhost between a pod's containers, one hostPort per
node, hostNetwork pods on the host's interfaces."""
from __future__ import annotations

import pytest

from podbay.api.formats import load_pods
from tests.e2e.conftest import Cluster, free_port

pytestmark = pytest.mark.e2e


async def log_of(cluster: Cluster, pod: str, container: str) -> str:
    return b"".join([c async for c in cluster.client.logs(pod, "default", container=container)]).decode()


def container_done(name: str):
    return lambda p: any(s.name == name and s.state and s.state.terminated for s in p.status.container_statuses)


async def test_containers_of_a_pod_talk_over_localhost(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: local}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - {name: server, image: busybox:1.35,
     command: [sh, -c, "mkdir /www && echo from-server > /www/index.html && httpd -f -p 8081 -h /www"]}
  - {name: client, image: busybox:1.35,
     command: [sh, -c, "until wget -qO- http://localhost:8081/ 2>/dev/null; do sleep 0.2; done"]}
""")[0])
    pod = await cluster.wait_for("local", container_done("client"))
    client = next(s for s in pod.status.container_statuses if s.name == "client")
    assert client.state.terminated.exit_code == 0
    assert await log_of(cluster, "local", "client") == "from-server\n"


async def test_a_second_pod_on_the_same_host_port_is_refused(cluster: Cluster) -> None:
    port = free_port()
    for name in ("first", "second"):
        await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {{name: web, image: busybox:1.35, command: [httpd, -f, -p, "8080"],
     ports: [{{containerPort: 8080, hostPort: {port}, hostIP: 127.0.0.1}}]}}
""")[0])
        if name == "first":
            await cluster.wait_for("first", lambda p: p.status.phase == "Running")
    second = await cluster.wait_for("second", lambda p: any(
        c.type == "PodScheduled" and c.status == "False" for c in p.status.conditions))
    message = next(c.message for c in second.status.conditions if c.type == "PodScheduled")
    assert message == "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."


def host_links() -> set[str]:
    lines = open("/proc/net/dev").read().split("\n")[2:]
    return {line.split(":")[0].strip() for line in lines if ":" in line}


async def test_host_network_pod_sees_the_host_interfaces(cluster: Cluster) -> None:
    before = host_links()
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  restartPolicy: Never
  hostAliases: [{ip: 10.9.9.9, hostnames: [alias.local]}]
  containers:
  - {name: look, image: busybox:1.35, command: [sh, -c, "cat /proc/net/dev; cat /etc/hosts"]}
""")[0])
    pod = await cluster.wait_for("hostnet", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert pod.status.phase == "Succeeded"
    out = await log_of(cluster, "hostnet", "look")
    # Links that existed throughout: other tests on this host add and remove their own meanwhile.
    host_names = before & host_links()
    seen = {line.split(":")[0].strip() for line in out.split("\n") if ":" in line and "|" not in line}
    assert host_names <= seen | {""}
    assert "10.9.9.9\talias.local" in out
    assert pod.status.pod_ip == pod.status.host_ip
