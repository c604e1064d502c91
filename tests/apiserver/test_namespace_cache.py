"""The namespace cache's staleness rules, with a second writer on the same SQLite file (as another
server would be) whose writes this store's watch only sees at its next poll: the cache is trusted
only to say a namespace is active; what it lacks, shows terminating, or this server is deleting is
read live."""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from podbay.api.errors import APIError, Forbidden, NotFound
from podbay.apiserver.nslifecycle import NamespaceLifecycle
from podbay.store.sqlite import SQLiteStore
from tests.polling import wait_until


def _namespace(name: str, deleting: bool = False) -> dict[str, object]:
    meta: dict[str, object] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta, "status": {"phase": "Active"}}


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteStore]]:
    # This server's store polls for other writers' commits only every minute: its cache stays stale.
    mine = SQLiteStore(tmp_path / "store.db", poll_interval=60)
    other = SQLiteStore(tmp_path / "store.db")
    try:
        yield mine, other
    finally:
        await other.close()
        await mine.close()


async def _synced(store: SQLiteStore, name: str) -> NamespaceLifecycle:
    """A started cache that has seen namespace `name` active."""
    lifecycle = NamespaceLifecycle(store)
    lifecycle.start()
    await wait_until(lambda: lifecycle._synced and lifecycle._cache.get(name) is False, "the cache synced")
    return lifecycle


async def _refusal(lifecycle: NamespaceLifecycle, namespace: str) -> APIError | None:
    try:
        await lifecycle.admit_create(namespace, "pods", "p")
    except APIError as exc:
        return exc
    return None


async def test_a_namespace_the_cache_lacks_is_read_live(stores: tuple[SQLiteStore, SQLiteStore]) -> None:
    mine, other = stores
    await mine.create("namespaces", "", _namespace("default"))
    lifecycle = await _synced(mine, "default")
    try:
        assert isinstance(await _refusal(lifecycle, "new"), NotFound)
        await other.create("namespaces", "", _namespace("new"))
        assert await _refusal(lifecycle, "new") is None
        await other.create("namespaces", "", _namespace("dying", deleting=True))
        refused = await _refusal(lifecycle, "dying")
        assert isinstance(refused, Forbidden) and str(refused) == (
            'pods "p" is forbidden: unable to create new content in namespace dying because it is being terminated')
    finally:
        await lifecycle.stop()


async def test_a_namespace_this_server_deletes_is_read_live(stores: tuple[SQLiteStore, SQLiteStore]) -> None:
    mine, other = stores
    await mine.create("namespaces", "", _namespace("going"))
    lifecycle = await _synced(mine, "going")
    try:
        await other.update("namespaces", "", "going", _namespace("going", deleting=True))
        # Kubernetes' plugin has the same window for a deletion made through another server.
        assert await _refusal(lifecycle, "going") is None
        lifecycle.deleting("going")
        assert isinstance(await _refusal(lifecycle, "going"), Forbidden)
    finally:
        await lifecycle.stop()


async def test_a_namespace_the_cache_shows_terminating_is_read_live(stores: tuple[SQLiteStore, SQLiteStore]) -> None:
    mine, other = stores
    await mine.create("namespaces", "", _namespace("back"))
    lifecycle = await _synced(mine, "back")
    try:
        await mine.update("namespaces", "", "back", _namespace("back", deleting=True))
        await wait_until(lambda: lifecycle._cache.get("back") is True, "the watch delivered the update")
        await other.delete("namespaces", "", "back")
        await other.create("namespaces", "", _namespace("back"))
        assert await _refusal(lifecycle, "back") is None
    finally:
        await lifecycle.stop()
