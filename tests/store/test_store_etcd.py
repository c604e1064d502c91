"""What only the etcd store does: kube-apiserver's key layout, its periodic compaction, and
failing over between endpoints."""
from __future__ import annotations

import asyncio
import json

import pytest

from podbay.api.errors import Gone, ServiceUnavailable
from podbay.store.etcd import EtcdStore
from tests.etcd_server import EtcdServer, free_port
from tests.store.test_store_contract import pod


async def test_keys_and_values_are_kube_apiservers(etcd_server: EtcdServer) -> None:
    store = await EtcdStore.connect([etcd_server.url], compaction_interval=0)
    try:
        created = await store.create("pods", "default", pod("a"))
        await store.create("nodes", "", {"metadata": {"name": "n1"}})
        await store.create("namespaces", "", {"metadata": {"name": "default"}})
    finally:
        await store.close()
    keys = etcd_server.etcdctl("get", "--prefix", "/registry", "--keys-only").split()
    assert keys == ["/registry/minions/n1", "/registry/namespaces/default", "/registry/pods/default/a"]
    value = json.loads(etcd_server.etcdctl("get", "/registry/pods/default/a", "--print-value-only"))
    assert value["metadata"] == {k: v for k, v in created["metadata"].items() if k != "resourceVersion"}
    described = json.loads(etcd_server.etcdctl("get", "/registry/pods/default/a", "-w", "json"))
    assert str(described["kvs"][0]["mod_revision"]) == created["metadata"]["resourceVersion"]


async def test_another_prefix_keeps_apart(etcd_server: EtcdServer) -> None:
    one = await EtcdStore.connect([etcd_server.url], "/one", compaction_interval=0)
    two = await EtcdStore.connect([etcd_server.url], "/two/", compaction_interval=0)
    try:
        await one.create("pods", "default", pod("a"))
        assert (await two.list("pods"))[0] == []
        assert etcd_server.etcdctl("get", "--prefix", "/one/pods", "--keys-only").split() == ["/one/pods/default/a"]
    finally:
        await one.close()
        await two.close()


async def test_the_compactor_makes_old_resource_versions_gone(etcd_server: EtcdServer) -> None:
    store = await EtcdStore.connect([etcd_server.url], compaction_interval=0.2)
    try:
        first = await store.create("pods", "default", pod("a"))
        await store.create("pods", "default", pod("b"))

        async def gone() -> bool:
            watch = store.watch("pods", since_rv=first["metadata"]["resourceVersion"])
            try:
                await asyncio.wait_for(watch.__anext__(), 5)
            except Gone:
                return True
            finally:
                await watch.aclose()  # type: ignore[attr-defined]
            return False

        deadline = asyncio.get_running_loop().time() + 20
        while not await gone():
            assert asyncio.get_running_loop().time() < deadline, "never compacted"
            await asyncio.sleep(0.1)
        # What is stored stays, only history goes.
        assert [i["metadata"]["name"] for i in (await store.list("pods"))[0]] == ["a", "b"]
    finally:
        await store.close()


async def test_a_dead_endpoint_is_skipped(etcd_server: EtcdServer) -> None:
    store = await EtcdStore.connect([f"http://127.0.0.1:{free_port()}", etcd_server.url], compaction_interval=0)
    try:
        await store.create("pods", "default", pod("a"))
        assert (await store.get("pods", "default", "a"))["metadata"]["name"] == "a"
    finally:
        await store.close()


async def test_no_reachable_endpoint_is_refused_at_start() -> None:
    with pytest.raises(ServiceUnavailable, match="etcd is unreachable"):
        await EtcdStore.connect([f"http://127.0.0.1:{free_port()}"], compaction_interval=0)


async def test_many_open_watches_leave_room_for_writes(etcd_server: EtcdServer) -> None:
    store = await EtcdStore.connect([etcd_server.url], compaction_interval=0)
    since = await store.current_revision()
    watches = [store.watch("pods", namespace=f"ns-{i}", since_rv=since) for i in range(120)]
    # Each watch's stream is opened once it is first awaited.
    waiting = [asyncio.ensure_future(w.__anext__()) for w in watches]
    try:
        created = await asyncio.wait_for(store.create("pods", "ns-7", pod("a", "ns-7")), 10)
        done = await asyncio.wait_for(asyncio.shield(waiting[7]), 10)
        assert done.object["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    finally:
        for w in waiting:
            w.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        for w in watches:
            await w.aclose()  # type: ignore[attr-defined]
        await store.close()
