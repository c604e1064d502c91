"""Real kubectl against the OpenAPI documents: client-side apply (create, three-way strategic
merge, unchanged), create with validation on, strict validation of an unknown field, explain;
and the HTTP behaviour of /openapi/v2 and /openapi/v3 (negotiation, ETag, hash URLs, auth)."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from podbay.api import Pod
from podbay.apiserver.embedded import EmbeddedServer
from podbay.apiserver.openapi import documents
from podbay.client import Client
from tests.api.example_files import example_files
from tests.apiserver.conftest import admin_session

KUBECTLS = ["/usr/bin/kubectl", *(f"/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}" for minor in range(27, 34))]
POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: {label}}}
spec:
  containers:
  - name: main
    image: {image}
    env: [{{name: A, value: "1"}}]
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


async def kubectl(binary: str, server: EmbeddedServer, tmp: Path, *args: str, stdin: str | None = None) -> Result:
    # The server runs in this event loop: kubectl runs beside it, never blocking it.
    process = await asyncio.create_subprocess_exec(
        binary, f"--kubeconfig={server.kubeconfig}", f"--cache-dir={tmp / 'kube-cache'}", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 90)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def _present(binary: str) -> str:
    if not Path(binary).exists():
        pytest.skip(f"{binary} is not installed")
    return binary


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_kubectl_apply_creates_patches_and_reports_unchanged(
        binary: str, api_server: EmbeddedServer, api_client: Client, tmp_path: Path) -> None:
    _present(binary)
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD.format(label="web", image="busybox:1.35"))
    created = await kubectl(binary, api_server, tmp_path, "apply", "-f", str(manifest))
    assert (created.code, created.out.strip()) == (0, "pod/web created"), created.err
    stored = await api_client.get(Pod, "web")
    applied = json.loads(stored.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["spec"]["containers"][0]["image"] == "busybox:1.35"

    manifest.write_text(POD.format(label="web2", image="busybox:1.36"))
    changed = await kubectl(binary, api_server, tmp_path, "apply", "-f", str(manifest))
    assert (changed.code, changed.out.strip()) == (0, "pod/web configured"), changed.err
    assert "warning" not in changed.err  # the patch came from the published schema, not a fallback
    stored = await api_client.get(Pod, "web")
    assert stored.metadata.labels == {"app": "web2"}
    [container] = stored.spec.containers  # merged by name, not appended
    assert (container.image, [(e.name, e.value) for e in container.env]) == ("busybox:1.36", [("A", "1")])

    again = await kubectl(binary, api_server, tmp_path, "apply", "-f", str(manifest))
    assert (again.code, again.out.strip()) == (0, "pod/web unchanged"), again.err


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_kubectl_create_validates_and_explains(
        binary: str, api_server: EmbeddedServer, api_client: Client, tmp_path: Path) -> None:
    _present(binary)
    created = await kubectl(binary, api_server, tmp_path, "create", "-f", "-",
                            stdin=POD.format(label="web", image="busybox:1.35"))
    assert (created.code, created.out.strip()) == (0, "pod/web created"), created.err

    typo = POD.format(label="typo", image="busybox").replace("name: web", "name: typo").replace(
        "    image:", "    imagee: x\n    image:")
    strict = await kubectl(binary, api_server, tmp_path, "create", "--validate=strict", "-f", "-", stdin=typo)
    assert strict.code == 1 and "spec.containers[0].imagee" in strict.err, strict.err
    pods = [p.metadata.name for p in (await api_client.list(Pod, "default"))[0]]
    assert pods == ["web"]

    explained = await kubectl(binary, api_server, tmp_path, "explain", "pod.spec.containers")
    assert explained.code == 0, explained.err
    fields = [line.split("\t")[0].strip() for line in explained.out.splitlines() if "\t<" in line]
    assert {"image", "name", "ports", "env", "volumeMounts"} <= set(fields), explained.out
    assert "name\t<string> -required-" in explained.out

    raw = await kubectl(binary, api_server, tmp_path, "get", "--raw", "/openapi/v2")
    swagger = json.loads(raw.out)
    assert swagger["swagger"] == "2.0" and "io.k8s.api.core.v1.Pod" in swagger["definitions"]


async def test_kubectl_explain_reads_the_protobuf_v2_document(api_server: EmbeddedServer, tmp_path: Path) -> None:
    binary = _present(KUBECTLS[-1])
    explained = await kubectl(binary, api_server, tmp_path, "explain", "pods.spec.containers.ports",
                              "--output=plaintext-openapiv2")
    assert explained.code == 0, explained.err
    assert "containerPort\t<integer> -required-" in explained.out


async def _get(server: EmbeddedServer, path: str, headers: dict[str, str] | None = None,
               session: aiohttp.ClientSession | None = None) -> tuple[int, dict[str, str], bytes]:
    async with session or admin_session(server) as http:
        async with http.get(server.https_url + path, headers=headers or {}, allow_redirects=False) as response:
            return response.status, dict(response.headers), await response.read()


async def test_openapi_negotiation_etags_and_hash_urls(api_server: EmbeddedServer) -> None:
    docs = documents()
    status, headers, body = await _get(api_server, "/openapi/v2", {"Accept": "application/json"})
    assert (status, headers["Content-Type"], body) == (200, "application/json", docs.v2.body)
    assert headers["Etag"] == f'"{docs.v2.hash}"' and headers["Cache-Control"] == "no-cache, private"
    status, headers, _ = await _get(api_server, "/openapi/v2", {"If-None-Match": headers["Etag"]})
    assert status == 304
    status, headers, body = await _get(
        api_server, "/openapi/v2", {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert (status, headers["Content-Type"]) == (200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    assert body == docs.v2_protobuf.body
    status, _, _ = await _get(api_server, "/openapi/v2", {"Accept": "text/html"})
    assert status == 406

    status, _, body = await _get(api_server, "/openapi/v3")
    url = json.loads(body)["paths"]["api/v1"]["serverRelativeURL"]
    status, headers, body = await _get(api_server, url)
    assert (status, headers["Cache-Control"], body) == (200, "public, immutable", docs.v3["api/v1"].body)
    assert "Expires" in headers
    status, headers, _ = await _get(api_server, "/openapi/v3/api/v1?hash=STALE")
    assert (status, headers["Location"]) == (301, url)
    status, _, _ = await _get(api_server, "/openapi/v3/apis/policy/v1")
    assert status == 404


async def test_openapi_needs_credentials(api_server: EmbeddedServer) -> None:
    anonymous = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
    status, _, _ = await _get(api_server, "/openapi/v2", session=anonymous)
    assert status == 401


@pytest.mark.parametrize("binary", [KUBECTLS[1], KUBECTLS[-1]])  # the oldest reads /openapi/v2, the newest v3
async def test_kubectl_applies_every_kubernetes_example(binary: str, api_server: EmbeddedServer,
                                                        tmp_path: Path) -> None:
    # The examples' YAML (quantities as numbers, probes, volumes, security contexts) passes the
    # published schemas; the JSON files are podbay's legacy and Hyper formats, not kubectl's.
    _present(binary)
    files = [p for p in example_files() if p.suffix == ".yaml"]
    # The class gvisor-pod.yaml names, as `podbay up` makes it where runsc is installed.
    (tmp_path / "gvisor-class.yaml").write_text(
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: gvisor}\nhandler: runsc\n")
    args = ["-f", str(tmp_path / "gvisor-class.yaml")] + [arg for path in files for arg in ("-f", str(path))]
    applied = await kubectl(binary, api_server, tmp_path, "apply", *args)
    assert applied.code == 0, applied.err
    assert applied.out.count(" created") >= len(files)
