"""Streamed exec and attach on the agent, as the kubelet's streaming server serves them: a
WebSocket in one of Kubernetes' channel subprotocols, the command's (or, attached, the
container's own) stdin, stdout and stderr (or one terminal) on their channels and the
final Status on the error channel; an attach ends in Success when the container's
output ends.

A command that cannot be started is reported on the error channel too, after the
upgrade, so the API server in between relays it like any other outcome. A client that
goes away ends the command.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Awaitable, Callable

from aiohttp import web

from podbay.agent.cri import ContainerRuntime
from podbay.agent.podstate import ContainerRecord
from podbay.api import remotecommand as rc
from podbay.api.channels import channel_messages
from podbay.api.errors import BadRequest
from podbay.runtime.attach import AttachSession
from podbay.runtime.execsession import ExecSession

_ERRORS = {400: "BadRequest", 404: "NotFound"}


Session = ExecSession | AttachSession
# The final Status is the raw JSON object api.remotecommand builds: dict[str, Any] below is that.
FindContainer = Callable[[], Awaitable[ContainerRecord]]


async def serve_exec(request: web.Request, runtime: ContainerRuntime, find: FindContainer,
                     attach: bool = False) -> web.StreamResponse:
    """GET /exec/{ns}/{pod}/{container} (or /attach/...) with a WebSocket upgrade; `find()`
    gives the running container's record (or raises web.HTTPNotFound / HTTPBadRequest)."""
    protocol = rc.negotiate(request.headers.get("Sec-WebSocket-Protocol"))
    if protocol is None:
        raise web.HTTPBadRequest(text=f"requested protocol(s) are not supported; supports {list(rc.SUPPORTED)}")
    try:
        options = rc.attach_options(request.query) if attach else rc.exec_options(request.query)
    except BadRequest as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    ws = web.WebSocketResponse(protocols=(protocol.name,) if protocol.name else ())
    await ws.prepare(request)
    session: Session | None = None
    try:
        try:
            session = await _start(runtime, find, options, attach)
        except Exception as exc:  # every failure to start is the client's to read on the error channel
            await _send_status(ws, protocol, _start_error(exc))
            return ws
        await protocol.send(ws, _first_channel(options), b"")
        code = await _stream(ws, protocol, session)
        if code is not None:
            await _send_status(ws, protocol, rc.exit_status(code))
    finally:
        if session is not None:
            await session.close()
        await ws.close()
    return ws


async def _start(runtime: ContainerRuntime, find: FindContainer, options: rc.ExecOptions, attach: bool) -> Session:
    record = await find()
    if attach:
        return await runtime.attach(record.id, tty=options.tty, stdin=options.stdin, stdout=options.stdout,
                                    stderr=options.stderr)
    return await runtime.exec(record.id, options.command, tty=options.tty, stdin=options.stdin,
                              stdout=options.stdout, stderr=options.stderr)


def _start_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, web.HTTPException) and exc.status in _ERRORS:
        return rc.error_status(exc.text or exc.reason, exc.status, _ERRORS[exc.status])
    return rc.error_status(f"error executing command in container: {exc}")


def _first_channel(options: rc.ExecOptions) -> int:
    """The kubelet's hello: an empty message on the lowest channel it writes."""
    if options.stdout:
        return rc.STDOUT
    return rc.STDERR if options.stderr else rc.ERROR


async def _send_status(ws: web.WebSocketResponse, protocol: rc.Protocol, status: dict[str, Any]) -> None:
    payload = protocol.status_payload(status)
    if payload is not None:
        with contextlib.suppress(ConnectionError):
            await protocol.send(ws, rc.ERROR, payload)


async def _stream(ws: web.WebSocketResponse, protocol: rc.Protocol, session: Session) -> int | None:
    """Relays until the command exits (its code) or the client leaves (None: killed)."""
    outputs = [asyncio.create_task(_forward(ws, protocol, session, s)) for s in (rc.STDOUT, rc.STDERR)]
    inputs = asyncio.create_task(_receive(ws, protocol, session))
    exited = asyncio.create_task(session.wait())
    try:
        await asyncio.wait({exited, inputs}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            return None
        await asyncio.gather(*outputs)  # what the command wrote before it exited
        return exited.result()
    finally:
        for task in (*outputs, inputs, exited):
            task.cancel()
        await asyncio.gather(*outputs, inputs, exited, return_exceptions=True)


async def _forward(ws: web.WebSocketResponse, protocol: rc.Protocol, session: Session, stream: int) -> None:
    with contextlib.suppress(ConnectionError):
        async for chunk in session.output(stream):
            await protocol.send(ws, stream, chunk)


async def _receive(ws: web.WebSocketResponse, protocol: rc.Protocol, session: Session) -> None:
    async for channel, data in channel_messages(ws, protocol):
        if channel == rc.STDIN:
            await session.write_stdin(data)
        elif channel == rc.RESIZE:
            size = rc.parse_resize(data)
            if size is not None:
                session.resize(*size)
        elif channel == rc.CLOSE and protocol.half_close and data == bytes([rc.STDIN]):
            session.close_stdin()
