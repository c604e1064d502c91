"""The store contract runs against every backend: `backend` is parametrised over
SQLite (a file) and etcd (a real etcd process of the test's own)."""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Protocol

import pytest

from podbay.store.base import Store
from podbay.store.etcd import EtcdStore
from podbay.store.sqlite import SQLiteStore
from tests.etcd_server import EtcdServer

HISTORY = 200  # SQLite's watch history in these tests; etcd keeps all until compacted


async def open_spec(spec: str) -> Store:
    """A store on the backend named by `spec` ("sqlite:<path>" or "etcd:<url>"), so a
    writer process can open the same backend as the test."""
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        return SQLiteStore(where, history_limit=HISTORY, poll_interval=0.05, bookmark_interval=0.5)
    return await EtcdStore.connect([where], compaction_interval=0)


class Backend(Protocol):
    spec: str

    def restart(self) -> None:
        """Stops and starts whatever serves the data; stores opened before are closed first."""

    async def forget_history(self, store: Store) -> None:
        """History up to the current revision is no longer kept for watches."""


class SQLiteBackend:
    def __init__(self, path: Path) -> None:
        self.spec = f"sqlite:{path}"

    def restart(self) -> None:
        """Nothing runs: reopening the file is the restart."""

    async def forget_history(self, store: Store) -> None:
        # The history window moves past a revision once that many writes follow it.
        for i in range(HISTORY + 100):
            await store.create("nodes", "", {"metadata": {"name": f"filler-{i}"}})


class EtcdBackend:
    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self.spec = f"etcd:{server.url}"

    def restart(self) -> None:
        self.server.stop()
        self.server.start()

    async def forget_history(self, store: Store) -> None:
        assert isinstance(store, EtcdStore)
        await store.compact(await store.current_revision())


@pytest.fixture(params=["sqlite", "etcd"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SQLiteBackend(tmp_path / "store.db")
    return EtcdBackend(request.getfixturevalue("etcd_server"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = await open_spec(backend.spec)
    try:
        yield s
    finally:
        await s.close()
