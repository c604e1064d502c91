"""examples/web-deployment.yaml as a user runs it: `kubectl apply -f`, `kubectl rollout status`,
then the page (the date the backend container writes) fetched from a pod by the Service's DNS
name and from the host by its cluster IP; the official Python client sees the same Service and
its two ready endpoints."""
from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from podbay.api import Pod
from podbay.api.serialize import from_dict
from tests.e2e.conftest import Cluster
from tests.e2e.test_services_e2e import fetch_in, svc_cluster, until
from tests.e2e.workloads import kubectl, remove_workloads

__all__ = ["svc_cluster"]  # the fixture, shared with test_services_e2e
pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "web-deployment.yaml"
PAGE = re.compile(r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \w+ \d{4}$")  # busybox `date`


def from_host(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.read().decode().strip()
    except OSError:
        return None


async def test_web_deployment_example_serves_its_page_by_dns_name_and_cluster_ip(svc_cluster: Cluster) -> None:
    cluster = svc_cluster
    try:
        out = await kubectl(cluster, "apply", "-f", str(EXAMPLE))
        assert out.split("\n")[:2] == ["deployment.apps/web created", "service/web created"], out
        out = await kubectl(cluster, "rollout", "status", "deployment/web", "--timeout=180s")
        assert 'deployment "web" successfully rolled out' in out
        cluster_ip = await kubectl(cluster, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")

        # The official Python client's view: the Service, and its slice with both replicas ready.
        api = k8s_config.new_client_from_config(str(cluster.settings.kubeconfig))
        try:
            svc = await asyncio.to_thread(k8s.CoreV1Api(api).read_namespaced_service, "web", "default")
            assert svc.spec and svc.spec.ports
            assert svc.spec.cluster_ip == cluster_ip and svc.spec.ports[0].target_port == "http"

            async def two_ready() -> int | None:
                slices = await asyncio.to_thread(k8s.DiscoveryV1Api(api).list_namespaced_endpoint_slice, "default",
                                                 label_selector="kubernetes.io/service-name=web")
                ready = [ep for s in slices.items for ep in s.endpoints or [] if ep.conditions and ep.conditions.ready]
                return len(ready) if len(ready) == 2 else None
            await until("both replicas ready in web's EndpointSlice", two_ready)
        finally:
            await asyncio.to_thread(api.close)

        await cluster.client.create(from_dict(Pod, {"metadata": {"name": "client"}, "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:1.35", "command": ["sleep", "3600"]}]}}))
        await cluster.wait_for("client", lambda p: p.status.phase == "Running")
        page = await until("the page by DNS name from a pod", lambda: fetch_in(
            cluster, "client", "http://web.default.svc.cluster.local/"))
        assert PAGE.match(page), page
        page = await until("the page by cluster IP from the host", lambda: asyncio.to_thread(
            from_host, f"http://{cluster_ip}/"))
        assert PAGE.match(page), page
    finally:
        await remove_workloads(cluster)
