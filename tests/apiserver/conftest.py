"""Fixtures: a real podbay API server (SQLite store + aiohttp) in this process.

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


def admin_session(server: EmbeddedServer) -> aiohttp.ClientSession:
    """HTTPS with the admin's client certificate, as the kubeconfig podbay writes carries it."""
    pki = server.pki
    tls = client_context(pki.ca_pem(), pki.admin.cert.read_bytes(), pki.admin.key.read_bytes())
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls))


@pytest.fixture
async def api_server(tmp_path: Path) -> AsyncIterator[EmbeddedServer]:
    async with serve_embedded(tmp_path / "api") as server:
        yield server


@pytest.fixture
async def api_client(api_server: EmbeddedServer) -> AsyncIterator[Client]:
    client = Client.connect(api_server.url)
    try:
        yield client
    finally:
        await client.close()
