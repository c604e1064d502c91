"""Upgrades for exec, attach and port-forward that cannot be served get a 4xx Status
before any switch; a client that breaks SPDY after the switch is cut off with GOAWAY."""
from __future__ import annotations

import asyncio
import ssl

import aiohttp
import pytest

from podbay.api import Node, spdy
from podbay.client import Client
from podbay.security.pki import client_context
from tests.exec.conftest import ExecTarget

pytestmark = pytest.mark.e2e
SPDY_UPGRADE = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}


def tls(target: ExecTarget) -> ssl.SSLContext:
    return Client.from_kubeconfig(target.kubeconfig).transport.tls


@pytest.mark.parametrize("method, path, headers, code, message", [
    ("POST", "exec?command=true&stdout=1", SPDY_UPGRADE, 403, "unable to negotiate protocol"),
    ("POST", "exec?command=true&stdout=1", {**SPDY_UPGRADE, "X-Stream-Protocol-Version": "v3.channel.k8s.io"}, 403,
     "client supports ['v3.channel.k8s.io'], server supports ['v5.channel.k8s.io', 'v4.channel.k8s.io']"),
    ("POST", "exec?command=true", {**SPDY_UPGRADE, "X-Stream-Protocol-Version": "v4.channel.k8s.io"}, 400,
     "you must specify at least 1 of stdin, stdout, stderr"),
    ("POST", "attach?stdout=1", {"Connection": "Upgrade", "Upgrade": "h2c"}, 400, "Upgrade request required"),
    ("GET", "portforward", {}, 400, "Upgrade request required"),
    ("POST", "portforward", SPDY_UPGRADE, 403, "unable to negotiate protocol"),
    ("PUT", "portforward", SPDY_UPGRADE, 405, "PUT is not supported on pods/portforward"),
])
async def test_unservable_upgrades_are_4xx_statuses(target: ExecTarget, method: str, path: str,
                                                     headers: dict[str, str], code: int, message: str) -> None:
    url = f"{target.https_url}/api/v1/namespaces/default/pods/{target.pod}/{path}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls(target))) as session:
        async with session.request(method, url, headers=headers) as response:
            body = await response.json()
    assert (response.status, body["kind"], body["code"]) == (code, "Status", code)
    assert message in body["message"]


@pytest.mark.parametrize("query, protocol", [
    ("ports=80", "v9.channel.k8s.io"),
    ("", "v4.channel.k8s.io"),
    ("ports=0", "v4.channel.k8s.io"),
    ("ports=" + ",".join(["80"] * 17), "v4.channel.k8s.io"),
])
async def test_port_forward_websocket_refusals(target: ExecTarget, query: str, protocol: str) -> None:
    url = f"{target.https_url}/api/v1/namespaces/default/pods/{target.pod}/portforward?{query}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls(target))) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as failed:
            await session.ws_connect(url, protocols=(protocol,))
        assert failed.value.status == 400
        missing = f"{target.https_url}/api/v1/namespaces/default/pods/nope/portforward"
        with pytest.raises(aiohttp.WSServerHandshakeError) as failed:
            await session.ws_connect(missing, protocols=("SPDY/3.1+portforward.k8s.io",))
        assert failed.value.status == 404


async def test_broken_spdy_after_the_switch_ends_in_goaway(target: ExecTarget) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", target.cluster.settings.api_port, ssl=tls(target))
    try:
        writer.write((f"POST /api/v1/namespaces/default/pods/{target.pod}/portforward HTTP/1.1\r\n"
                      f"Host: 127.0.0.1\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                      f"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 101 ") and b"X-Stream-Protocol-Version: portforward.k8s.io" in head
        writer.write(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # a SPDY/2 PING
        rest = await asyncio.wait_for(reader.read(), 30)  # the server closes the connection
        assert spdy.FrameReader().feed(rest) == [spdy.GoAway(0, spdy.PROTOCOL_ERROR)]
    finally:
        writer.close()


async def test_the_agents_attach_and_port_forward_need_credentials(target: ExecTarget) -> None:
    node = await target.cluster.client.get(Node, target.cluster.settings.node_name)
    agent = f"https://127.0.0.1:{node.status.daemon_endpoints.kubelet_endpoint.port}"
    anonymous = aiohttp.TCPConnector(ssl=client_context(None, verify=False))
    async with aiohttp.ClientSession(connector=anonymous) as session:
        for path in (f"/portForward/default/{target.pod}?port=80", f"/attach/default/{target.pod}/main?stdout=1"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(agent + path, protocols=("v4.channel.k8s.io",))
            assert refused.value.status == 401, path
