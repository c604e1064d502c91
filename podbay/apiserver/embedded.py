"""A store and an API server in this process: the embedded default, and the
fixture tests use to get a real server.

    async with serve_embedded(tmp_path) as server:
        client = Client.connect(server.url)          # unix socket
        client = Client.from_kubeconfig(server.kubeconfig)  # https://127.0.0.1:<port>

The cluster PKI, the bearer token, the join token and the admin kubeconfig are made
under the root (or reused from it) as `podbay up` makes them under its state root.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from podbay.apiserver.app import serve
from podbay.apiserver.eventttl import EVENT_TTL, expire_events
from podbay.apiserver.ipallocator import ServiceRanges
from podbay.security.authn import load_or_create_token
from podbay.security.kubeconfig import render as render_kubeconfig
from podbay.security.pki import ClusterPKI, ensure_cluster_pki, host_names, join_token
from podbay.security.tls import write_private
from podbay.store.base import Store
from podbay.store.sqlite import SQLiteStore


@dataclass
class EmbeddedServer:
    store: Store
    runner: web.AppRunner
    socket_path: Path | None
    host: str | None
    port: int | None
    token: str  # the bearer token's secret
    pki: ClusterPKI
    kubeconfig: Path | None  # the admin's, when there is a TCP listener
    join_token: str  # K10<CA hash>::<token>: what a node joining from elsewhere presents

    @property
    def url(self) -> str:
        """The unix socket URL when there is one, else the TCP one."""
        if self.socket_path is not None:
            return f"unix://{self.socket_path}"
        return self.https_url

    @property
    def https_url(self) -> str:
        if self.host is None or self.port is None:
            raise ValueError("this server listens on no TCP port")
        return https_url(self.host, self.port)


def https_url(host: str, port: int) -> str:
    """The URL clients use for a listener on host:port (loopback for an unspecified address)."""
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
        if address.is_unspecified:
            host = "127.0.0.1" if address.version == 4 else "::1"
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@contextlib.asynccontextmanager
async def serve_embedded(
    root: Path,
    *,
    unix_socket: Path | None | bool = True,
    host: str | None = "127.0.0.1",
    port: int = 0,
    store: Store | None = None,
    event_ttl: float = EVENT_TTL,
    kubeconfig: Path | None = None,
    node_name: str | None = None,
    service_ranges: ServiceRanges | None = None,
    kubernetes_endpoint: tuple[str, int] | None = None,
) -> AsyncIterator[EmbeddedServer]:
    """Store at `root/store.db` (or `store`), socket at `root/api.sock`
    (`unix_socket=True`), HTTPS on host:port (port 0 picks a free one) with the PKI in
    `root/pki`, the token in `root/api-token`, the join token in `root/node-token` and the
    admin kubeconfig at `kubeconfig` (default `root/kubeconfig`, 0600); Events expire
    `event_ttl` seconds after their last write. Everything is closed on exit."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pki = await asyncio.to_thread(ensure_cluster_pki, root / "pki",
                                  host_names(node_name or socket.gethostname(), host))
    token = load_or_create_token(root / "api-token")
    join = join_token(pki.ca_pem(), token)
    write_private(root / "node-token", (join + "\n").encode())
    own_store = store is None
    if store is None:
        store = SQLiteStore(root / "store.db")
    socket_path = root / "api.sock" if unix_socket is True else (unix_socket or None)
    try:
        runner = await serve(
            store,
            unix_socket=socket_path,
            host=host,
            port=port,
            token=token,
            pki=pki,
            service_ranges=service_ranges,
            kubernetes_endpoint=kubernetes_endpoint,
        )
        expiry = asyncio.create_task(expire_events(store, event_ttl))
        try:
            bound_port = next((a[1] for a in runner.addresses if isinstance(a, tuple)), None)
            kubeconfig_path = None
            if host is not None and bound_port is not None:
                kubeconfig_path = kubeconfig or root / "kubeconfig"
                write_private(kubeconfig_path, render_kubeconfig(
                    https_url(host, bound_port), pki.ca_pem(), pki.admin.cert.read_bytes(),
                    pki.admin.key.read_bytes()).encode())
            yield EmbeddedServer(store, runner, socket_path, host, bound_port, token, pki, kubeconfig_path, join)
        finally:
            expiry.cancel()
            await asyncio.gather(expiry, return_exceptions=True)
            await runner.cleanup()
    finally:
        if own_store:
            await store.close()
