"""pods/{name}/exec, attach and portforward over SPDY/3.1, as kube-apiserver serves
kubectl before WebSocket streaming (exec before 1.30, port-forward before 1.31, and
after them whenever the WebSocket fails): `Upgrade: SPDY/3.1` with the stream protocol
in X-Stream-Protocol-Version. Port-forward also comes as SPDY tunnelled in a WebSocket
(subprotocol `SPDY/3.1+portforward.k8s.io`, each message raw SPDY bytes), as kubectl
1.31 and later send it, or in the kubelet's plain WebSocket form (`?ports=`, two channels
per port), as other clients such as the official Python client speak it.

The API server ends SPDY here and speaks to the pod's agent over the WebSockets the agent
serves: exec in v5.channel.k8s.io (SPDY's FIN on stdin is v5's close message), one
port-forward WebSocket per forwarded connection (podbay.api.portforward).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp
from aiohttp import WSMsgType, web

from podbay.api import portforward as pf
from podbay.api import remotecommand as rc
from podbay.api import spdy
from podbay.api.channels import channel_messages
from podbay.apiserver.logs import agent_pod_url, agent_url
from podbay.apiserver.spdyconn import SpdySession, SpdyStream
from podbay.apiserver.status import HTTPError
from podbay.apiserver.streams import connect_agent, exec_params, is_websocket, stream_options
from podbay.apiserver.upgrade import Duplex, switch_protocols
from podbay.store.base import Store

UPGRADE = "SPDY/3.1"
# v5 over SPDY adds nothing to v4 (SPDY has half-close); older versions lack the Status JSON.
EXEC_PROTOCOLS = (rc.V5, rc.V4)
STREAM_TYPE_HEADER = "streamType"
STDIN, STDOUT, STDERR, ERROR, RESIZE = "stdin", "stdout", "stderr", "error", "resize"
STREAM_TYPES = (STDIN, STDOUT, STDERR, ERROR, RESIZE)
MAX_EXEC_STREAMS = 5
MAX_RESIZE_MESSAGE = 4096


def is_spdy_upgrade(request: web.Request) -> bool:
    connection = [t.strip().lower() for t in request.headers.get("Connection", "").split(",")]
    return "upgrade" in connection and request.headers.get("Upgrade", "").strip().lower() == UPGRADE.lower()


def _stream_protocol(request: web.Request, supported: tuple[str, ...]) -> str:
    offered = spdy.offered_versions(request.headers.getall("X-Stream-Protocol-Version", []))
    chosen = spdy.negotiate(offered, supported)
    if chosen is None:
        raise HTTPError(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                                          f"{offered[:8]}, server supports {list(supported)}")
    return chosen


def _upgrade_headers(protocol: str) -> dict[str, str]:
    return {"Connection": "Upgrade", "Upgrade": UPGRADE, "X-Stream-Protocol-Version": protocol}


async def _end(session: SpdySession, serving: asyncio.Task[None]) -> None:
    await session.close()
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    for pending in session.pending:
        pending.cancel()


# --- exec ------------------------------------------------------------------------------


def _expected_streams(options: rc.ExecOptions) -> set[str]:
    wanted = {ERROR}
    for kind, on in ((STDIN, options.stdin), (STDOUT, options.stdout), (STDERR, options.stderr),
                     (RESIZE, options.tty)):
        if on:
            wanted.add(kind)
    return wanted


async def serve_exec(request: web.Request, store: Store, namespace: str, name: str,
                     subresource: str = "exec") -> web.StreamResponse:
    """POST pods/{name}/exec (or attach) with `Upgrade: SPDY/3.1`."""
    options = stream_options(request, subresource)
    url, node_name = await agent_url(store, namespace, name, options.container, subresource)
    if not is_spdy_upgrade(request):
        raise HTTPError(400, "BadRequest", "Upgrade request required")
    protocol = _stream_protocol(request, EXEC_PROTOCOLS)
    expected = _expected_streams(options)
    upstream = await connect_agent(request, url, node_name, exec_params(options), (rc.V5,))
    try:
        response, conn = await switch_protocols(request, _upgrade_headers(protocol))

        def check(headers: spdy.Headers) -> str | None:
            kind = spdy.header(headers, STREAM_TYPE_HEADER)
            return None if kind in STREAM_TYPES else f"unexpected stream type: {kind!r}"

        session = SpdySession(conn, MAX_EXEC_STREAMS, check)
        serving = asyncio.create_task(session.serve())
        try:
            streams = await _collect(session, expected)
            if streams is not None:
                await _bridge_exec(session, serving, streams, upstream)
        finally:
            await _end(session, serving)
        return response
    finally:
        await upstream.close()


async def _collect(session: SpdySession, expected: set[str]) -> dict[str, SpdyStream] | None:
    """The client's streams by type once all expected arrived; None if it left or took
    longer than the kubelet's stream creation timeout."""
    streams: dict[str, SpdyStream] = {}
    deadline = time.monotonic() + pf.STREAM_CREATION_TIMEOUT
    while not expected <= set(streams):
        try:
            stream = await asyncio.wait_for(session.new_streams.get(), deadline - time.monotonic())
        except asyncio.TimeoutError:
            stream = None
        if stream is None:
            if ERROR in streams:
                await streams[ERROR].write(b"timed out waiting for client to create streams")
            return None
        kind = stream.header(STREAM_TYPE_HEADER) or ""
        if kind in streams:  # a second stream of a type: v4's handler refuses the whole exchange
            await stream.close()
            return None
        streams[kind] = stream
    return streams


async def _bridge_exec(session: SpdySession, serving: asyncio.Task[None], streams: dict[str, SpdyStream],
                       upstream: aiohttp.ClientWebSocketResponse) -> None:
    agent = rc.Protocol(rc.V5)
    outputs = {rc.STDOUT: streams.get(STDOUT), rc.STDERR: streams.get(STDERR), rc.ERROR: streams[ERROR]}

    async def from_agent() -> None:
        async for channel, data in channel_messages(upstream, agent):
            target = outputs.get(channel)
            if target is not None and data:
                await target.write(data)

    async def stdin() -> None:
        stream = streams.get(STDIN)
        if stream is None:
            return
        while chunk := await stream.read():
            await agent.send(upstream, rc.STDIN, chunk)
        await agent.send(upstream, rc.CLOSE, bytes([rc.STDIN]))

    async def resize() -> None:
        stream = streams.get(RESIZE)
        if stream is None:
            return
        buffer = b""
        while chunk := await stream.read():
            sizes, buffer = rc.split_resizes(buffer + chunk)
            for size in sizes:
                await agent.send(upstream, rc.RESIZE, rc.resize_message(*size))
            if len(buffer) > MAX_RESIZE_MESSAGE:
                return

    relays = [asyncio.create_task(from_agent()), asyncio.create_task(stdin()), asyncio.create_task(resize())]
    try:
        # The agent closes once the command ended and its status is sent; the client's
        # leaving ends the SPDY session.
        await asyncio.wait({relays[0], serving}, return_when=asyncio.FIRST_COMPLETED)
        for stream in outputs.values():
            if stream is not None:
                await stream.close()
    finally:
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)


# --- port-forward ----------------------------------------------------------------------


class WebSocketTunnel:
    """SPDY tunnelled in a WebSocket (client-go's TunnelingConnection): every binary
    message is a piece of the SPDY byte stream."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self._ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
                continue
            return b""  # a close, an error, or a text message, which the tunnel never sends

    async def write(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def close(self) -> None:
        await self._ws.close()


@dataclass(frozen=True)
class _Target:
    url: str
    node_name: str


async def serve_port_forward(request: web.Request, store: Store, namespace: str, name: str) -> web.StreamResponse:
    """pods/{name}/portforward: POST with `Upgrade: SPDY/3.1`, or GET with a WebSocket
    that tunnels SPDY."""
    url, node_name, _ = await agent_pod_url(store, namespace, name, "portForward")
    conn: Duplex
    response: web.StreamResponse
    if is_websocket(request):
        offered = rc.offered_protocols(request.headers.get("Sec-WebSocket-Protocol"))
        if pf.TUNNEL_PROTOCOL not in offered:
            return await _serve_websocket_ports(request, _Target(url, node_name), offered)
        ws = web.WebSocketResponse(protocols=(pf.TUNNEL_PROTOCOL,), max_msg_size=spdy.MAX_FRAME_LENGTH + 8)
        await ws.prepare(request)
        response, conn = ws, WebSocketTunnel(ws)
    elif is_spdy_upgrade(request):
        protocol = _stream_protocol(request, (pf.PROTOCOL_V1,))
        response, conn = await switch_protocols(request, _upgrade_headers(protocol))
    else:
        raise HTTPError(400, "BadRequest", "Upgrade request required")

    def check(headers: spdy.Headers) -> str | None:
        return pf.check_stream_headers(spdy.header(headers, pf.STREAM_TYPE_HEADER), spdy.header(headers, pf.PORT_HEADER))

    session = SpdySession(conn, pf.MAX_STREAMS, check)
    serving = asyncio.create_task(session.serve())
    forwards: set[asyncio.Task[None]] = set()
    try:
        await _pair_streams(request, session, _Target(url, node_name), forwards)
    finally:
        for task in forwards:
            task.cancel()
        await asyncio.gather(*forwards, return_exceptions=True)
        await _end(session, serving)
    return response


async def _pair_streams(request: web.Request, session: SpdySession, target: _Target,
                        forwards: set[asyncio.Task[None]]) -> None:
    table: pf.PairTable[SpdyStream] = pf.PairTable()
    while True:
        try:
            stream = await asyncio.wait_for(session.new_streams.get(), pf.STREAM_CREATION_TIMEOUT / 4)
        except asyncio.TimeoutError:
            stream = None
            if not session.closed:
                await _expire(session, table)
                continue
        if stream is None:
            return
        request_id = stream.header(pf.REQUEST_ID_HEADER) or str(stream.id)
        try:
            pair = table.add(request_id, stream.header(pf.STREAM_TYPE_HEADER) or "",
                             pf.parse_port(stream.header(pf.PORT_HEADER) or ""), stream, time.monotonic())
        except (pf.PairError, ValueError) as exc:
            await stream.write(str(exc).encode())
            await stream.close()
            session.forget(stream)
            continue
        if pair is not None:
            task = asyncio.create_task(_forward(request, session, target, pair))
            forwards.add(task)
            task.add_done_callback(forwards.discard)
        await _expire(session, table)


async def _expire(session: SpdySession, table: pf.PairTable[SpdyStream]) -> None:
    for pair in table.expired(time.monotonic()):
        if pair.error is not None:
            await pair.error.write(b"timed out waiting for streams")
        for stream in (pair.error, pair.data):
            if stream is not None:
                await stream.close()
                session.forget(stream)


async def _forward(request: web.Request, session: SpdySession, target: _Target,
                   pair: pf.StreamPair[SpdyStream]) -> None:
    data, error = pair.data, pair.error
    assert data is not None and error is not None
    try:
        try:
            upstream = await connect_agent(request, target.url, target.node_name, [("port", str(pair.port))],
                                           (rc.V4,), max_msg_size=4 * 32 * 1024)
        except HTTPError as exc:
            await error.write(str(exc).encode())
            return
        try:
            await _relay_port(upstream, data, error)
        finally:
            await upstream.close()
    finally:
        for stream in (data, error):
            with contextlib.suppress(ConnectionError):
                await stream.close()
            session.forget(stream)


async def _relay_port(upstream: aiohttp.ClientWebSocketResponse, data: SpdyStream, error: SpdyStream) -> None:
    agent = rc.Protocol(rc.V4)
    sinks = {pf.DATA_CHANNEL: data, pf.ERROR_CHANNEL: error}

    async def from_agent() -> None:
        async for channel, payload in _port_channels(upstream):
            await sinks[channel].write(payload)

    async def to_agent() -> None:
        while chunk := await data.read():
            await agent.send(upstream, pf.DATA_CHANNEL, chunk)
        if data.reset:  # the client is gone: so is the pod's connection
            await upstream.close()
        else:
            await agent.send(upstream, rc.CLOSE, bytes([pf.DATA_CHANNEL]))

    reading, writing = asyncio.create_task(from_agent()), asyncio.create_task(to_agent())
    try:
        await reading  # the agent closes once the pod's side has ended
    finally:
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)


async def _serve_websocket_ports(request: web.Request, target: _Target, offered: list[str]) -> web.StreamResponse:
    """The plain WebSocket form (podbay.api.portforward.WEBSOCKET_PROTOCOLS): one agent
    connection per port, relayed on the port's two channels until every one has ended or
    the client leaves."""
    chosen = next((p for p in offered or [""] if p in pf.WEBSOCKET_PROTOCOLS), None)
    if chosen is None:
        raise HTTPError(400, "BadRequest", f"requested protocol(s) are not supported: {offered[:8]}; supports "
                                           f"{[pf.TUNNEL_PROTOCOL, *(p for p in pf.WEBSOCKET_PROTOCOLS if p)]}")
    try:
        ports = pf.websocket_ports(request.query.getall("ports", []))
    except ValueError as exc:
        raise HTTPError(400, "BadRequest", str(exc)) from None
    protocol = rc.Protocol(chosen)
    ws = web.WebSocketResponse(protocols=(chosen,) if chosen else (), max_msg_size=4 * 32 * 1024)
    await ws.prepare(request)
    upstreams: list[aiohttp.ClientWebSocketResponse | None] = []
    try:
        for index, port in enumerate(ports):
            await protocol.send(ws, 2 * index, pf.port_prefix(port))
            await protocol.send(ws, 2 * index + 1, pf.port_prefix(port))
        for index, port in enumerate(ports):
            try:
                upstreams.append(await connect_agent(request, target.url, target.node_name, [("port", str(port))],
                                                     (rc.V4,), max_msg_size=4 * 32 * 1024))
            except HTTPError as exc:
                upstreams.append(None)
                await protocol.send(ws, 2 * index + 1, str(exc).encode())
        relays = [asyncio.create_task(_from_agent_to_channels(u, ws, protocol, 2 * i))
                  for i, u in enumerate(upstreams) if u is not None]
        inward = asyncio.create_task(_from_channels_to_agents(ws, protocol, upstreams))
        every_port = asyncio.gather(*relays)
        try:
            either: set[asyncio.Future[Any]] = {inward, every_port}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*relays, inward):
                task.cancel()
            await asyncio.gather(*relays, inward, every_port, return_exceptions=True)
    finally:
        for upstream in upstreams:
            if upstream is not None:
                await upstream.close()
        await ws.close()
    return ws


async def _port_channels(upstream: aiohttp.ClientWebSocketResponse) -> AsyncIterator[tuple[int, bytes]]:
    """What an agent's port-forward WebSocket carries on its data and error channels, without the
    port each channel opens with (the client has had it from this side)."""
    prefixed: set[int] = set()
    async for channel, payload in channel_messages(upstream, rc.Protocol(rc.V4)):
        if channel not in (pf.DATA_CHANNEL, pf.ERROR_CHANNEL):
            continue
        if channel not in prefixed:
            prefixed.add(channel)
            payload = payload[2:]
        if payload:
            yield channel, payload


async def _from_agent_to_channels(upstream: aiohttp.ClientWebSocketResponse, ws: web.WebSocketResponse,
                                  protocol: rc.Protocol, data_channel: int) -> None:
    async for channel, payload in _port_channels(upstream):
        with contextlib.suppress(ConnectionError):
            await protocol.send(ws, data_channel + channel, payload)


async def _from_channels_to_agents(ws: web.WebSocketResponse, protocol: rc.Protocol,
                                   upstreams: list[aiohttp.ClientWebSocketResponse | None]) -> None:
    agent = rc.Protocol(rc.V4)
    async for channel, data in channel_messages(ws, protocol):
        index = channel // 2
        if channel % 2 == 0 and index < len(upstreams) and data:
            upstream = upstreams[index]
            if upstream is not None and not upstream.closed:
                await agent.send(upstream, pf.DATA_CHANNEL, data)
