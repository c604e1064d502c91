"""A store and an API server in this process: the embedded default, and the
fixture tests use to get a real server.

    async with serve_embedded(tmp_path) as server:
        client = Client.connect(server.url)          # unix socket
        client = Client.connect(server.http_url)     # 127.0.0.1:<port>
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from podbay.apiserver.app import serve
from podbay.apiserver.eventttl import EVENT_TTL, expire_events
from podbay.store.base import Store
from podbay.store.sqlite import SQLiteStore


@dataclass
class EmbeddedServer:
    store: Store
    runner: web.AppRunner
    socket_path: Path | None
    host: str | None
    port: int | None
    token: str | None

    @property
    def url(self) -> str:
        """The unix socket URL when there is one, else the TCP one."""
        if self.socket_path is not None:
            return f"unix://{self.socket_path}"
        return self.http_url

    @property
    def http_url(self) -> str:
        if self.host is None or self.port is None:
            raise ValueError("this server listens on no TCP port")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def serve_embedded(
    root: Path,
    *,
    unix_socket: Path | None | bool = True,
    host: str | None = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    db_path: Path | None = None,
    store: Store | None = None,
    event_ttl: float = EVENT_TTL,
) -> AsyncIterator[EmbeddedServer]:
    """Store at `root/store.db` (or `db_path`), socket at `root/api.sock`
    (`unix_socket=True`), TCP on host:port (port 0 picks a free one); Events expire
    `event_ttl` seconds after their last write. Everything is closed on exit."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    own_store = store is None
    if store is None:
        store = SQLiteStore(db_path or root / "store.db")
    socket_path = root / "api.sock" if unix_socket is True else (unix_socket or None)
    try:
        runner = await serve(
            store,
            unix_socket=socket_path,
            host=host,
            port=port,
            token=token,
            token_file=root / "api-token",
        )
        expiry = asyncio.create_task(expire_events(store, event_ttl))
        try:
            bound_port = next((a[1] for a in runner.addresses if isinstance(a, tuple)), None)
            yield EmbeddedServer(store, runner, socket_path, host, bound_port, token)
        finally:
            expiry.cancel()
            await asyncio.gather(expiry, return_exceptions=True)
            await runner.cleanup()
    finally:
        if own_store:
            await store.close()
