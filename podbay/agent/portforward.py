"""Port-forward on the agent, as the kubelet's streaming server serves it over a WebSocket
(`v4.channel.k8s.io`, one `?port=` per connection, see podbay.api.portforward): the
connection to the pod's port is made inside the pod's network namespace, its bytes go
both ways on the data channel, and a failure to connect is told on the error channel in
the kubelet's words before the WebSocket closes.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from podbay.api import portforward as pf
from podbay.api import remotecommand as rc
from podbay.api.channels import channel_messages
from podbay.agent.nodeview import NodeView
from podbay.api.stored import uid_of
from podbay.agent.runtimeview import runtime_pods
from podbay.runtime.portforward import dial_pod_port

READ_SIZE = 32 * 1024


@dataclass(frozen=True)
class PodNetwork:
    name: str
    uid: str
    netns_path: str | None  # None: the node's (hostNetwork)


async def serve_port_forward(request: web.Request, find: Callable[[], Awaitable[PodNetwork]]) -> web.StreamResponse:
    """GET /portForward/{ns}/{pod}?port=N with a WebSocket upgrade."""
    ports = request.query.getall("port", [])
    if len(ports) != 1:
        raise web.HTTPBadRequest(text="exactly one port query parameter is required")
    try:
        port = pf.parse_port(ports[0])
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    if port < 1:
        raise web.HTTPBadRequest(text=f'port "{port}" must be > 0')
    pod = await find()
    ws = web.WebSocketResponse(protocols=(rc.V4,), max_msg_size=4 * READ_SIZE)
    await ws.prepare(request)
    protocol = rc.Protocol(rc.V4)
    try:
        await protocol.send(ws, pf.DATA_CHANNEL, pf.port_prefix(port))
        await protocol.send(ws, pf.ERROR_CHANNEL, pf.port_prefix(port))
        try:
            sock = await dial_pod_port(pod.netns_path, port)
        except OSError as exc:
            message = pf.forward_error(port, pod.name, pod.uid, str(exc.args[0] if exc.args else exc))
            await protocol.send(ws, pf.ERROR_CHANNEL, message.encode())
            return ws
        with sock:
            await _relay(ws, protocol, sock)
    finally:
        await ws.close()
    return ws


async def _relay(ws: web.WebSocketResponse, protocol: rc.Protocol, sock: socket.socket) -> None:
    """Until the pod's side has ended and the client's too (or the client left)."""
    loop = asyncio.get_running_loop()

    async def outward() -> None:
        with contextlib.suppress(ConnectionError):
            while data := await loop.sock_recv(sock, READ_SIZE):
                await protocol.send(ws, pf.DATA_CHANNEL, data)

    async def inward() -> None:
        async for channel, data in channel_messages(ws, protocol):
            if channel == pf.DATA_CHANNEL:
                await loop.sock_sendall(sock, data)
            elif channel == rc.CLOSE and data == bytes([pf.DATA_CHANNEL]):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)  # the client's end of input, as SPDY's FIN

    reading, writing = asyncio.create_task(outward()), asyncio.create_task(inward())
    try:
        done, _ = await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_COMPLETED)
        if reading in done:
            # The pod closed its side: whatever the client still sends has nowhere to go.
            return
        # The client left (its WebSocket closed): nothing more is read from the pod.
    finally:
        for task in (reading, writing):
            task.cancel()
        await asyncio.gather(reading, writing, return_exceptions=True)


async def pod_network(agent: NodeView, namespace: str, pod: str) -> PodNetwork:
    """The network namespace of the pod's current sandbox (web.HTTPNotFound without one)."""
    for p in agent.pods():
        if p.metadata.namespace != namespace or p.metadata.name != pod:
            continue
        runtime_pod = (await runtime_pods(agent.runtime, uid_of(p))).get(uid_of(p))
        sandbox = next((s for s in runtime_pod.sandboxes if s.ready), None) if runtime_pod else None
        if sandbox is None:
            break
        status = await agent.runtime.pod_sandbox_status(sandbox.id)
        return PodNetwork(pod, uid_of(p), None if status.host_network else status.netns_path)
    raise web.HTTPNotFound(text=f'pod "{pod}" has no running sandbox on this node')
