from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from podbay.apiserver.embedded import serve_embedded
from podbay.client import Client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    """A client of a real embedded API server (SQLite in tmp_path, the unix socket only)."""
    async with serve_embedded(tmp_path / "api", host=None) as server:
        c = Client.connect(server.url)
        try:
            yield c
        finally:
            await c.close()
