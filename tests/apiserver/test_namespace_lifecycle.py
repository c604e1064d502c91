"""NamespaceLifecycle on a real server, both stores: creates in a namespace that does not exist are
404, in one being terminated 403 (Kubernetes' Status bodies and kubectl's words), whether the
server's namespace cache has seen the change yet or not; a namespace made a moment ago, or made again
after it went, takes creates at once."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from podbay.apiserver.embedded import EmbeddedServer
from tests.apiserver.conftest import admin_session
from tests.apiserver.test_openapi_kubectl import KUBECTLS, _present, kubectl

POD_YAML = """apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: main, image: "busybox:1.35"}]
"""


def _pod(name: str, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "main", "image": "busybox:1.35"}]}}


async def _call(http: aiohttp.ClientSession, server: EmbeddedServer, method: str, path: str,
                body: dict[str, Any] | None = None, content_type: str = "application/json") -> tuple[int, Any]:
    async with http.request(method, server.https_url + path, json=body,
                            headers={"Content-Type": content_type}) as response:
        return response.status, await response.json()


def _not_found(namespace: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f'namespaces "{namespace}" not found', "reason": "NotFound",
            "details": {"name": namespace, "kind": "namespaces"}, "code": 404}


def _terminating(namespace: str, name: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f'pods "{name}" is forbidden: unable to create new content in namespace {namespace} '
                       "because it is being terminated",
            "reason": "Forbidden", "details": {"name": name, "kind": "pods"}, "code": 403}


async def _until_gone(http: aiohttp.ClientSession, server: EmbeddedServer, path: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while (await _call(http, server, "GET", path))[0] != 404:
        assert asyncio.get_running_loop().time() < deadline, f"{path} never went"
        await asyncio.sleep(0.05)


async def test_create_in_a_missing_namespace_is_404(api_server: EmbeddedServer) -> None:
    async with admin_session(api_server) as http:
        status, body = await _call(http, api_server, "POST", "/api/v1/namespaces/nowhere/pods", _pod("x"))
    assert (status, body) == (404, _not_found("nowhere"))


async def test_a_namespace_made_a_moment_ago_takes_creates(api_server: EmbeddedServer) -> None:
    async with admin_session(api_server) as http:
        for i in range(10):
            ns = f"fresh-{i}"
            status, _ = await _call(http, api_server, "POST", "/api/v1/namespaces",
                                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            assert status == 201
            status, body = await _call(http, api_server, "POST", f"/api/v1/namespaces/{ns}/pods", _pod("p"))
            assert status == 201, body


async def test_terminating_then_gone_then_made_again(api_server: EmbeddedServer) -> None:
    async with admin_session(api_server) as http:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "going"}}
        assert (await _call(http, api_server, "POST", "/api/v1/namespaces", ns))[0] == 201
        held = _pod("held", finalizers=["example.com/hold"])
        assert (await _call(http, api_server, "POST", "/api/v1/namespaces/going/pods", held))[0] == 201
        # The server's cache has seen "going" active: the create right after the delete is refused
        # all the same, and so is every one after the cache has caught up.
        assert (await _call(http, api_server, "DELETE", "/api/v1/namespaces/going"))[0] == 200
        for i in range(20):
            status, body = await _call(http, api_server, "POST", "/api/v1/namespaces/going/pods", _pod(f"late-{i}"))
            assert (status, body) == (403, _terminating("going", f"late-{i}"))
            await asyncio.sleep(0.01)

        status, _ = await _call(http, api_server, "PATCH", "/api/v1/namespaces/going/pods/held",
                                {"metadata": {"finalizers": None}}, "application/merge-patch+json")
        assert status == 200
        await _until_gone(http, api_server, "/api/v1/namespaces/going")
        status, body = await _call(http, api_server, "POST", "/api/v1/namespaces/going/pods", _pod("after"))
        assert (status, body) == (404, _not_found("going"))

        assert (await _call(http, api_server, "POST", "/api/v1/namespaces", ns))[0] == 201
        status, body = await _call(http, api_server, "POST", "/api/v1/namespaces/going/pods", _pod("again"))
        assert status == 201, body


@pytest.mark.parametrize("binary", KUBECTLS[-1:])
async def test_kubectl_create_in_missing_and_terminating_namespaces(
        binary: str, api_server: EmbeddedServer, tmp_path: Path) -> None:
    _present(binary)
    missing = await kubectl(binary, api_server, tmp_path, "create", "-n", "nowhere", "-f", "-", stdin=POD_YAML)
    assert missing.code == 1
    assert 'Error from server (NotFound): error when creating "STDIN": namespaces "nowhere" not found' in missing.err

    assert (await kubectl(binary, api_server, tmp_path, "create", "namespace", "going")).code == 0
    held = POD_YAML.replace("{name: web}", "{name: held, finalizers: [example.com/hold]}")
    assert (await kubectl(binary, api_server, tmp_path, "create", "-n", "going", "-f", "-", stdin=held)).code == 0
    deleted = await kubectl(binary, api_server, tmp_path, "delete", "namespace", "going", "--wait=false")
    assert deleted.code == 0, deleted.err
    refused = await kubectl(binary, api_server, tmp_path, "create", "-n", "going", "-f", "-", stdin=POD_YAML)
    assert refused.code == 1
    assert ('Error from server (Forbidden): error when creating "STDIN": pods "web" is forbidden: unable to '
            "create new content in namespace going because it is being terminated") in refused.err
    unheld = await kubectl(binary, api_server, tmp_path, "patch", "-n", "going", "pod", "held", "--type=merge",
                           "-p", '{"metadata":{"finalizers":null}}')
    assert unheld.code == 0, unheld.err
