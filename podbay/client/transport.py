"""How the Client reaches its API servers, as client-go's transport does under the REST client:
the HTTP sessions (unix socket or TLS, the bearer token) and the failover from a server that
stops answering to the next one serving the same cluster."""
from __future__ import annotations

import asyncio
import logging
import ssl
from contextlib import AbstractAsyncContextManager
from typing import Awaitable, Callable, Mapping, Protocol, Sequence, TypeVar

import aiohttp

R = TypeVar("R")
log = logging.getLogger("podbay.client")

# Methods a server may see twice without harm, so they are sent again to the next server even
# when the first may have received them (a reset, a timeout); a POST or PATCH only when it was
# never sent (the connection could not be made).
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
UNANSWERED = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


class Response(Protocol):
    """One answer as the Client reads it: aiohttp's ClientResponse is one."""
    status: int
    content: aiohttp.StreamReader  # the body as it arrives; iterating it gives its lines

    async def read(self) -> bytes: ...


class RoundTripper(Protocol):
    """How one API request reaches a server, as Go's http.RoundTripper under client-go: over HTTP
    (Transport itself) or handed to an API server in this process (podbay.client.inprocess)."""

    def round_trip(self, method: str, base: str, path: str, *, params: Mapping[str, str] | None = None,
                   data: bytes | None = None, headers: Mapping[str, str] | None = None,
                   timeout: aiohttp.ClientTimeout) -> AbstractAsyncContextManager[Response]: ...


class Transport:
    def __init__(self, base_url: str | Sequence[str], unix_socket: str | None = None, token: str | None = None,
                 tls: ssl.SSLContext | None = None, local: RoundTripper | None = None) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("a client needs at least one server URL")
        self.servers: tuple[str, ...] = tuple(u.rstrip("/") for u in urls)
        self._current = 0
        self.unix_socket = unix_socket
        self.token = token
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None
        self._unpooled: aiohttp.ClientSession | None = None
        # API requests and watches go there instead of over HTTP; exec, logs and /cacerts still use HTTP.
        self.local = local
        self.closed = False

    @property
    def base_url(self) -> str:
        """The server requests go to now: the last one that answered."""
        return self.servers[self._current]

    def failed(self, url: str) -> None:
        """`url` stopped answering: move on to the next server, unless another request already has
        (requests failing at once must not each move on, skipping the live one)."""
        if self.base_url == url and len(self.servers) > 1:
            self._current = (self._current + 1) % len(self.servers)
            log.warning("API server %s is not answering; going on with %s", url, self.base_url)

    async def failover(self, method: str, call: Callable[[str], Awaitable[R]]) -> R:
        """`call(server URL)` on the current server, then on each next one while they do not answer.
        Only an idempotent method is sent again after the server may have received it."""
        order = [self.servers[(self._current + i) % len(self.servers)] for i in range(len(self.servers))]
        for url in order[:-1]:
            try:
                return await call(url)
            except NEVER_SENT:
                self.failed(url)
            except UNANSWERED:
                self.failed(url)
                if method not in _IDEMPOTENT:
                    raise
        try:
            return await call(order[-1])
        except UNANSWERED:
            self.failed(order[-1])
            raise

    def round_trip(self, method: str, base: str, path: str, *, params: Mapping[str, str] | None = None,
                   data: bytes | None = None, headers: Mapping[str, str] | None = None,
                   timeout: aiohttp.ClientTimeout) -> AbstractAsyncContextManager[Response]:
        """`method` `base` + `path`: the RoundTripper over HTTP, or the local one."""
        if self.local is not None:
            if self.closed:
                raise RuntimeError("the client is closed")
            return self.local.round_trip(method, base, path, params=params, data=data, headers=headers,
                                         timeout=timeout)
        return self.http(method).request(method, base + path, params=params, data=data, headers=headers,
                                         timeout=timeout)

    def http(self, method: str = "GET") -> aiohttp.ClientSession:
        """The session for `method`. With several servers, a request that must not be sent twice
        goes on a connection of its own: a kept-alive one may have lost its server unnoticed, and a
        failure there would leave unknown whether the server got it, where a fresh connection
        that cannot be made certainly did not (and the next server is tried)."""
        if self.closed:
            raise RuntimeError("the client is closed")
        pooled = method in _IDEMPOTENT or len(self.servers) == 1
        session = self._session if pooled else self._unpooled
        if session is None:
            connector = (
                aiohttp.UnixConnector(path=self.unix_socket, force_close=not pooled) if self.unix_socket
                else aiohttp.TCPConnector(ssl=self.tls if self.tls is not None else True, force_close=not pooled)
            )
            headers = {"Accept": "application/json"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            session = aiohttp.ClientSession(
                connector=connector,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
            if pooled:
                self._session = session
            else:
                self._unpooled = session
        return session

    async def close(self) -> None:
        self.closed = True
        for session in (self._session, self._unpooled):
            if session is not None:
                await session.close()
        self._session = self._unpooled = None
