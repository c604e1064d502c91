"""The gRPC probe against a real h2c health server on 127.0.0.1: each outcome and the
kubelet's message for it, and the request as the server sees it."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from podbay.agent.grpcprobe import probe_grpc
from podbay.agent.hooks import USER_AGENT
from tests.agent.grpc_health_server import health_server

pytestmark = pytest.mark.e2e


async def probe(port: int, service: str = "", timeout: float = 1) -> tuple[bool, str]:
    return await probe_grpc("127.0.0.1", port, service, timeout, USER_AGENT)


async def test_probe_follows_the_servers_health() -> None:
    async with health_server("127.0.0.1") as server:
        server.statuses["db"] = 2
        assert await probe(server.port) == (True, "service healthy")
        assert await probe(server.port, "db") == (False, 'service unhealthy (responded with "NOT_SERVING")')
        assert await probe(server.port, "cache") == \
            (False, "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service")
        server.implements_health = False
        assert await probe(server.port) == (False, "error: this server does not implement the grpc health protocol "
                                                   "(grpc.health.v1.Health): unknown service grpc.health.v1.Health")
        request = server.requests[0]
        assert {k: request[k] for k in (":method", ":path", ":scheme", ":authority", "content-type", "te",
                                        "user-agent")} == {
            ":method": "POST", ":path": "/grpc.health.v1.Health/Check", ":scheme": "http",
            ":authority": f"127.0.0.1:{server.port}", "content-type": "application/grpc", "te": "trailers",
            "user-agent": "kube-probe/1.32"}
        assert request["grpc-timeout"].endswith("u") and int(request["grpc-timeout"][:-1]) <= 1_000_000


async def test_an_unanswered_call_times_out() -> None:
    async with health_server("127.0.0.1") as server:
        server.hang = True
        assert await probe(server.port) == (False, "timeout: health rpc did not complete within 1s")


@contextlib.asynccontextmanager
async def silent_tcp_server() -> AsyncIterator[int]:
    """Accepts connections and says nothing: no HTTP/2 preface ever comes."""
    held: list[asyncio.StreamWriter] = []
    listener = await asyncio.start_server(lambda _r, w: held.append(w), "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        for w in held:
            w.close()
        listener.close()
        await listener.wait_closed()


async def test_no_grpc_server_is_a_connect_timeout() -> None:
    async with health_server("127.0.0.1") as server:
        closed_port = server.port  # nobody listens there once the server is gone
    assert await probe(closed_port) == (False, f'timeout: failed to connect service "127.0.0.1:{closed_port}" '
                                               f'within 1s: context deadline exceeded')
    async with silent_tcp_server() as port:
        assert await probe(port) == (False, f'timeout: failed to connect service "127.0.0.1:{port}" '
                                            f'within 1s: context deadline exceeded')
