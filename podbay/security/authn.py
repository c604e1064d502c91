"""Who a request comes from, as kube-apiserver's authenticators decide it.

A TCP peer is someone when it presents a client certificate that TLS verified against
the cluster CA (CN is the user, O the groups: the x509 authenticator), or the bearer
token. Nothing else counts: loopback is not a trust boundary, since every local user
reaches it. The unix socket is guarded by its file mode (0600, in a 0700 directory)
and needs no credentials.
"""
from __future__ import annotations

import hmac
import json
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from podbay.security.pki import MASTERS
from podbay.security.tls import write_private

# kube-apiserver's exact answer to a request without valid credentials.
UNAUTHORIZED_BODY = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": "Unauthorized", "reason": "Unauthorized", "code": 401},
                               separators=(",", ":"))
UNIX_SOCKET_USER = "system:admin"
TOKEN_USER = "podbay-token"
# The transport extra an in-process request carries its component's Identity in (podbay.client.inprocess):
# no socket has it, so no peer can claim it.
IN_PROCESS_IDENTITY = "podbay.identity"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = field(default=())


def load_or_create_token(path: Path) -> str:
    """Reads the token at `path`, or writes a new one there with mode 0600."""
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    write_private(path, (token + "\n").encode())
    return token


def _from_certificate(peercert: Any) -> Identity | None:
    """`peercert` is ssl's getpeercert(): present only once the chain verified."""
    if not isinstance(peercert, dict) or not peercert.get("subject"):
        return None
    user, groups = "", []
    for rdn in peercert["subject"]:
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return Identity(user, tuple(groups)) if user else None


def _from_token(header: str | None, token: str | None) -> Identity | None:
    if not header or token is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    if hmac.compare_digest(value.strip().encode(), token.encode()):
        return Identity(TOKEN_USER, (MASTERS,))
    return None


def authenticate(request: web.Request, token: str | None) -> Identity | None:
    transport = request.transport
    if transport is None:
        return None
    local = transport.get_extra_info(IN_PROCESS_IDENTITY)
    if isinstance(local, Identity):
        return local
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        return Identity(UNIX_SOCKET_USER, (MASTERS,))
    return _from_certificate(transport.get_extra_info("peercert")) or _from_token(
        request.headers.get("Authorization"), token)


def unauthorized() -> web.Response:
    return web.Response(status=401, text=UNAUTHORIZED_BODY, content_type="application/json")


def middleware(token: str | None, public: frozenset[str] = frozenset()) -> Middleware:
    """Refuses every request without an identity but those for `public` paths."""
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Every identity is a cluster admin for now: authentication is the whole check.
        if request.path not in public and authenticate(request, token) is None:
            return unauthorized()
        return await handler(request)

    return check

