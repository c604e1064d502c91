"""What only the etcd store does: kube-apiserver's key layout, its periodic compaction, and
failing over between endpoints."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from podbay.api.errors import AlreadyExists, Gone, ServiceUnavailable, Timeout
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


class LossyEtcd:
    """A loopback proxy in front of a real etcd that, for the next `lose` transactions, passes each
    on to etcd and then answers as etcd does when it cannot tell whether a write was committed
    (503, gRPC UNAVAILABLE, "etcdserver: request timed out"); for the next `refuse`, answers "no
    leader" without passing it on. Everything else goes through unchanged. `lost_answer` is what
    a lost transaction gets: etcd's own, or its gRPC gateway's when the gateway's call to etcd
    timed out (500, code 2 Unknown, Go's "context deadline exceeded")."""

    ETCD_TIMED_OUT = (503, {"error": "etcdserver: request timed out", "message": "etcdserver: request timed out",
                            "code": 14})
    GATEWAY_TIMED_OUT = (500, {"error": "context deadline exceeded", "message": "context deadline exceeded",
                               "code": 2})

    def __init__(self, etcd_url: str) -> None:
        self.etcd_url = etcd_url
        self.lose = self.refuse = 0
        self.lost_answer = self.ETCD_TIMED_OUT
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> "LossyEtcd":
        app = web.Application()
        app.router.add_route("POST", "/{path:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/v3/kv/txn" and self.refuse:
            self.refuse -= 1
            return web.json_response({"error": "etcdserver: no leader", "message": "etcdserver: no leader",
                                      "code": 14}, status=503)
        async with self.session.post(self.etcd_url + request.path_qs, data=body) as resp:
            answer = await resp.read()
            if request.path == "/v3/kv/txn" and self.lose:
                self.lose -= 1
                status, lost = self.lost_answer
                return web.json_response(lost, status=status)
            return web.Response(body=answer, status=resp.status, content_type="application/json")


async def test_a_write_whose_answer_was_lost_is_applied_once_and_reported_done(etcd_server: EtcdServer) -> None:
    async with LossyEtcd(etcd_server.url) as proxy:
        store = await EtcdStore.connect([proxy.url], compaction_interval=0)
        try:
            proxy.lose = 1
            created = await store.create("pods", "default", pod("a"))
            described = json.loads(etcd_server.etcdctl("get", "/registry/pods/default/a", "-w", "json"))
            assert str(described["kvs"][0]["mod_revision"]) == created["metadata"]["resourceVersion"]
            assert described["kvs"][0]["version"] == 1  # written once

            proxy.lose = 1
            changed = await store.update("pods", "default", "a", {**created, "spec": {"x": 1}},
                                         created["metadata"]["resourceVersion"])
            assert (await store.get("pods", "default", "a"))["metadata"]["resourceVersion"] == \
                changed["metadata"]["resourceVersion"]

            proxy.lose = 1
            await store.delete("pods", "default", "a")
            assert (await store.list("pods"))[0] == []

            # Refused before etcd saw it: simply sent again.
            proxy.refuse = 2
            await store.create("pods", "default", pod("b"))
            # A lost answer does not turn someone else's object into ours.
            proxy.lose = 1
            with pytest.raises(AlreadyExists):
                await store.create("pods", "default", {**pod("b"), "spec": {"other": True}})
        finally:
            await store.close()


async def test_without_a_majority_the_answer_says_so(etcd_server: EtcdServer) -> None:
    async with LossyEtcd(etcd_server.url) as proxy:
        store = await EtcdStore.connect([proxy.url], compaction_interval=0)
        try:
            proxy.refuse = 1000
            with pytest.raises(ServiceUnavailable, match=r"majority.*etcdserver: no leader"):
                await store.create("pods", "default", pod("a"))
            proxy.refuse, proxy.lose = 0, 1000
            with pytest.raises(Timeout, match=r"majority.*etcdserver: request timed out") as timed_out:
                await store.create("pods", "default", pod("c"))
            assert (timed_out.value.code, timed_out.value.reason) == (504, "Timeout")
            proxy.lost_answer = LossyEtcd.GATEWAY_TIMED_OUT
            with pytest.raises(Timeout, match=r"majority.*context deadline exceeded"):
                await store.create("pods", "default", pod("d"))
        finally:
            await store.close()
