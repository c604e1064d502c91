"""Taking over an HTTP/1.1 connection for a non-WebSocket upgrade (`Upgrade: SPDY/3.1`),
as Go's http.Hijacker lets the kube-apiserver do: answer 101 Switching Protocols, then
read and write the connection's raw bytes.

aiohttp only switches its request parser for WebSocket upgrades, but a parser installed
with `set_parser` receives every byte that follows; a SPDY client sends nothing before
it has read the 101, so no byte is parsed as HTTP in between.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

# Bytes read ahead of the session before the socket stops being read (back-pressure).
READ_AHEAD = 256 * 1024


class Duplex(Protocol):
    """A byte stream both ways: what SPDY runs over (an upgraded connection, or a
    WebSocket that tunnels it)."""

    async def read(self) -> bytes:
        """The next bytes; b"" at the end."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class _Inbox:
    """aiohttp's payload-parser seam (feed_data / feed_eof), queueing raw bytes."""

    def __init__(self, protocol: RequestHandler) -> None:
        self._protocol = protocol
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._ready = asyncio.Event()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._chunks.append(bytes(data))
        self._size += len(data)
        if self._size > READ_AHEAD and not self._paused:
            self._paused = True
            self._protocol.pause_reading()
        self._ready.set()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._ready.set()

    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            self._ready.clear()
            await self._ready.wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size <= READ_AHEAD // 2:
            self._paused = False
            self._protocol.resume_reading()
        return chunk


class HijackedConnection:
    """The raw connection after the 101."""

    def __init__(self, request: web.Request, inbox: _Inbox) -> None:
        self._request = request
        self._inbox = inbox

    async def read(self) -> bytes:
        return await self._inbox.read()

    async def write(self, data: bytes) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        transport.write(data)
        # The protocol's flow-control waiter, as aiohttp's own writers use it.
        await self._request.protocol._drain_helper()  # noqa: SLF001

    async def close(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.close()


async def switch_protocols(request: web.Request, headers: dict[str, str]) -> tuple[web.StreamResponse,
                                                                                  HijackedConnection]:
    """Answers 101 with `headers` (Connection and Upgrade among them); the response is the
    handler's to return once the connection is done with."""
    protocol = request.protocol
    inbox = _Inbox(protocol)
    response = web.StreamResponse(status=101, headers=headers)
    response.force_close()
    protocol.set_parser(inbox)  # type: ignore[arg-type]  # any feed_data/feed_eof parser works
    protocol.keep_alive(False)
    await response.prepare(request)
    return response, HijackedConnection(request, inbox)
