"""The cluster DNS server as a resolver meets it: over UDP and TCP on 127.0.0.1, answering from a
real API server's Services, following them as they come and go; names outside its domain go to
the upstream resolvers it is given, and nowhere without any."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import AsyncIterator

import pytest

from podbay.agent.dns import A, NOERROR, NXDOMAIN, SERVFAIL, DNSServer, Upstream
from podbay.api.serialize import from_dict
from podbay.api.services import Service
from podbay.apiserver.embedded import EmbeddedServer
from podbay.client import Client
from podbay.client.informer import SharedInformerFactory
from tests.ports import free_port, free_ports


def query(name: str, qid: int = 7) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", A, 1)


def answer(reply: bytes) -> tuple[int, int, list[str]]:
    """(id, rcode, the A records' addresses: each is the reply's trailing 4 bytes, one answer here)."""
    qid, flags, _, count = struct.unpack("!HHHH", reply[:8])
    addresses = [socket.inet_ntoa(reply[-4:])] if count else []
    return qid, flags & 0xF, addresses


@contextlib.asynccontextmanager
async def serving(server: DNSServer) -> AsyncIterator[DNSServer]:
    task = asyncio.create_task(server.run())
    await asyncio.gather(server.services.wait_synced(), server.slices.wait_synced())
    listening = asyncio.create_task(server.listening.wait())
    await asyncio.wait([listening, task], return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # a server that could not bind: its error, not a wait for ever
        listening.cancel()
        task.result()
    try:
        yield server
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def informers(api_client: Client) -> AsyncIterator[SharedInformerFactory]:
    factory = SharedInformerFactory(api_client)
    try:
        yield factory
    finally:
        await factory.shutdown()


@pytest.fixture
async def dns(informers: SharedInformerFactory) -> AsyncIterator[tuple[DNSServer, int]]:
    port = free_port()
    async with serving(DNSServer(informers, "127.0.0.1", port, upstreams=[])) as server:
        yield server, port


async def udp(port: int, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[bytes] = loop.create_future()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, d: bytes, addr: tuple[str, int]) -> None:
            reply.set_result(d)
    transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(data)
        return await asyncio.wait_for(reply, 10)
    finally:
        transport.close()


async def tcp(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(struct.pack("!H", len(data)) + data)
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()


async def test_answers_follow_services_over_udp_and_tcp(api_server: EmbeddedServer, api_client: Client,
                                                        dns: tuple[DNSServer, int]) -> None:
    server, port = dns
    name = "web.default.svc.cluster.local"
    assert answer(await udp(port, query(name)))[:2] == (7, NXDOMAIN)
    svc = await api_client.create(from_dict(Service, {"metadata": {"name": "web"},
                                                      "spec": {"ports": [{"port": 80}]}}))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while answer(await udp(port, query(name)))[1] != NOERROR:  # the watch brings it
        assert loop.time() < deadline, "the new Service never resolved"
        await asyncio.sleep(0.1)
    assert answer(await udp(port, query(name, 9))) == (9, NOERROR, [svc.spec.cluster_ip])
    assert answer(await tcp(port, query(name, 10))) == (10, NOERROR, [svc.spec.cluster_ip])
    # A name outside the zone with no resolver to forward to.
    assert answer(await udp(port, query("example.com")))[1] == SERVFAIL


async def test_other_names_go_to_the_upstreams_given_and_nowhere_without(
        api_client: Client, informers: SharedInformerFactory) -> None:
    """Two real servers on 127.0.0.1: the second serves the zone `other.test` and is the first's
    upstream, so a name in it is answered through the first; without upstreams the first answers
    SERVFAIL at once and the second never hears the question."""
    upstream_port, port, lonely_port = free_ports(3)
    svc = await api_client.create(from_dict(Service, {"metadata": {"name": "db"}, "spec": {"ports": [{"port": 5432}]}}))
    name = "db.default.svc.other.test"
    upstream = DNSServer(informers, "127.0.0.1", upstream_port, domain="other.test", upstreams=[])
    asked: list[bytes] = []
    resolve = upstream.resolve

    async def counted(data: bytes) -> bytes:
        asked.append(data)
        return await resolve(data)
    upstream.resolve = counted  # type: ignore[method-assign]
    async with serving(upstream), \
            serving(DNSServer(informers, "127.0.0.1", port, upstreams=[Upstream("127.0.0.1", upstream_port)])), \
            serving(DNSServer(informers, "127.0.0.1", lonely_port, upstreams=[])):
        assert answer(await udp(port, query(name, 11))) == (11, NOERROR, [svc.spec.cluster_ip])
        assert len(asked) == 1
        assert answer(await udp(lonely_port, query(name, 12))) == (12, SERVFAIL, [])
        assert answer(await tcp(lonely_port, query("example.com", 13))) == (13, SERVFAIL, [])
        assert len(asked) == 1
