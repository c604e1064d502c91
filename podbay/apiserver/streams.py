"""pods/{name}/exec and pods/{name}/attach over a WebSocket: the client's upgrade in one of Kubernetes' channel
subprotocols, relayed message by message to the same subprotocol on the pod's node
agent, as the API server proxies the kubelet's stream. Either side closing closes the
other; the agent then ends the command.
"""
from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import WSMsgType, web

from podbay.api import remotecommand as rc
from podbay.apiserver.logs import SESSION_KEY, agent_url, unreachable
from podbay.apiserver.status import HTTPError
from podbay.store.base import Store


def is_websocket(request: web.Request) -> bool:
    return request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def stream_options(request: web.Request, subresource: str) -> rc.ExecOptions:
    """PodExecOptions, or PodAttachOptions for `attach`."""
    return rc.attach_options(request.query) if subresource == "attach" else rc.exec_options(request.query)


async def proxy_exec_stream(request: web.Request, store: Store, namespace: str, name: str,
                            subresource: str = "exec") -> web.StreamResponse:
    """GET pods/{name}/exec (or attach). As in Kubernetes, the pod and container are resolved
    before the upgrade is checked, so a GET without one learns what is wrong with the target."""
    options = stream_options(request, subresource)
    url, node_name = await agent_url(store, namespace, name, options.container, subresource)
    if not is_websocket(request):
        raise HTTPError(400, "BadRequest", "Upgrade request required")
    protocol = rc.negotiate(request.headers.get("Sec-WebSocket-Protocol"))
    if protocol is None:
        offered = rc.offered_protocols(request.headers.get("Sec-WebSocket-Protocol"))
        raise HTTPError(400, "BadRequest", f"requested protocol(s) are not supported: {offered}; "
                                           f"supports {[p for p in rc.SUPPORTED if p]}")
    protocols = (protocol.name,) if protocol.name else ()
    upstream = await connect_agent(request, url, node_name, exec_params(options), protocols)
    try:
        ws = web.WebSocketResponse(protocols=protocols, max_msg_size=0)
        await ws.prepare(request)
        relays = [asyncio.create_task(_relay(ws, upstream)), asyncio.create_task(_relay(upstream, ws))]
        try:
            await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
            # The agent's messages before its close (the final status) are all relayed by now.
        finally:
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            await ws.close()
        return ws
    finally:
        await upstream.close()


def exec_params(options: rc.ExecOptions) -> list[tuple[str, str]]:
    """The agent's query for a streamed exec or attach."""
    return [("command", c) for c in options.command] + [
        (k, _flag(v)) for k, v in (("stdin", options.stdin), ("stdout", options.stdout),
                                   ("stderr", options.stderr), ("tty", options.tty))]


async def connect_agent(request: web.Request, url: str, node_name: str, params: list[tuple[str, str]],
                        protocols: tuple[str, ...], max_msg_size: int = 0) -> aiohttp.ClientWebSocketResponse:
    """A WebSocket to the node's agent; its refusal is a 500 and its absence a 503, as
    kube-apiserver answers when the kubelet's upgrade fails."""
    try:
        return await request.app[SESSION_KEY].ws_connect(url, params=params, protocols=protocols,
                                                         max_msg_size=max_msg_size)
    except aiohttp.WSServerHandshakeError as exc:
        raise HTTPError(500, "InternalError", f"unable to upgrade the connection to the agent of node "
                                              f"{node_name}: {exc.status} {exc.message}") from None
    except aiohttp.ClientError as exc:
        raise unreachable(node_name, exc) from None


async def _relay(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                 sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    with contextlib.suppress(ConnectionError):
        async for msg in source:
            if msg.type == WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await sink.send_str(msg.data)
