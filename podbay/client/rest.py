"""A small synchronous client for one-shot reads (the command line's get, describe and logs):
the standard library's http.client over the unix socket or TLS, JSON in and out. It starts in a
few milliseconds where the async Client needs aiohttp and the models; errors are the same
podbay.api.errors exceptions, and several --server URLs are tried in turn as the Client does."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode, urlsplit

from podbay.client.errors import error_from_response

_TIMEOUT = 60.0  # seconds without an answer: the Client's sock_read
_MAX_ERROR_BYTES = 1 << 20
_CHUNK = 64 << 10


class Unreachable(Exception):
    """No server answered; the message says why, as aiohttp words a connection that failed."""


@dataclass(frozen=True)
class Endpoint:
    url: str  # as the user named it: unix:///path or https://host:port
    unix_socket: str | None
    host: str
    port: int
    tls: ssl.SSLContext | None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=_TIMEOUT)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class RESTClient:
    def __init__(self, endpoints: list[Endpoint], token: str | None = None) -> None:
        if not endpoints:
            raise ValueError("a client needs at least one server URL")
        self.endpoints = endpoints
        self.token = token

    @classmethod
    def connect(cls, server: str, token: str | None = None) -> "RESTClient":
        """`server`: unix:///path/api.sock, or http(s) URLs (comma-separated: tried in turn)."""
        if server.startswith("unix://") or server.startswith("/"):
            path = server.removeprefix("unix://")
            return cls([Endpoint(server, path, "localhost", 80, None)], token)
        urls = split_servers(server)
        if len(urls) > 1 and any(not u.startswith(("http://", "https://")) for u in urls):
            raise ValueError(f"{server}: only http(s) URLs can be listed together, not a unix socket")
        return cls([_endpoint(u, ssl.create_default_context() if u.startswith("https://") else None)
                    for u in urls], token)

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
        with self._open(path, params, accept) as resp:
            return json.loads(resp.read())

    def stream(self, path: str, params: dict[str, str] | None = None) -> Iterator[bytes]:
        """A GET's body as it arrives (a log)."""
        with self._open(path, params, "*/*") as resp:
            while chunk := resp.read1(_CHUNK):
                yield chunk

    def _open(self, path: str, params: dict[str, str] | None, accept: str) -> http.client.HTTPResponse:
        target = path + ("?" + urlencode(params) if params else "")
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        failure: Unreachable | None = None
        for i, endpoint in enumerate(self.endpoints):
            conn = (_UnixConnection(endpoint.unix_socket) if endpoint.unix_socket
                    else http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=_TIMEOUT,
                                                     context=endpoint.tls) if endpoint.tls
                    else http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=_TIMEOUT))
            try:
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                failure = Unreachable(_describe(endpoint, exc))
                if i + 1 < len(self.endpoints):
                    # The Client's words when it moves on (its logger's warning).
                    print(f"API server {endpoint.url} is not answering; going on with {self.endpoints[i + 1].url}",
                          file=sys.stderr)
                continue
            if resp.status >= 400:
                raw = resp.read(_MAX_ERROR_BYTES)
                conn.close()
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


def _describe(endpoint: Endpoint, exc: Exception) -> str:
    if isinstance(exc, http.client.RemoteDisconnected):
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

