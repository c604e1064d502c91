"""Cluster DNS: the cluster zone (<domain>, cluster.local by default) answered from the API's
Services and EndpointSlices as CoreDNS's kubernetes plugin answers it, every other name forwarded
to the upstream resolvers (the host's by default, as CoreDNS's `forward . /etc/resolv.conf`; with
none, SERVFAIL). A small asyncio server over UDP and TCP (RFC 1035 wire format).

    <svc>.<ns>.svc.<domain>          A     the ClusterIP; a headless Service's ready endpoints
    <host>.<svc>.<ns>.svc.<domain>   A     a headless Service's endpoint by hostname (or a-b-c-d)
    _<port>._<proto>.<svc>.<ns>.svc.<domain>  SRV  a named port
    a-b-c-d.<ns>.pod.<domain>        A     a-b-c-d as an address (the plugin's "pods insecure")

`records` is the pure part; `DNSServer` serves it."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Sequence, cast

from podbay.agent.upstreams import Upstream, host_resolvers
from podbay.api.services import SERVICE_NAME_LABEL, EndpointSlice, Service, is_headless
from podbay.client.informer import SharedInformerFactory

log = logging.getLogger(__name__)

A, SRV, AAAA, ANY = 1, 33, 28, 255
NOERROR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 2, 3, 4
TTL = 5  # CoreDNS's kubernetes plugin default
_UPSTREAM_TIMEOUT = 5.0


@dataclass(frozen=True)
class Record:
    name: str
    type: int
    value: str  # A: the address; SRV: "priority weight port target"


@dataclass(frozen=True)
class Answer:
    rcode: int
    records: tuple[Record, ...] = ()


def _ready_endpoints(slices: list[EndpointSlice]) -> list[tuple[str, str | None]]:
    """(address, hostname) of the endpoints that are ready."""
    out: list[tuple[str, str | None]] = []
    for es in slices:
        for ep in es.endpoints:
            if ep.conditions.ready is False:
                continue
            out += [(ip, ep.hostname) for ip in ep.addresses]
    return sorted(set(out), key=lambda e: e[0])


def _dashed(ip: str) -> str:
    return ip.replace(".", "-")


def records(qname: str, qtype: int, services: list[Service], slices: list[EndpointSlice],
            domain: str = "cluster.local") -> Answer | None:
    """The answer to a question about the cluster zone, or None for a name outside it."""
    name = qname.lower().rstrip(".")
    if name != domain and not name.endswith("." + domain):
        return None
    labels = name[: -len(domain)].rstrip(".").split(".") if name != domain else []
    if len(labels) == 3 and labels[2] == "pod":
        try:
            ip = str(ipaddress.IPv4Address(labels[0].replace("-", ".")))
        except ValueError:
            return Answer(NXDOMAIN)
        return Answer(NOERROR, (Record(name, A, ip),) if qtype in (A, ANY) else ())
    if len(labels) < 3 or labels[-1] != "svc":
        # svc.<domain>, <ns>.svc.<domain> and the zone itself exist (they have names under them).
        return Answer(NOERROR) if labels in ([], ["svc"]) or (len(labels) == 2 and labels[1] == "svc") \
            else Answer(NXDOMAIN)
    ns, svc_name = labels[-2], labels[-3]
    svc = next((s for s in services if s.metadata.namespace == ns and s.metadata.name == svc_name), None)
    if svc is None:
        return Answer(NXDOMAIN)
    mine = [es for es in slices if es.metadata.namespace == ns
            and es.metadata.labels.get(SERVICE_NAME_LABEL) == svc_name]
    base = f"{svc_name}.{ns}.svc.{domain}"
    endpoints = _ready_endpoints(mine)
    rest = labels[:-3]
    if not rest:
        if qtype not in (A, ANY):
            return Answer(NOERROR)
        if is_headless(svc):
            return Answer(NOERROR, tuple(Record(name, A, ip) for ip, _ in endpoints))
        return Answer(NOERROR, (Record(name, A, svc.spec.cluster_ip or ""),))
    if len(rest) == 1 and is_headless(svc):
        found = [ip for ip, host in endpoints if (host or _dashed(ip)) == rest[0]]
        if not found:
            return Answer(NXDOMAIN)
        return Answer(NOERROR, tuple(Record(name, A, ip) for ip in found) if qtype in (A, ANY) else ())
    if len(rest) == 2 and rest[0].startswith("_") and rest[1].startswith("_"):
        port_name, proto = rest[0][1:], rest[1][1:].upper()
        port = next((p for p in svc.spec.ports if p.name == port_name and p.protocol == proto), None)
        if port is None:
            return Answer(NXDOMAIN)
        if qtype not in (SRV, ANY):
            return Answer(NOERROR)
        if not is_headless(svc):
            return Answer(NOERROR, (Record(name, SRV, f"0 100 {port.port} {base}"),))
        srv = []
        for es in mine:
            number = next((p.port for p in es.ports if p.name == port_name), None)
            for ep in es.endpoints:
                if number is None or ep.conditions.ready is False:
                    continue
                srv += [Record(name, SRV, f"0 100 {number} {ep.hostname or _dashed(ip)}.{base}")
                        for ip in ep.addresses]
        return Answer(NOERROR, tuple(srv))
    return Answer(NXDOMAIN)


# --- wire format ---------------------------------------------------------------------------

def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    jumped, end, hops = False, offset, 0
    while True:
        if offset >= len(data) or hops > 64:
            raise ValueError("bad name")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if not jumped:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumped, hops = True, hops + 1
            continue
        if length == 0:
            return ".".join(labels), (end if jumped else offset + 1)
        labels.append(data[offset + 1: offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def _name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


@dataclass(frozen=True)
class Question:
    id: int
    flags: int
    name: str
    type: int
    qclass: int
    raw: bytes  # the question section as sent, echoed in the reply


def parse_query(data: bytes) -> Question:
    if len(data) < 12:
        raise ValueError("short message")
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount != 1:
        raise ValueError("one question expected")
    name, offset = _read_name(data, 12)
    qtype, qclass = struct.unpack("!HH", data[offset: offset + 4])
    return Question(qid, flags, name, qtype, qclass, data[12: offset + 4])


def encode_answer(q: Question, answer: Answer) -> bytes:
    # QR, the opcode and RD as asked, AA (this server is the zone's authority), RA.
    flags = 0x8000 | (q.flags & 0x7900) | 0x0400 | 0x0080 | answer.rcode
    body = b""
    for r in answer.records:
        if r.type == A:
            rdata = ipaddress.IPv4Address(r.value).packed
        else:
            priority, weight, port, target = r.value.split()
            rdata = struct.pack("!HHH", int(priority), int(weight), int(port)) + _name(target)
        body += _name(r.name) + struct.pack("!HHIH", r.type, 1, TTL, len(rdata)) + rdata
    return struct.pack("!HHHHHH", q.id, flags, 1, len(answer.records), 0, 0) + q.raw + body


def error_reply(data: bytes, rcode: int) -> bytes:
    """A reply echoing the query's id and question with `rcode` (for what cannot be answered)."""
    try:
        q = parse_query(data)
    except (ValueError, struct.error, IndexError):
        qid = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0
        return struct.pack("!HHHHHH", qid, 0x8000 | rcode, 0, 0, 0, 0)
    return encode_answer(q, Answer(rcode))


class _Forward(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)


class DNSServer:
    def __init__(self, informers: SharedInformerFactory, address: str, port: int = 53, domain: str = "cluster.local",
                 upstreams: Sequence[Upstream] | None = None) -> None:
        """`upstreams` None: the host's resolvers; empty: none (non-cluster names get SERVFAIL)."""
        self.address, self.port, self.domain = address, port, domain
        self.upstreams = tuple(upstreams) if upstreams is not None else host_resolvers()
        self.services = informers.informer(Service)
        self.slices = informers.informer(EndpointSlice)
        # Set once both sockets take questions: UDP is bound before TCP, so a client that waits
        # only for one may find the other refusing.
        self.listening = asyncio.Event()

    async def resolve(self, data: bytes) -> bytes:
        try:
            q = parse_query(data)
        except (ValueError, struct.error, IndexError):
            return error_reply(data, 1)  # FORMERR
        answer = records(q.name, q.type, self.services.list(), self.slices.list(), self.domain)
        if answer is not None:
            return encode_answer(q, answer)
        return await self._forward(data)

    async def _forward(self, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        for upstream in self.upstreams:
            try:
                transport, proto = await loop.create_datagram_endpoint(
                    _Forward, remote_addr=(upstream.address, upstream.port))
            except OSError:  # no route to it: the next one
                continue
            try:
                transport.sendto(data)
                return await asyncio.wait_for(proto.reply, _UPSTREAM_TIMEOUT)
            except (asyncio.TimeoutError, OSError):
                continue
            finally:
                transport.close()
        return error_reply(data, SERVFAIL)

    def _socket(self, kind: int) -> socket.socket:
        # IP_FREEBIND: the address (the pods' bridge gateway) may appear only with the first pod.
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        sock.bind((self.address, self.port))
        sock.setblocking(False)
        return sock

    async def run(self) -> None:
        """Serves until cancelled."""
        loop = asyncio.get_running_loop()
        replies: set[asyncio.Task[None]] = set()  # held so they are not collected mid-flight
        server = self

        class UDP(asyncio.DatagramProtocol):
            transport: asyncio.DatagramTransport

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                # A datagram endpoint's transport (the selector loop's class does not subclass the ABC).
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                async def reply() -> None:
                    out = await server.resolve(data)
                    # Past 512 bytes for a client that offered no larger size (no EDNS record): TC set,
                    # no answers, and the client asks again over TCP.
                    if len(out) > 512 and data[10:12] == b"\0\0":
                        out = error_reply(data, NOERROR)
                        out = out[:2] + struct.pack("!H", struct.unpack("!H", out[2:4])[0] | 0x0200) + out[4:]
                    self.transport.sendto(out, addr)
                task = asyncio.create_task(reply())
                replies.add(task)
                task.add_done_callback(replies.discard)

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    out = await server.resolve(await reader.readexactly(size))
                    writer.write(struct.pack("!H", len(out)) + out)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        transport, _ = await loop.create_datagram_endpoint(UDP, sock=self._socket(socket.SOCK_DGRAM))
        tcp_server = await asyncio.start_server(tcp, sock=self._socket(socket.SOCK_STREAM))
        self.listening.set()
        try:
            await asyncio.Future()
        finally:
            transport.close()
            tcp_server.close()
            for t in replies:
                t.cancel()
            await asyncio.gather(*replies, return_exceptions=True)
