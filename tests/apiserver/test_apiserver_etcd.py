"""Two API servers on one etcd, as kube-apiservers share one: what one writes, a watch on the
other sees, in order and with the same resourceVersions; their races end in one Conflict."""
from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import AsyncIterator


from podbay.api import Pod
from podbay.api.serialize import from_dict
from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.client import Client
from podbay.store.etcd import EtcdStore
from tests.apiserver.conftest import admin_session
from tests.etcd_server import EtcdServer


@contextlib.asynccontextmanager
async def server_on_etcd(root: Path, etcd: EtcdServer) -> AsyncIterator[EmbeddedServer]:
    store = await EtcdStore.connect([etcd.url])
    try:
        async with serve_embedded(root, store=store) as server:
            yield server
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def api_on_etcd(root: Path, etcd: EtcdServer) -> AsyncIterator[Client]:
    async with server_on_etcd(root, etcd) as server, Client.connect(server.url) as client:
        yield client


def pod(name: str) -> Pod:
    return from_dict(Pod, {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}})


async def test_a_write_through_one_server_is_watched_on_the_other(tmp_path: Path, etcd_server: EtcdServer) -> None:
    async with api_on_etcd(tmp_path / "a", etcd_server) as a, api_on_etcd(tmp_path / "b", etcd_server) as b:
        _, rv = await b.list(Pod, "default")
        seen: list[tuple[str, str, str]] = []

        async def watch(n: int) -> None:
            async for kind, p in b.watch(Pod, "default", resource_version=rv):
                seen.append((kind, p.metadata.name, p.metadata.resource_version))
                if len(seen) == n:
                    return

        watching = asyncio.create_task(watch(4))
        x0 = await a.create(pod("x"))
        y = await a.create(pod("y"))
        x0.metadata.labels = {"app": "web"}
        x = await a.update(x0)
        gone = await a.delete(Pod, "y", "default")
        assert gone is not None
        await asyncio.wait_for(watching, 30)
        assert seen == [
            ("ADDED", "x", x0.metadata.resource_version),
            ("ADDED", "y", y.metadata.resource_version),
            ("MODIFIED", "x", x.metadata.resource_version),
            ("DELETED", "y", gone.metadata.resource_version),
        ]
        rvs = [int(r) for _, _, r in seen]
        assert rvs == sorted(rvs) and len(set(rvs)) == 4
        # Both servers read the same object at the same resourceVersion.
        assert (await b.get(Pod, "x", "default")).metadata.resource_version == x.metadata.resource_version


async def test_servers_racing_an_update_one_wins(tmp_path: Path, etcd_server: EtcdServer) -> None:
    async with api_on_etcd(tmp_path / "a", etcd_server) as a, api_on_etcd(tmp_path / "b", etcd_server) as b:
        await a.create(pod("x"))
        via_a, via_b = await a.get(Pod, "x", "default"), await b.get(Pod, "x", "default")
        via_a.metadata.labels, via_b.metadata.labels = {"by": "a"}, {"by": "b"}
        results = await asyncio.gather(a.update(via_a), b.update(via_b), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "Pod"]
        winner = next(r for r in results if isinstance(r, Pod))
        assert (await b.get(Pod, "x", "default")).metadata.labels == winner.metadata.labels


async def test_a_watch_asking_for_bookmarks_gets_them(tmp_path: Path, etcd_server: EtcdServer) -> None:
    async with server_on_etcd(tmp_path / "a", etcd_server) as server, Client.connect(server.url) as client:
        _, rv = await client.list(Pod, "default")
        await client.create(pod("x"))
        params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
        async with admin_session(server) as http, \
                http.get(f"{server.https_url}/api/v1/namespaces/default/pods", params=params) as resp:
            first = json.loads(await asyncio.wait_for(resp.content.readline(), 10))
            bookmark = json.loads(await asyncio.wait_for(resp.content.readline(), 10))
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "x")
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["kind"] == "Pod" and bookmark["object"]["apiVersion"] == "v1"
        assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(first["object"]["metadata"]["resourceVersion"])


async def test_a_client_watch_outlives_an_etcd_restart(tmp_path: Path, etcd_server: EtcdServer) -> None:
    async with api_on_etcd(tmp_path / "a", etcd_server) as client:
        _, rv = await client.list(Pod, "default")
        seen: list[str] = []
        first_seen = asyncio.Event()

        async def watch() -> None:
            async for _, p in client.watch(Pod, "default", resource_version=rv):
                seen.append(p.metadata.name)
                first_seen.set()
                if len(seen) == 2:
                    return

        watching = asyncio.create_task(watch())
        await client.create(pod("before"))
        await asyncio.wait_for(first_seen.wait(), 10)
        await asyncio.to_thread(etcd_server.stop)
        await asyncio.to_thread(etcd_server.start)
        await client.create(pod("after"))
        await asyncio.wait_for(watching, 30)
        assert seen == ["before", "after"]
