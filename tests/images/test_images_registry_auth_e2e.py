"""Pull authentication against a real docker-registry: basic auth (htpasswd) and
bearer tokens from a token server (RS256 JWTs the registry checks against our cert)."""
from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import time
import warnings
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp import web
from images_registry import Registry, RegistryFactory
from images_layouts import busybox_layer, write_layout

from podbay.runtime.images import ImageStore, pull
from podbay.runtime.images.registry import PullError

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt through libxcrypt, for the registry's htpasswd

pytestmark = pytest.mark.e2e

USER, PASSWORD = "puller", "s3cret"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def auth_file(path: Path, key: str, user: str = USER, password: str = PASSWORD) -> Path:
    path.write_text(json.dumps({"auths": {key: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))
    return path


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    write_layout(tmp_path / "one", busybox_layer(tmp_path), "one")
    return tmp_path / "one"


async def test_basic_auth_from_an_auth_file(store: ImageStore, start_registry: RegistryFactory,
                                            layout: Path, tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    # Cost 4 keeps the registry's per-request bcrypt check cheap.
    htpasswd.write_text(f"{USER}:{crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n")
    registry = start_registry(f"auth:\n  htpasswd:\n    realm: podbay-test\n    path: {htpasswd}\n")
    registry.push(f"oci:{layout}:one", "private/busybox:1", creds=f"{USER}:{PASSWORD}")
    ref = f"{registry.host}/private/busybox:1"

    with pytest.raises(PullError, match="wants a user name and password"):
        await pull(store, ref)
    with pytest.raises(PullError, match="authentication failed"):
        await pull(store, ref, auth_file=auth_file(tmp_path / "bad.json", registry.host, password="wrong"))
    image = await pull(store, ref, auth_file=auth_file(tmp_path / "auth.json", f"http://{registry.host}"))
    assert image.repo_tags == [ref] and image.config.cmd == ["sh"]


class TokenServer:
    """Issues registry tokens to USER/PASSWORD and anonymous pulls of `public/`."""

    def __init__(self, tmp: Path) -> None:
        self.key, self.cert = tmp / "key.pem", tmp / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "1", "-subj", "/CN=podbay-test-token"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[tuple[str | None, str]] = []

    async def sign(self, data: bytes) -> bytes:
        proc = await asyncio.create_subprocess_exec("openssl", "dgst", "-sha256", "-sign", str(self.key),
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate(data)
        return out

    async def token(self, request: web.Request) -> web.Response:
        scope = request.query.get("scope", "")
        user = None
        if "Authorization" in request.headers:
            user, _, password = base64.b64decode(request.headers["Authorization"].split()[1]).decode().partition(":")
            if (user, password) != (USER, PASSWORD):
                return web.Response(status=401)
        self.requests.append((user, scope))
        _, repo, actions = scope.split(":") if scope.count(":") == 2 else ("", "", "")
        allowed = user is not None or repo.startswith("public/")
        access = [{"type": "repository", "name": repo, "actions": actions.split(",")}] if allowed else []
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": "podbay-test-issuer", "sub": user or "", "aud": "podbay-test-registry", "exp": now + 600,
                  "nbf": now - 60, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        token = f"{signing_input}.{b64url(await self.sign(signing_input.encode()))}"
        return web.json_response({"token": token})


@pytest.fixture
async def token_registry(start_registry: RegistryFactory, tmp_path: Path) -> AsyncIterator[tuple[Registry, TokenServer]]:
    server = TokenServer(tmp_path)
    app = web.Application()
    app.router.add_get("/token", server.token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    registry = start_registry(
        f"auth:\n  token:\n    realm: http://127.0.0.1:{port}/token\n    service: podbay-test-registry\n"
        f"    issuer: podbay-test-issuer\n    rootcertbundle: {server.cert}\n")
    try:
        yield registry, server
    finally:
        await runner.cleanup()


async def test_bearer_tokens_anonymous_and_with_credentials(store: ImageStore, layout: Path, tmp_path: Path,
                                                            token_registry: tuple[Registry, TokenServer]) -> None:
    registry, server = token_registry
    for name in ("public/busybox:1", "private/busybox:1"):
        await asyncio.to_thread(registry.push, f"oci:{layout}:one", name, creds=f"{USER}:{PASSWORD}")
    server.requests.clear()

    public = await pull(store, f"{registry.host}/public/busybox:1")
    assert public.config.cmd == ["sh"]
    assert server.requests == [(None, "repository:public/busybox:pull")]  # one token serves every request

    with pytest.raises(PullError, match="pull access denied .* pass an auth file"):
        await pull(store, f"{registry.host}/private/busybox:1")
    private = await pull(store, f"{registry.host}/private/busybox:1",
                               auth_file=auth_file(tmp_path / "auth.json", registry.host))
    assert private.id == public.id and f"{registry.host}/private/busybox:1" in private.repo_tags
    assert (USER, "repository:private/busybox:pull") in server.requests
