"""`podbay get -w` across API server restarts, as kubectl's reflector-backed watch: resumed from the
last resourceVersion it printed (nothing missed or printed twice), and when the server's history
no longer reaches back that far, a relist whose differences are printed, the last row of an object
deleted meanwhile included. A real server on a real store, the command line as a user runs it."""
from __future__ import annotations

import asyncio
from pathlib import Path

from podbay.api import ConfigMap, ObjectMeta
from podbay.apiserver.embedded import serve_embedded
from podbay.client import Client
from podbay.store.sqlite import SQLiteStore
from tests.cli.test_watch_follow_e2e import Streamed

COLUMNS = "custom-columns=NAME:.metadata.name,V:.data.v"


async def test_get_watch_resumes_and_relists_across_restarts(tmp_path: Path) -> None:
    def store() -> SQLiteStore:
        return SQLiteStore(tmp_path / "store.db", history_limit=3)

    async def write(server_url: str, changes: int, deleted: str | None, changed: str | None) -> None:
        writer = Client.connect(server_url)
        try:
            if deleted:
                await writer.delete(ConfigMap, deleted, "default")
            if changed:
                cm = await writer.get(ConfigMap, changed, "default")
                cm.data = {"v": str(int((cm.data or {}).get("v", "0")) + 1)}
                await writer.update(cm)
            for n in range(changes):
                await writer.create(ConfigMap(metadata=ObjectMeta(name=f"new-{changes}-{n}", namespace="default"),
                                              data={"v": "1"}))
        finally:
            await writer.close()

    def rows(lines: list[str]) -> list[tuple[str, str]]:
        return [(name, v) for name, v in (line.split() for line in lines)]

    socket = tmp_path / "api.sock"
    flags = ["--server", f"unix://{socket}", "--state-root", str(tmp_path / "state"), "--run-root", str(tmp_path / "run")]
    async with serve_embedded(tmp_path / "api", store=store(), unix_socket=socket) as server:
        client = Client.connect(server.url)
        for name in ("gone", "kept", "changed"):
            await client.create(ConfigMap(metadata=ObjectMeta(name=name, namespace="default"), data={"v": "1"}))
        await client.close()
        watch = Streamed(flags, "get", "configmaps", "-w", "-o", COLUMNS)
        try:
            listed = await asyncio.to_thread(watch.until, lambda line: line.startswith("kept"))
            assert rows(listed[1:]) == [("changed", "1"), ("gone", "1"), ("kept", "1")]
        except BaseException:
            watch.stop()
            raise
    try:
        # A restart with little written meanwhile: the watch resumes where it stopped.
        async with serve_embedded(tmp_path / "api", store=store(), unix_socket=socket) as server:
            await write(server.url, 1, None, "changed")
            got = await asyncio.to_thread(watch.until, lambda line: line.startswith("new-1-0"))
            assert rows(got) == [("changed", "2"), ("new-1-0", "1")]
        # Meanwhile more writes than the history keeps (it is trimmed every 64 writes): a relist.
        async with serve_embedded(tmp_path / "api", store=store(), unix_socket=tmp_path / "other.sock") as other:
            await write(other.url, 70, "gone", "changed")
        async with serve_embedded(tmp_path / "api", store=store(), unix_socket=socket):
            # The deleted object's last row first, then the new and changed ones in `get`'s order.
            got = await asyncio.to_thread(watch.until, lambda line: line.startswith("new-70-9 "))
            assert rows(got) == [("gone", "1"), ("changed", "3"), *sorted((f"new-70-{n}", "1") for n in range(70))]
    finally:
        watch.stop()
