"""The shared informers against a real API server (SQLite and etcd): one list+watch per kind and
selectors however many consumers ask, the indexed cache, the handlers, and a relist after the
server's history moved past the watch (410)."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

from podbay.api import ConfigMap, ObjectMeta, OwnerReference, Pod
from podbay.api.models import Binding, Container, ObjectReference, PodSpec
from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.client import Client
from podbay.client.informer import NAMESPACE_INDEX, NODE_NAME_INDEX, OWNER_UID_INDEX, EventHandlerFuncs, \
    NodePods, PodSource, SharedInformerFactory, WatchEvents
from podbay.store.sqlite import SQLiteStore


async def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def config_map(name: str, ns: str = "default", v: str = "1", owner: str | None = None) -> ConfigMap:
    refs = [OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner)] if owner else []
    return ConfigMap(metadata=ObjectMeta(name=name, namespace=ns, owner_references=refs), data={"v": v})


async def test_consumers_share_one_cache_and_each_hears_every_change(api_server: EmbeddedServer) -> None:
    client = Client.connect(api_server.url)
    factory = SharedInformerFactory(client)
    try:
        await client.create(config_map("before"))
        first = factory.informer(ConfigMap)
        assert factory.informer(ConfigMap) is first
        assert factory.informer(ConfigMap, label_selector="a=b") is not first
        heard: list[tuple[str, str, str]] = []
        first.add_event_handler(WatchEvents(lambda t, cm: heard.append((t, cm.metadata.name or "",
                                                                            (cm.data or {}).get("v", "")))))
        await first.wait_synced()
        await until(lambda: ("ADDED", "before", "1") in heard, "the listed object told to the first handler")

        # A consumer that comes later hears of what the cache holds already, then of changes.
        late: list[tuple[str, str]] = []
        failing_calls: list[str] = []

        def fail(obj: ConfigMap) -> None:
            failing_calls.append(obj.metadata.name or "")
            raise RuntimeError("a consumer's bug")
        first.add_event_handler(EventHandlerFuncs(fail, lambda _, new: fail(new), fail))
        first.add_event_handler(EventHandlerFuncs(lambda o: late.append(("add", o.metadata.name or "")),
                                                  lambda old, new: late.append(
                                                      ("update", f"{old.data['v']}->{new.data['v']}")),
                                                  lambda o: late.append(("delete", o.metadata.name or ""))))
        assert late == [("add", "before")]

        made = await client.create(config_map("other", ns="kube-system"))
        changed = await client.get(ConfigMap, "before", "default")
        changed.data = {"v": "2"}
        await client.update(changed)
        await client.delete(ConfigMap, "other", "kube-system")
        await until(lambda: ("delete", "other") in late, "the deletion told to the late handler")
        assert late == [("add", "before"), ("add", "other"), ("update", "1->2"), ("delete", "other")]
        assert heard[-3:] == [("ADDED", "other", "1"), ("MODIFIED", "before", "2"), ("DELETED", "other", "1")]
        assert failing_calls == ["before", "other", "before", "other"]
        assert made.metadata.uid and first.get("kube-system", "other") is None
        assert [cm.data for cm in first.by_index(NAMESPACE_INDEX, "default")] == [{"v": "2"}]
        assert first.by_index(NAMESPACE_INDEX, "kube-system") == []
    finally:
        await factory.shutdown()
        await client.close()


async def test_the_cache_is_indexed_by_node_name_and_owner_uid(api_server: EmbeddedServer) -> None:
    client = Client.connect(api_server.url)
    factory = SharedInformerFactory(client)
    try:
        pods = factory.informer(Pod)
        maps = factory.informer(ConfigMap)
        for name, node in (("a", "node-1"), ("b", "node-1"), ("c", "node-2")):
            await client.create(Pod(metadata=ObjectMeta(name=name, namespace="default"),
                                    spec=PodSpec(node_name=node, containers=[Container(name="c", image="busybox")])))
        await client.create(config_map("owned-1", owner="uid-1"))
        await client.create(config_map("owned-2", owner="uid-1"))
        await client.create(config_map("free"))
        await until(lambda: len(pods.list()) == 3 and len(maps.list()) == 3, "the cache to fill")
        assert sorted(p.metadata.name or "" for p in pods.by_index(NODE_NAME_INDEX, "node-1")) == ["a", "b"]
        assert [p.metadata.name for p in pods.by_index(NODE_NAME_INDEX, "node-2")] == ["c"]
        assert sorted(cm.metadata.name or "" for cm in maps.by_index(OWNER_UID_INDEX, "uid-1")) == \
            ["owned-1", "owned-2"]
        await client.delete(Pod, "a", "default", grace_period_seconds=0)
        await until(lambda: pods.get("default", "a") is None, "the deleted pod to leave the cache")
        assert [p.metadata.name for p in pods.by_index(NODE_NAME_INDEX, "node-1")] == ["b"]

        # A node's own informer (the agent's) lists and watches only that node's pods.
        mine = factory.informer(Pod, field_selector="spec.nodeName=node-2")
        await mine.wait_synced()
        assert [p.metadata.name for p in mine.list()] == ["c"]
    finally:
        await factory.shutdown()
        await client.close()


async def test_a_node_view_of_all_pods_tells_what_a_node_filtered_informer_tells(api_server: EmbeddedServer) -> None:
    """The all-in-one's agent reads its node's pods from the informer of all pods (NodePods): it
    must see the same pods and hear the same events as the separately-run agent's informer with
    the field selector spec.nodeName=NODE, from a pod's binding to its deletion."""
    client = Client.connect(api_server.url)
    factory = SharedInformerFactory(client)

    def pod(name: str, node: str = "") -> Pod:
        return Pod(metadata=ObjectMeta(name=name, namespace="default"),
                   spec=PodSpec(node_name=node or None, containers=[Container(name="c", image="busybox")]))

    def recorder(log: list[tuple[str, str]]) -> Callable[[str, Pod], None]:
        return lambda type_, p: log.append((type_, p.metadata.name or ""))
    try:
        await client.create(pod("listed", "node-1"))
        await client.create(pod("elsewhere", "node-2"))
        sources: dict[str, PodSource] = {
            "view": NodePods(factory.informer(Pod), "node-1"),
            "filtered": factory.informer(Pod, field_selector="spec.nodeName=node-1")}
        heard: dict[str, list[tuple[str, str]]] = {name: [] for name in sources}
        serving = []
        for name, source in sources.items():
            await source.wait_synced()
            assert [p.metadata.name for p in source.list()] == ["listed"]
            serving.append(asyncio.create_task(source.serve(WatchEvents(recorder(heard[name])))))

        await client.create(pod("unbound"))
        await client.bind(Binding(metadata=ObjectMeta(name="unbound", namespace="default"),
                                  target=ObjectReference(kind="Node", name="node-1")))
        await client.create(pod("direct", "node-1"))
        await client.create(pod("other", "node-2"))
        await client.patch(Pod, "direct", {"metadata": {"labels": {"a": "b"}}}, "default")
        await client.delete(Pod, "listed", "default", grace_period_seconds=0)
        await client.delete(Pod, "other", "default", grace_period_seconds=0)
        # A bound pod's deletion, even with grace 0, first marks it (MODIFIED), then removes it.
        expected = [("ADDED", "listed"), ("ADDED", "unbound"), ("ADDED", "direct"), ("MODIFIED", "direct"),
                    ("MODIFIED", "listed"), ("DELETED", "listed")]
        for name in sources:
            await until(lambda: ("DELETED", "listed") in heard[name], f"the deletion told through {name}")
        assert heard["view"] == heard["filtered"]
        assert heard["view"] == expected
        for source in sources.values():
            assert sorted(p.metadata.name or "" for p in source.list()) == ["direct", "unbound"]
        for task in serving:
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)
    finally:
        await factory.shutdown()
        await client.close()


async def test_a_relist_after_410_drops_objects_deleted_meanwhile(tmp_path: Path) -> None:
    """Objects the informer only listed (the watch never delivered them) and that were deleted
    while the watch was away still leave the cache, and handlers are told."""
    def store() -> SQLiteStore:
        return SQLiteStore(tmp_path / "store.db", history_limit=3)

    async with serve_embedded(tmp_path / "api", store=store()) as server:
        setup = Client.connect(server.url)
        for name in ("listed-gone", "listed-kept"):
            await setup.create(config_map(name))
        await setup.close()
        client = Client.connect(server.url)
        factory = SharedInformerFactory(client)
        informer = factory.informer(ConfigMap, "default")
        deleted: list[str] = []
        informer.add_event_handler(WatchEvents(lambda t, cm: deleted.append(cm.metadata.name or "")
                                               if t == "DELETED" else None))
        await informer.wait_synced()
    try:
        # Meanwhile, more writes than the history keeps (it is trimmed every 64 writes).
        async with serve_embedded(tmp_path / "api", store=store(), unix_socket=tmp_path / "other.sock") as other:
            writer = Client.connect(other.url)
            await writer.delete(ConfigMap, "listed-gone", "default")
            for n in range(70):
                await writer.create(ConfigMap(metadata=ObjectMeta(name=f"new-{n}", namespace="default")))
            await writer.close()
        async with serve_embedded(tmp_path / "api", store=store()):
            await until(lambda: len(informer.list()) == 71 and informer.get("default", "listed-gone") is None,
                        "the relisted cache")
            assert deleted == ["listed-gone"]
            assert informer.get("default", "listed-kept") is not None
    finally:
        await factory.shutdown()
        await client.close()
