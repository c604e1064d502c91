"""Server-side printing: `kubectl get` asks for a meta.k8s.io Table and shows its columns."""
from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from podbay.api.formats import load_objects
from podbay.apiserver.embedded import EmbeddedServer
from podbay.client import Client
from tests.apiserver.conftest import admin_session

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
OBJECTS = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {containers: [{name: a, image: busybox}, {name: b, image: busybox}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1", b: "2"}
"""


async def get(server: EmbeddedServer, path: str, accept: str = TABLE) -> tuple[str, dict]:
    async with admin_session(server) as http:
        async with http.get(server.https_url + path, headers={"Accept": accept}) as response:
            return response.headers["Content-Type"], json.loads(await response.read())


async def test_lists_gets_and_watches_answer_with_tables(api_server: EmbeddedServer, api_client: Client) -> None:
    for obj in load_objects(OBJECTS):
        await api_client.create(obj)
    media, body = await get(api_server, "/api/v1/namespaces/default/pods")
    assert media.startswith("application/json;as=Table") and body["kind"] == "Table"
    assert [c["name"] for c in body["columnDefinitions"]] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in body["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    [row] = body["rows"]
    assert row["cells"][:4] == ["web", "0/2", "Pending", "0"] and row["cells"][5:] == ["<none>"] * 4
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["labels"] == {"app": "web"}

    _, one = await get(api_server, "/api/v1/namespaces/default/configmaps/settings?includeObject=Object")
    assert one["rows"][0]["cells"][:2] == ["settings", 2] and one["rows"][0]["object"]["data"] == {"a": "1", "b": "2"}
    _, plain = await get(api_server, "/api/v1/namespaces/default/pods", accept="application/json")
    assert plain["kind"] == "PodList"

    async with admin_session(api_server) as http:
        async with http.get(api_server.https_url + "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1",
                            headers={"Accept": TABLE}) as response:
            event = json.loads(await response.content.readline())
    assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
    assert event["object"]["rows"][0]["cells"][0] == "web"


async def test_kubectl_get_prints_the_columns(api_server: EmbeddedServer, api_client: Client) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (Debian 12 does not package it)")
    for obj in load_objects(OBJECTS):
        await api_client.create(obj)
    kubeconfig = api_server.kubeconfig  # what `podbay kubeconfig` prints
    # The server runs in this event loop: kubectl must not block it.
    kubectl = await asyncio.create_subprocess_exec("kubectl", f"--kubeconfig={kubeconfig}", "get", "pods,configmaps",
                                                   "-o", "wide", stdout=asyncio.subprocess.PIPE)
    stdout, _ = await asyncio.wait_for(kubectl.communicate(), 60)
    assert kubectl.returncode == 0
    out = stdout.decode().splitlines()
    assert out[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                              "READINESS", "GATES"]
    assert out[1].split()[:4] == ["pod/web", "0/2", "Pending", "0"]
    assert out[3].split()[:2] == ["NAME", "DATA"] and out[4].split()[:2] == ["configmap/settings", "2"]
