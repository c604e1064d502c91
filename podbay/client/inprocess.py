"""The API requests of the components `podbay up` runs beside its API server, handed straight to that
server's aiohttp application in this process instead of over its socket, as httpx's ASGI transport
hands requests to an app: one event loop no longer pays HTTP's framing twice (the client's request
building and response parsing, the server's parsing and chunked writing) for each binding, status
write, Event and watch event.

The request takes the server's own path from there on: its request factory and handler (the one its
listeners run), so authentication (as the component's Identity), the middlewares, admission, field
managers (from the same User-Agent as aiohttp's client), the body limit and Status bodies are the
same. A body streams as the handler writes it (a watch's events as they happen) under aiohttp's flow
control; the client closing a stream ends its handler, the handler ending it ends the client's read."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Mapping, cast

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11, RawRequestMessage
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from podbay.client.client import Client
from podbay.client.transport import Response
from podbay.security.authn import IN_PROCESS_IDENTITY, Identity

log = logging.getLogger("podbay.client")

# Unread response bytes before the handler's writes wait: aiohttp's client reads a socket in as much.
_READ_BUFFER = 1 << 16


class _Peer(asyncio.Transport):
    """The connection as the server's request sees it: no socket, the component's Identity."""

    def __init__(self, identity: Identity) -> None:
        super().__init__({IN_PROCESS_IDENTITY: identity})
        self._closing = False

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    # The request body is handed over whole, so there is no reading to pause.
    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Connection(BaseProtocol):
    """What a request's protocol offers its handler (the peer, no TLS) and the response body's flow
    control: the client's reader pausing past its buffer holds the handler's next write."""

    ssl_context = None
    peername = None
    sockname = None

    def __init__(self, loop: asyncio.AbstractEventLoop, peer: _Peer) -> None:
        super().__init__(loop)
        self.transport = peer
        self.readable = asyncio.Event()
        self.readable.set()

    def pause_reading(self) -> None:
        self._reading_paused = True
        self.readable.clear()

    def resume_reading(self, resume_parser: bool = True) -> None:
        self._reading_paused = False
        self.readable.set()


class LocalResponse:
    """The handler's answer as the Client reads it (a Response, as aiohttp's ClientResponse is)."""

    def __init__(self, connection: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.content = aiohttp.StreamReader(connection, _READ_BUFFER, loop=loop)
        self.started: asyncio.Future[None] = loop.create_future()

    async def read(self) -> bytes:
        return await self.content.read()


class _Writer(AbstractStreamWriter):
    """Where the server's response writes its status line, headers and body: into the LocalResponse,
    unframed."""

    def __init__(self, connection: _Connection, response: LocalResponse) -> None:
        self._connection = connection
        self.response = response
        self.ended = False

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        self.response.status = int(status_line.split(" ", 2)[1])
        self.response.headers = headers
        if not self.response.started.done():
            self.response.started.set_result(None)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._connection.transport is None or self._connection.transport.is_closing():
            # aiohttp's words when the client has gone: a watch handler ends on this.
            raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
        if chunk:
            self.buffer_size += len(chunk)
            self.output_size += len(chunk)
            self.response.content.feed_data(bytes(chunk))
        await self.drain()

    async def write_eof(self, chunk: bytes = b"") -> None:
        if self.ended:
            return
        await self.write(chunk)
        self.ended = True
        self.response.content.feed_eof()

    async def drain(self) -> None:
        await self._connection.readable.wait()

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        # Only asked for a client that accepts an encoding; this one sends no Accept-Encoding.
        raise NotImplementedError("in-process responses are not compressed")

    def enable_chunking(self) -> None:
        """Chunks are the writes themselves: there is no framing to add."""

    def abandon(self) -> None:
        """The handler ended without an answer in full: the client reads what a dropped connection gives."""
        if not self.response.started.done():
            self.response.started.set_exception(aiohttp.ServerDisconnectedError())
        elif not self.ended:
            self.response.content.set_exception(aiohttp.ClientPayloadError("Response payload is not completed"))


class InProcessRoundTripper:
    """A RoundTripper into `server` (an AppRunner's web.Server) as `identity`."""

    def __init__(self, server: web.Server, identity: Identity) -> None:
        self.server = server
        self.identity = identity
        # Handlers left to finish after their client stopped waiting, as a server's handler does when
        # its connection drops: referenced until they end.
        self._handlers: set[asyncio.Task[None]] = set()

    def round_trip(self, method: str, base: str, path: str, *, params: Mapping[str, str] | None = None,
                   data: bytes | None = None, headers: Mapping[str, str] | None = None,
                   timeout: aiohttp.ClientTimeout) -> contextlib.AbstractAsyncContextManager[Response]:
        """`timeout` guards a socket; a handler in this process has none to fall silent on."""
        return self._exchange(method, path, params, data, headers or {})

    @contextlib.asynccontextmanager
    async def _exchange(self, method: str, path: str, params: Mapping[str, str] | None, data: bytes | None,
                        headers: Mapping[str, str]) -> AsyncIterator[Response]:
        loop = asyncio.get_running_loop()
        peer = _Peer(self.identity)
        connection = _Connection(loop, peer)
        writer = _Writer(connection, LocalResponse(connection, loop))
        handler = loop.create_task(self._serve(connection, writer, self._message(method, path, params, data, headers),
                                               data or b""))
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        try:
            await writer.response.started
            yield writer.response
        finally:
            peer.close()
            connection.readable.set()
            started = writer.response.started
            if started.done() and not started.cancelled() and not writer.ended:
                # A stream the client stopped reading: its handler ends now, not at its next write. A
                # handler its client gave up on before any answer finishes, as behind a dropped connection.
                handler.cancel()

    @staticmethod
    def _message(method: str, path: str, params: Mapping[str, str] | None, data: bytes | None,
                 headers: Mapping[str, str]) -> RawRequestMessage:
        url = URL.build(path=path, query=params or {})
        fields: CIMultiDict[str] = CIMultiDict(
            {"Host": "localhost", "Accept": "application/json", "User-Agent": SERVER_SOFTWARE})
        fields.update(headers)
        if data is not None:
            fields["Content-Length"] = str(len(data))
        raw = tuple((k.encode(), v.encode()) for k, v in fields.items())
        return RawRequestMessage(method, str(url), HttpVersion11, CIMultiDictProxy(fields), raw, False, None,
                                 False, False, url)

    async def _serve(self, connection: _Connection, writer: _Writer, message: RawRequestMessage,
                     body: bytes) -> None:
        """As the server's RequestHandler serves a request it parsed, answering in full or abandoning."""
        payload = aiohttp.StreamReader(connection, max(len(body), _READ_BUFFER), loop=asyncio.get_running_loop())
        payload.feed_data(body)
        payload.feed_eof()
        task = cast("asyncio.Task[None]", asyncio.current_task())
        # The request factory wants the server's protocol; it reads the transport, peer and TLS
        # context from it, which a _Connection offers.
        request = self.server.request_factory(message, payload, cast(RequestHandler, connection), writer, task)
        try:
            response: web.StreamResponse
            try:
                response = await self.server.request_handler(request)
            except web.HTTPException as exc:
                response = exc
            except Exception:  # what the server's RequestHandler answers 500 for
                log.exception("internal error on in-process %s %s", message.method, message.path)
                response = web.HTTPInternalServerError()
            await response.prepare(request)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away first
        finally:
            writer.abandon()


def in_process_client(server: web.Server, url: str, identity: Identity) -> Client:
    """A Client whose API requests and watches go into `server` as `identity`; its exec, logs and
    /cacerts (which the in-process components do not use) go to `url` over HTTP."""
    client = Client.connect(url)
    client.transport.local = InProcessRoundTripper(server, identity)
    return client
