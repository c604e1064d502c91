"""A small synchronous client for one-shot reads (the command line's get, describe and logs):
one HTTP/1.1 GET per connection over the unix socket or TLS, JSON in and out. It starts in a
few milliseconds where the async Client needs aiohttp and the models (and http.client the email
package, ssl even for the socket); errors are the same podbay.api.errors exceptions, and several
--server URLs are tried in turn as the Client does."""
from __future__ import annotations

import io
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urlencode, urlsplit

from podbay.client.errors import error_from_response, error_from_status

if TYPE_CHECKING:
    import ssl

_TIMEOUT = 60.0  # seconds without an answer: the Client's sock_read
_MAX_ERROR_BYTES = 1 << 20
_MAX_LINE = 64 << 10  # a status, header or chunk-size line
_MAX_HEADERS = 100
_CHUNK = 64 << 10
_MAX_EVENT = 16 << 20  # one watch event's line: an object the store accepts, as a Table row
# A watch asks the server to end it after this (client-go's reflector's minWatchTimeout); a server
# silent for that and the grace has stopped answering.
_WATCH_TIMEOUT, _WATCH_GRACE = 300, 30


class Unreachable(Exception):
    """No server answered; the message says why, as aiohttp words a connection that failed."""


@dataclass(frozen=True)
class Endpoint:
    url: str  # as the user named it: unix:///path or https://host:port
    unix_socket: str | None
    host: str
    port: int
    tls: ssl.SSLContext | None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.unix_socket or self.port == (443 if self.tls else 80) else f"{host}:{self.port}"


class _Disconnected(ConnectionError):
    """The server closed the connection before answering in full."""


class _Response:
    """An HTTP/1.1 response read from `sock`: the status, headers, and the body (sized or chunked)."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._sock = sock
        self._stream: io.BufferedReader = sock.makefile("rb")
        status = self._line()
        version, _, rest = status.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not rest[:3].isdigit():
            raise _Disconnected(f"not an HTTP response: {status[:80]!r}")
        self.status = int(rest[:3])
        self.headers: dict[str, str] = {}
        while line := self._line():
            if len(self.headers) >= _MAX_HEADERS:
                raise _Disconnected("too many header lines")
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def _line(self) -> bytes:
        line = self._stream.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise _Disconnected("the answer ended early" if len(line) <= _MAX_LINE else "a line too long")
        return line.rstrip(b"\r\n")

    def _exact(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) < size:
            raise _Disconnected("the answer ended early")
        return data

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int(self._line().split(b";")[0] or b"0", 16):
                yield self._exact(size)
                self._line()
            while self._line():
                pass  # trailers
        elif "content-length" in self.headers:
            left = int(self.headers["content-length"])
            while left > 0:
                data = self._exact(min(left, _CHUNK))
                left -= len(data)
                yield data
        else:
            while data := self._stream.read1(_CHUNK):
                yield data

    def read(self, limit: int | None = None) -> bytes:
        body = bytearray()
        for chunk in self.chunks():
            body += chunk
            if limit is not None and len(body) >= limit:
                return bytes(body[:limit])
        return bytes(body)

    def close(self) -> None:
        self._stream.close()
        self._sock.close()


class RESTClient:
    def __init__(self, endpoints: list[Endpoint], token: str | None = None) -> None:
        if not endpoints:
            raise ValueError("a client needs at least one server URL")
        self.endpoints = endpoints
        self.token = token

    @classmethod
    def connect(cls, server: str, token: str | None = None) -> "RESTClient":
        """`server`: unix:///path/api.sock, or http(s) URLs (comma-separated: tried in turn). The
        token defaults to $PODBAY_TOKEN, as the async Client's."""
        token = token or os.environ.get("PODBAY_TOKEN") or None
        if server.startswith("unix://") or server.startswith("/"):
            path = server.removeprefix("unix://")
            return cls([Endpoint(server, path, "localhost", 80, None)], token)
        urls = split_servers(server)
        if len(urls) > 1 and any(not u.startswith(("http://", "https://")) for u in urls):
            raise ValueError(f"{server}: only http(s) URLs can be listed together, not a unix socket")
        if any(u.startswith("https://") for u in urls):
            import ssl
            return cls([_endpoint(u, ssl.create_default_context()) for u in urls], token)
        return cls([_endpoint(u, None) for u in urls], token)

    @classmethod
    def from_kubeconfig(cls, path: Path, servers: list[str]) -> "RESTClient":
        """`servers` (or the kubeconfig's own) with the credentials of its current context."""
        from podbay.security import kubeconfig
        from podbay.security.tls import client_context
        creds = kubeconfig.load(path)
        tls = client_context(creds.ca, creds.cert, creds.key)
        return cls([_endpoint(u, tls) for u in servers or [creds.server]], creds.token)

    def get(self, path: str, params: dict[str, str] | None = None, accept: str = "application/json") -> Any:
        """The decoded JSON of a GET, or the error its Status carries raised."""
        resp = self._open(path, params, accept)
        try:
            return json.loads(self._body(resp, lambda: resp.read()))
        finally:
            resp.close()

    def stream(self, path: str, params: dict[str, str] | None = None, follow: bool = False) -> Iterator[bytes]:
        """A GET's body as it arrives (a log; a followed one is silent for as long as its container)."""
        resp = self._open(path, params, "*/*", None if follow else _TIMEOUT)
        try:
            chunks = resp.chunks()
            while chunk := self._body(resp, lambda: next(chunks, b"")):
                yield chunk
        finally:
            resp.close()

    def watch(self, path: str, params: dict[str, str], accept: str = "application/json") -> Iterator[dict[str, Any]]:
        """One watch request's events (`{"type", "object"}`) as they arrive, until the server ends
        it; an ERROR event is raised as its Status's error (410: Expired), as the Client's reflector does."""
        timeout = int(params.get("timeoutSeconds") or _WATCH_TIMEOUT)
        resp = self._open(path, {**params, "watch": "1", "timeoutSeconds": str(timeout)}, accept, timeout + _WATCH_GRACE)
        try:
            buffered = b""
            chunks = resp.chunks()
            while chunk := self._body(resp, lambda: next(chunks, b"")):
                *lines, buffered = (buffered + chunk).split(b"\n")
                if len(buffered) > _MAX_EVENT:
                    raise Unreachable(_describe(resp.endpoint, _Disconnected("a watch event too long")))
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        raise error_from_status(event.get("object") or {})
                    yield event
        finally:
            resp.close()

    def _body(self, resp: _Response, read: Callable[[], bytes]) -> bytes:
        try:
            return read()
        except OSError as exc:
            raise Unreachable(_describe(resp.endpoint, exc)) from None

    def _open(self, path: str, params: dict[str, str] | None, accept: str,
              read_timeout: float | None = _TIMEOUT) -> _Response:
        target = path + ("?" + urlencode(params) if params else "")
        failure: Unreachable | None = None
        for i, endpoint in enumerate(self.endpoints):
            lines = [f"GET {target} HTTP/1.1", f"Host: {endpoint.host_header}", f"Accept: {accept}",
                     "Connection: close"]
            if self.token:
                lines.append(f"Authorization: Bearer {self.token}")
            try:
                resp = _request(endpoint, ("\r\n".join(lines) + "\r\n\r\n").encode(), read_timeout)
            except OSError as exc:
                failure = Unreachable(_describe(endpoint, exc))
                if i + 1 < len(self.endpoints):
                    # The Client's words when it moves on (its logger's warning).
                    print(f"API server {endpoint.url} is not answering; going on with {self.endpoints[i + 1].url}",
                          file=sys.stderr)
                continue
            if resp.status >= 400:
                try:
                    raw = resp.read(_MAX_ERROR_BYTES)
                except OSError:
                    raw = b""
                finally:
                    resp.close()
                raise error_from_response(resp.status, raw)
            return resp
        assert failure is not None
        raise failure


def split_servers(text: str) -> list[str]:
    """`URL[,URL...]`, as --server and $PODBAY_SERVER give them."""
    return [u.strip() for u in text.split(",") if u.strip()]


def _endpoint(url: str, tls: ssl.SSLContext | None) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url}: want unix:///PATH or http(s)://HOST[:PORT]")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Endpoint(url, None, parts.hostname, port, tls if parts.scheme == "https" else None)


def _request(endpoint: Endpoint, request: bytes, read_timeout: float | None) -> _Response:
    sock = _connect(endpoint)
    try:
        sock.sendall(request)
        response = _Response(sock, endpoint)
        sock.settimeout(read_timeout)
        return response
    except OSError:
        sock.close()
        raise


def _connect(endpoint: Endpoint) -> socket.socket:
    if endpoint.unix_socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_TIMEOUT)
        try:
            sock.connect(endpoint.unix_socket)
        except OSError:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=_TIMEOUT)
    if endpoint.tls is None:
        return sock
    try:
        return endpoint.tls.wrap_socket(sock, server_hostname=endpoint.host)
    except OSError:
        sock.close()
        raise


def _describe(endpoint: Endpoint, exc: Exception) -> str:
    if isinstance(exc, _Disconnected):
        return "Server disconnected"
    if isinstance(exc, ConnectionRefusedError):
        # asyncio's words for a refused connect, which aiohttp's message carries
        address = endpoint.unix_socket or (endpoint.host, endpoint.port)
        reason = f"Connect call failed {address}"
    else:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    if endpoint.unix_socket:
        return f"Cannot connect to unix socket {endpoint.unix_socket} ssl:default [{reason}]"
    return f"Cannot connect to host {endpoint.host}:{endpoint.port} ssl:default [{reason}]"

