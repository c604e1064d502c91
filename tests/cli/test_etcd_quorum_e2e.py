"""A `podbay apiserver` on a real three-member etcd cluster: with one member SIGKILLed creates,
updates and watches go on; with two, writes fail with a clear 5xx Status naming etcd, and resume
once a member is back, nothing written before lost and the watch still delivering."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from podbay.api import ConfigMap
from podbay.api.errors import AlreadyExists, APIError
from podbay.api.serialize import from_dict
from podbay.client import Client
from tests.cli.test_apiserver_failover_e2e import ApiServer, Start, eventually, start, start_apiserver
from tests.etcd_server import EtcdCluster

pytestmark = pytest.mark.e2e

__all__ = ["start"]  # the fixture, used by name below


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path / "etcd", size=3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def apiserver(start: Start, tmp_path: Path, etcd_cluster: EtcdCluster) -> ApiServer:
    return start_apiserver(start, tmp_path, "apiserver", etcd_cluster)


@pytest.fixture
async def client(apiserver: ApiServer) -> AsyncIterator[Client]:
    c = Client.from_kubeconfig(apiserver.kubeconfig, server=[apiserver.url])
    try:
        yield c
    finally:
        await c.close()


def config_map(name: str, value: str) -> ConfigMap:
    return from_dict(ConfigMap, {"metadata": {"name": name}, "data": {"v": value}})


async def test_one_member_lost_goes_on_two_lost_fails_clearly_and_resumes(
        etcd_cluster: EtcdCluster, apiserver: ApiServer, client: Client) -> None:
    _, since = await client.list(ConfigMap, "default")
    seen: list[tuple[str, str, str]] = []
    watcher = Client.from_kubeconfig(apiserver.kubeconfig, server=[apiserver.url])

    async def follow() -> None:
        async for type_, cm in watcher.watch(ConfigMap, "default", resource_version=since):
            seen.append((type_, cm.metadata.name or "", (cm.data or {}).get("v", "")))
    watching = asyncio.create_task(follow())
    try:
        await client.create(config_map("before", "1"))

        # One of three gone (the API server's first endpoint, so it must move on): a majority is left.
        await asyncio.to_thread(etcd_cluster.kill, 0)
        made = await client.create(config_map("one-down", "1"))
        made.data = {"v": "2"}
        await client.update(made)
        assert (await client.get(ConfigMap, "one-down", "default")).data == {"v": "2"}

        async def watched(*events: tuple[str, str, str]) -> bool:
            return all(e in seen for e in events)
        await eventually(lambda: watched(("ADDED", "before", "1"), ("ADDED", "one-down", "1"),
                                         ("MODIFIED", "one-down", "2")), "the watch goes on with one member down")

        # Two of three gone: no quorum. The write fails with a Status that says why, not a hang.
        await asyncio.to_thread(etcd_cluster.kill, 1)
        with pytest.raises(APIError) as refused:
            await client.create(config_map("no-quorum", "1"))
        assert refused.value.code in (503, 504), (refused.value.code, refused.value)
        assert refused.value.reason in ("ServiceUnavailable", "Timeout")
        assert "etcd" in str(refused.value) and "majority" in str(refused.value)

        # One member back: a quorum again, and writes go through (a timed-out create may have been
        # applied after all, which AlreadyExists says).
        await asyncio.to_thread(etcd_cluster.start, 1)

        async def created() -> bool:
            try:
                await client.create(config_map("no-quorum", "1"))
            except AlreadyExists:
                return True
            except APIError as exc:
                assert exc.code in (503, 504), exc
                return False
            return True
        await eventually(created, "a create once a majority is back", timeout=120)
        await client.create(config_map("after", "1"))

        items, _ = await client.list(ConfigMap, "default")
        assert sorted(cm.metadata.name or "" for cm in items) == ["after", "before", "no-quorum", "one-down"]
        assert next(cm for cm in items if cm.metadata.name == "one-down").data == {"v": "2"}
        # The watch paused while etcd could not serve it and delivered the later writes, once each.
        await eventually(lambda: watched(("ADDED", "no-quorum", "1"), ("ADDED", "after", "1")),
                         "the watch resumes", timeout=60)
        assert len(seen) == len(set(seen)) == 5, seen
        assert not watching.done()
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await watcher.close()
