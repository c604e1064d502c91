"""Fixtures: a real podbay API server (aiohttp, on the SQLite and on the etcd store) in this process.

    async def test_x(api_server):
        client = Client.connect(api_server.url)        # unix socket
        ...          # api_server.kubeconfig: the admin kubeconfig for https://127.0.0.1:<port>
"""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.client import Client
from podbay.security.pki import client_context
from podbay.store.etcd import EtcdStore
from tests.etcd_server import EtcdServer


def admin_session(server: EmbeddedServer) -> aiohttp.ClientSession:
    """HTTPS with the admin's client certificate, as the kubeconfig podbay writes carries it."""
    pki = server.pki
    tls = client_context(pki.ca_pem(), pki.admin.cert.read_bytes(), pki.admin.key.read_bytes())
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls))


@pytest.fixture(params=["sqlite", "etcd"])
async def api_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    """The server on each store: its SQLite file, and a real etcd of the test's own."""
    if request.param == "sqlite":
        async with serve_embedded(tmp_path / "api") as server:
            yield server
        return
    etcd: EtcdServer = request.getfixturevalue("etcd_server")
    store = await EtcdStore.connect([etcd.url])
    try:
        async with serve_embedded(tmp_path / "api", store=store) as server:
            yield server
    finally:
        await store.close()


@pytest.fixture
async def api_client(api_server: EmbeddedServer) -> AsyncIterator[Client]:
    client = Client.connect(api_server.url)
    try:
        yield client
    finally:
        await client.close()
