"""The in-process RoundTripper's framing, against a small aiohttp application run as a server
runs it: the request arrives as sent (method, path, query, headers, body, the caller's identity),
the answer's status and headers come back, and a streamed body is read chunk by chunk as the
handler writes it, ending when the handler ends it."""
from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from podbay.client.inprocess import InProcessRoundTripper
from podbay.security.authn import IN_PROCESS_IDENTITY, Identity

IDENTITY = Identity("system:kube-scheduler", ("system:authenticated",))
_TIMEOUT = aiohttp.ClientTimeout(total=None)
STEP = web.AppKey("step", asyncio.Event)  # the stream handler writes its second line once set


@pytest.fixture
async def app() -> AsyncIterator[tuple[web.Application, web.Server]]:
    app = web.Application(client_max_size=1024)
    runner = web.AppRunner(app)
    app.router.add_route("*", "/echo/{name}", echo)
    app.router.add_get("/stream", stream)
    app.router.add_get("/refuse", refuse)
    app[STEP] = asyncio.Event()
    await runner.setup()
    assert runner.server is not None
    try:
        yield app, runner.server
    finally:
        await runner.cleanup()


async def echo(request: web.Request) -> web.Response:
    assert request.transport is not None
    identity = request.transport.get_extra_info(IN_PROCESS_IDENTITY)
    return web.json_response({
        "method": request.method, "name": request.match_info["name"], "query": dict(request.query),
        "contentType": request.content_type, "userAgent": request.headers.get("User-Agent"),
        "body": (await request.read()).decode(), "user": identity.user}, status=201, headers={"X-Seen": "yes"})


async def refuse(request: web.Request) -> web.Response:
    raise web.HTTPConflict(text="taken")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"one\n")
    await request.app[STEP].wait()
    await response.write(b"two\n")
    await response.write_eof()
    return response


async def test_a_request_and_its_answer_pass_unchanged(app: tuple[web.Application, web.Server]) -> None:
    rt = InProcessRoundTripper(app[1], IDENTITY)
    async with rt.round_trip("PUT", "http://localhost", "/echo/a b", params={"q": "1&2"}, data=b'{"x": 1}',
                             headers={"Content-Type": "application/json"}, timeout=_TIMEOUT) as resp:
        assert resp.status == 201
        assert json.loads(await resp.read()) == {
            "method": "PUT", "name": "a b", "query": {"q": "1&2"}, "contentType": "application/json",
            "userAgent": aiohttp.http.SERVER_SOFTWARE, "body": '{"x": 1}', "user": "system:kube-scheduler"}
    async with rt.round_trip("GET", "", "/refuse", timeout=_TIMEOUT) as resp:
        assert resp.status == 409 and await resp.read() == b"taken"
    # The application's body limit holds as over a socket.
    async with rt.round_trip("POST", "", "/echo/x", data=b"x" * 2048, timeout=_TIMEOUT) as resp:
        assert resp.status == 413


async def test_a_stream_arrives_as_written(app: tuple[web.Application, web.Server]) -> None:
    application, server = app
    rt = InProcessRoundTripper(server, IDENTITY)
    async with rt.round_trip("GET", "", "/stream", timeout=_TIMEOUT) as resp:
        assert resp.status == 200
        assert await resp.content.readline() == b"one\n"  # before the handler writes more
        application[STEP].set()
        assert await resp.content.readline() == b"two\n"
        assert await resp.content.read() == b""
