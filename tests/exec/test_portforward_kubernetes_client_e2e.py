"""Port-forward with the official Kubernetes Python client, which speaks the kubelet's plain
WebSocket form (every port fixed in `?ports=`, two channels each)."""
from __future__ import annotations

import asyncio
import socket
from typing import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import portforward

from podbay.api.formats import load_pods
from tests.exec.conftest import ExecTarget
from tests.exec.test_kubectl_versions_e2e import WEB_POD

pytestmark = pytest.mark.e2e
DEADLINE = 30.0


@pytest.fixture
def core(target: ExecTarget) -> Iterator[k8s.CoreV1Api]:
    api = k8s_config.new_client_from_config(str(target.kubeconfig))
    yield k8s.CoreV1Api(api)
    api.close()


def fetch(sock: socket.socket, request: bytes, ending: bytes) -> bytes:
    """The reply up to `ending`: in this form a port's end shows only when every port has
    ended and the WebSocket closes."""
    sock.settimeout(DEADLINE)
    sock.sendall(request)
    out = b""
    while not out.endswith(ending) and (chunk := sock.recv(65536)):
        out += chunk
    return out


async def test_official_client_forwards_ports_and_reports_refusals(target: ExecTarget,
                                                                   core: k8s.CoreV1Api) -> None:
    await target.cluster.client.create(load_pods(WEB_POD)[0])
    await target.cluster.wait_for("web", lambda p: p.status.phase == "Running" and all(
        c.ready for c in p.status.container_statuses or []))

    def forward() -> tuple[bytes, bytes, str | None]:
        pf = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="8080,7999,8086")
        try:
            refused = pf.socket(7999)
            refused.settimeout(DEADLINE)
            assert refused.recv(1) == b""  # closed once the error arrived
            web = fetch(pf.socket(8080), b"GET /index.html HTTP/1.0\r\n\r\n", b"hello from httpd\n")
            six = fetch(pf.socket(8086), b"GET / HTTP/1.0\r\n\r\n", b"hello over ipv6\n")
            return web, six, pf.error(7999)
        finally:
            pf.close()

    web, six, error = await asyncio.to_thread(forward)
    assert web.startswith(b"HTTP/1.") and web.endswith(b"\r\n\r\nhello from httpd\n"), web[:200]
    assert six.endswith(b"\r\n\r\nhello over ipv6\n")
    assert error is not None and "error forwarding port 7999 to pod web" in error
    assert "IPv4: dial tcp4 127.0.0.1:7999: connect: connection refused" in error
