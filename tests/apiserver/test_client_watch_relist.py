"""The client's watch across a server restart whose history no longer reaches back to where it
stopped: it lists again and delivers the difference from what it had delivered, as an informer's
relist does, including the last state of an object deleted meanwhile."""
from __future__ import annotations

import asyncio
from pathlib import Path

from podbay.api import ConfigMap, ObjectMeta
from podbay.apiserver.embedded import serve_embedded
from podbay.client import Client
from podbay.store.sqlite import SQLiteStore


async def test_a_relist_delivers_what_changed_while_the_watch_was_away(tmp_path: Path) -> None:
    def store() -> SQLiteStore:
        return SQLiteStore(tmp_path / "store.db", history_limit=3)

    events: asyncio.Queue[tuple[str, str, dict[str, str]]] = asyncio.Queue()

    async def watch(client: Client, rv: str) -> None:
        async for kind, cm in client.watch(ConfigMap, "default", resource_version=rv):
            await events.put((kind, cm.metadata.name or "", dict(cm.data or {})))

    async def next_events(n: int) -> set[tuple[str, str, str]]:
        got = [await asyncio.wait_for(events.get(), 60) for _ in range(n)]
        return {(kind, name, data.get("v", "")) for kind, name, data in got}

    async with serve_embedded(tmp_path / "api", store=store()) as server:
        client = Client.connect(server.url)
        _, rv = await client.list(ConfigMap, "default")
        watching = asyncio.create_task(watch(client, rv))
        for name in ("gone", "kept", "changed"):
            await client.create(ConfigMap(metadata=ObjectMeta(name=name, namespace="default"), data={"v": "1"}))
        assert await next_events(3) == {("ADDED", "gone", "1"), ("ADDED", "kept", "1"), ("ADDED", "changed", "1")}
    try:
        # Meanwhile, more writes than the history keeps (it is trimmed every 64 writes).
        async with serve_embedded(tmp_path / "api", store=store(), unix_socket=tmp_path / "other.sock") as other:
            writer = Client.connect(other.url)
            await writer.delete(ConfigMap, "gone", "default")
            changed = await writer.get(ConfigMap, "changed", "default")
            changed.data = {"v": "2"}
            await writer.update(changed)
            for n in range(70):
                await writer.create(ConfigMap(metadata=ObjectMeta(name=f"new-{n}", namespace="default")))
            await writer.close()
        async with serve_embedded(tmp_path / "api", store=store()):
            got = await next_events(72)
            assert ("DELETED", "gone", "1") in got and ("MODIFIED", "changed", "2") in got
            assert {name for _, name, _ in got} == {"gone", "changed", *(f"new-{n}" for n in range(70))}
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await client.close()
