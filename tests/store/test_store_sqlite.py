"""SQLiteStore conformance: what any Store must do (an etcd one included)."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from podbay.api.errors import AlreadyExists, Conflict, Gone, NotFound
from podbay.store.base import WatchEvent
from podbay.store.sqlite import SQLiteStore


def pod(name: str, ns: str = "default", **labels: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels, "uid": f"uid-{name}"}}


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "store.db", history_limit=200, poll_interval=0.05)
    yield s
    s.close()


async def take(events: AsyncIterator[WatchEvent], n: int, timeout: float = 10) -> list[WatchEvent]:
    out: list[WatchEvent] = []

    async def collect() -> None:
        async for event in events:
            out.append(event)
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), timeout)
    await events.aclose()  # type: ignore[attr-defined]
    return out


def test_create_get_list_with_increasing_revisions(store: SQLiteStore) -> None:
    a = store.create("pods", "default", pod("a", app="web"))
    b = store.create("pods", "other", pod("b", "other", app="db"))
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert store.get("pods", "default", "a") == a
    items, rv = store.list("pods")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert rv == b["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in store.list("pods", "other")[0]] == ["b"]
    assert [i["metadata"]["name"] for i in store.list("pods", label_selector="app=web")[0]] == ["a"]
    assert store.list("pods", field_selector="metadata.namespace=other")[0] == [b]


def test_errors_carry_kubernetes_messages(store: SQLiteStore) -> None:
    store.create("pods", "default", pod("a"))
    with pytest.raises(AlreadyExists, match='pods "a" already exists'):
        store.create("pods", "default", pod("a"))
    with pytest.raises(NotFound, match='pods "zz" not found'):
        store.get("pods", "default", "zz")
    with pytest.raises(NotFound):
        store.delete("pods", "default", "zz")


def test_update_with_stale_resource_version_conflicts(store: SQLiteStore) -> None:
    created = store.create("pods", "default", pod("a"))
    rv = created["metadata"]["resourceVersion"]
    updated = store.update("pods", "default", "a", {**created, "spec": {"x": 1}}, expected_rv=rv)
    assert updated["metadata"]["resourceVersion"] != rv
    with pytest.raises(Conflict, match="the object has been modified"):
        store.update("pods", "default", "a", {**created, "spec": {"x": 2}}, expected_rv=rv)
    assert store.get("pods", "default", "a")["spec"] == {"x": 1}


def test_delete_preconditions(store: SQLiteStore) -> None:
    created = store.create("pods", "default", pod("a"))
    with pytest.raises(Conflict, match="UID in precondition"):
        store.delete("pods", "default", "a", expected_uid="other")
    with pytest.raises(Conflict, match="ResourceVersion in precondition"):
        store.delete("pods", "default", "a", expected_rv="999")
    gone = store.delete("pods", "default", "a", expected_uid="uid-a",
                        expected_rv=created["metadata"]["resourceVersion"])
    assert int(gone["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(NotFound):
        store.get("pods", "default", "a")


async def test_watch_delivers_every_change_in_order(store: SQLiteStore) -> None:
    first = asyncio.ensure_future(take(store.watch("pods", since_rv=store.current_revision()), 4))
    a = store.create("pods", "default", pod("a"))
    store.create("nodes", "", {"metadata": {"name": "n"}})  # another resource: not seen
    a = store.update("pods", "default", "a", {**a, "spec": {"v": 1}})
    store.create("pods", "default", pod("b"))
    store.delete("pods", "default", "a")
    got = await first
    assert [(e.type, e.object["metadata"]["name"]) for e in got] == [
        ("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a"),
    ]
    rvs = [int(e.object["metadata"]["resourceVersion"]) for e in got]
    assert rvs == sorted(rvs)


async def test_watch_resumes_from_a_resource_version(store: SQLiteStore) -> None:
    a = store.create("pods", "default", pod("a"))
    store.update("pods", "default", "a", {**a, "spec": {"v": 1}})
    store.create("pods", "default", pod("b"))
    got = await take(store.watch("pods", since_rv=a["metadata"]["resourceVersion"]), 2)
    assert [(e.type, e.object["metadata"]["name"]) for e in got] == [("MODIFIED", "a"), ("ADDED", "b")]


async def test_filtered_watch_sees_objects_enter_and_leave_the_selection(store: SQLiteStore) -> None:
    since = store.current_revision()
    a = store.create("pods", "default", pod("a", app="web"))
    a = store.update("pods", "default", "a", {**a, "metadata": {**a["metadata"], "labels": {"app": "db"}}})
    store.create("pods", "default", pod("b", app="db"))
    store.update("pods", "default", "a", {**a, "metadata": {**a["metadata"], "labels": {"app": "web"}}})
    got = await take(store.watch("pods", since_rv=since, label_selector="app=web"), 3)
    assert [(e.type, e.object["metadata"]["name"]) for e in got] == [
        ("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a"),
    ]


async def test_watch_from_compacted_history_is_gone(store: SQLiteStore) -> None:
    first = store.create("pods", "default", pod("a"))
    for i in range(300):
        store.create("nodes", "", {"metadata": {"name": f"n{i}"}})
    with pytest.raises(Gone, match="too old resource version") as info:
        await take(store.watch("pods", since_rv=first["metadata"]["resourceVersion"]), 1)
    assert info.value.code == 410
    # Recent history still resumes.
    recent = store.current_revision()
    store.create("pods", "default", pod("b"))
    assert (await take(store.watch("pods", since_rv=recent), 1))[0].object["metadata"]["name"] == "b"


async def test_store_is_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    s = SQLiteStore(path)
    a = s.create("pods", "default", pod("a"))
    s.update("pods", "default", "a", {**a, "spec": {"v": 1}})
    rv = s.current_revision()
    s.close()
    s = SQLiteStore(path)
    try:
        assert s.get("pods", "default", "a")["spec"] == {"v": 1}
        assert s.current_revision() == rv
        assert int(s.create("pods", "default", pod("b"))["metadata"]["resourceVersion"]) == int(rv) + 1
        got = await take(s.watch("pods", since_rv=a["metadata"]["resourceVersion"]), 2)
        assert [e.type for e in got] == ["MODIFIED", "ADDED"]
    finally:
        s.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from podbay.api.errors import Conflict
    from podbay.store.sqlite import SQLiteStore
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = SQLiteStore(path)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(n):
        s.create("pods", "default", {"metadata": {"name": f"{tag}-{i}", "namespace": "default"}})
        while True:  # read-modify-write a shared counter, retried on conflict
            c = s.get("nodes", "", "counter")
            c["value"] += 1
            try:
                s.update("nodes", "", "counter", c, expected_rv=c["metadata"]["resourceVersion"])
                break
            except Conflict:
                pass
    s.close()
    """
)


async def test_two_processes_writing_at_once(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    s = SQLiteStore(path, poll_interval=0.05)
    s.create("nodes", "", {"metadata": {"name": "counter"}, "value": 0})
    since = s.current_revision()
    n = 60
    watched: list[WatchEvent] = []
    watch = asyncio.ensure_future(take(s.watch("pods", since_rv=since), 2 * n, timeout=60))
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag, str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for tag in ("x", "y")
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert await asyncio.to_thread(p.wait, 60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    watched = await watch  # the other processes' writes reach this process's watcher
    assert s.get("nodes", "", "counter")["value"] == 2 * n
    items, _ = s.list("pods")
    assert len(items) == 2 * n
    assert sorted(e.object["metadata"]["name"] for e in watched) == sorted(i["metadata"]["name"] for i in items)
    rvs = [int(e.object["metadata"]["resourceVersion"]) for e in watched]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    # Every write got its own revision: n creates + n counter updates per process.
    assert int(s.current_revision()) == int(since) + 4 * n
    s.close()
