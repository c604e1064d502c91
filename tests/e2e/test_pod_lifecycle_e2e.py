"""A manifest becomes a running pod on real containers, end to end through the API,
the scheduler and the node agent; deleting it leaves nothing behind."""
from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest

from podbay.api import Event, Node, Pod
from podbay.api.formats import load_pods
from podbay.api.printing import pod_row
from tests.e2e.conftest import Cluster, free_port

pytestmark = pytest.mark.e2e


def web_pod(host_port: int) -> Pod:
    """The seed's two-container pod (examples/web-pod.yaml): 'backend' writes the date into an
    emptyDir, 'frontend' serves it; published on a free host port."""
    pod = load_pods(Path(__file__).resolve().parents[2] / "examples" / "web-pod.yaml")[0]
    pod.spec.containers[1].ports[0].host_port = host_port
    pod.spec.termination_grace_period_seconds = 2
    return pod


def fetch(url: str) -> str:
    return urllib.request.urlopen(url, timeout=5).read().decode()


async def fetch_when_served(url: str, timeout: float = 30.0) -> str:
    """The page once the backend has written it (within a second of its start)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await asyncio.to_thread(fetch, url)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


def ready(pod: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def test_web_pod_runs_serves_and_goes(cluster: Cluster) -> None:
    port = free_port()
    nodes, _ = await cluster.client.list(Node)
    assert [n.metadata.name for n in nodes] == [cluster.settings.node_name]
    await cluster.client.create(web_pod(port))
    pod = await cluster.wait_for("web", ready)
    assert pod.spec.node_name == cluster.settings.node_name
    assert pod.status.phase == "Running" and pod.status.pod_ip
    assert pod_row(pod).ready == "2/2" and pod_row(pod).status == "Running"
    by_ip = await fetch_when_served(f"http://{pod.status.pod_ip}:8080/")
    by_host_port = await fetch_when_served(f"http://127.0.0.1:{port}/")
    assert "UTC" in by_ip and "UTC" in by_host_port
    # The node agent sends a start's Events after the pod's status: all there, each container's in
    # the order they happened, as `kubectl describe pod` lists them.
    for name in ("backend", "frontend"):
        await cluster.wait_event("web", "Started", f"Started container {name}")
    events, _ = await cluster.client.list(Event, "default")
    mine = sorted((e for e in events if e.involved_object.name == "web"),
                  key=lambda e: int(e.metadata.resource_version or 0))
    assert [e.reason for e in mine if e.source is None or e.source.component != "kubelet"] == ["Scheduled"]
    for name in ("backend", "frontend"):
        steps = [e.reason for e in mine if e.involved_object.field_path == f"spec.containers{{{name}}}"]
        assert steps == ["Pulled", "Created", "Started"], (name, steps)

    # The seed's curl pod: another pod reaches the page at the web pod's IP.
    await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: curl}}
spec:
  restartPolicy: Never
  containers:
  - {{name: curl, image: busybox:1.35, command: [wget, -qO-, "http://{pod.status.pod_ip}:8080/"]}}
""")[0])
    curl = await cluster.wait_for("curl", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert curl.status.phase == "Succeeded" and curl.status.pod_ip != pod.status.pod_ip
    page = b"".join([c async for c in cluster.client.logs("curl", "default")]).decode()
    assert "UTC" in page

    await cluster.client.delete(Pod, "web", "default")
    await cluster.wait_for_deleted("web")
