"""Bearer tokens: no unauthenticated access from beyond this machine.

Requests over the unix socket (guarded by its file mode) and from loopback
peers need no token; every other TCP peer must present the token. A request
that presents a token must present the right one, wherever it comes from.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_or_create_token(path: Path) -> str:
    """Reads the token at `path`, or writes a new one there with mode 0600."""
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def authorized(peer: object, header: str | None, token: str | None) -> bool:
    """`peer` is the transport's peername: a (host, port, ...) tuple for TCP."""
    presented = None
    if header:
        scheme, _, value = header.partition(" ")
        presented = value.strip() if scheme.lower() == "bearer" else ""
    if presented is not None and token is not None:
        return hmac.compare_digest(presented.encode(), token.encode())
    if not isinstance(peer, tuple) or not peer:
        return True  # unix socket
    return is_loopback_host(str(peer[0]))
