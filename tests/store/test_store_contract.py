"""The Store contract: what every backend (SQLite, etcd) must do; `backend` and `store`
come from conftest.py, parametrised over both."""
from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from podbay.api.errors import AlreadyExists, Conflict, Gone, NotFound
from podbay.store.base import Store, WatchEvent
from tests.store.conftest import Backend, open_spec

REPO = Path(__file__).resolve().parents[2]


def pod(name: str, ns: str = "default", **labels: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels, "uid": f"uid-{name}"}}


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


async def test_create_get_list_with_increasing_revisions(store: Store) -> None:
    a = await store.create("pods", "default", pod("a", app="web"))
    b = await store.create("pods", "other", pod("b", "other", app="db"))
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert await store.get("pods", "default", "a") == a
    items, rv = await store.list("pods")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert rv == b["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in (await store.list("pods", "other"))[0]] == ["b"]
    assert [i["metadata"]["name"] for i in (await store.list("pods", label_selector="app=web"))[0]] == ["a"]
    assert (await store.list("pods", field_selector="metadata.namespace=other"))[0] == [b]


async def test_errors_carry_kubernetes_messages(store: Store) -> None:
    await store.create("pods", "default", pod("a"))
    with pytest.raises(AlreadyExists, match='pods "a" already exists'):
        await store.create("pods", "default", pod("a"))
    with pytest.raises(NotFound, match='pods "zz" not found'):
        await store.get("pods", "default", "zz")
    with pytest.raises(NotFound):
        await store.delete("pods", "default", "zz")


async def test_update_with_stale_resource_version_conflicts(store: Store) -> None:
    created = await store.create("pods", "default", pod("a"))
    rv = created["metadata"]["resourceVersion"]
    updated = await store.update("pods", "default", "a", {**created, "spec": {"x": 1}}, expected_rv=rv)
    assert updated["metadata"]["resourceVersion"] != rv
    with pytest.raises(Conflict, match="the object has been modified"):
        await store.update("pods", "default", "a", {**created, "spec": {"x": 2}}, expected_rv=rv)
    assert (await store.get("pods", "default", "a"))["spec"] == {"x": 1}


async def test_delete_preconditions(store: Store) -> None:
    created = await store.create("pods", "default", pod("a"))
    with pytest.raises(Conflict, match="UID in precondition"):
        await store.delete("pods", "default", "a", expected_uid="other")
    with pytest.raises(Conflict, match="ResourceVersion in precondition"):
        await store.delete("pods", "default", "a", expected_rv="999")
    gone = await store.delete("pods", "default", "a", expected_uid="uid-a",
                              expected_rv=created["metadata"]["resourceVersion"])
    assert int(gone["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(NotFound):
        await store.get("pods", "default", "a")


async def test_watch_delivers_every_change_in_order(store: Store) -> None:
    first = asyncio.ensure_future(take(store.watch("pods", since_rv=await store.current_revision()), 4))
    a = await store.create("pods", "default", pod("a"))
    await store.create("nodes", "", {"metadata": {"name": "n"}})  # another resource: not seen
    a = await store.update("pods", "default", "a", {**a, "spec": {"v": 1}})
    await store.create("pods", "default", pod("b"))
    await store.delete("pods", "default", "a")
    got = await first
    assert [(e.type, e.object["metadata"]["name"]) for e in got] == [
        ("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a"),
    ]
    rvs = [int(e.object["metadata"]["resourceVersion"]) for e in got]
    assert rvs == sorted(rvs)


async def test_watch_resumes_from_a_resource_version(store: Store) -> None:
    a = await store.create("pods", "default", pod("a"))
    await store.update("pods", "default", "a", {**a, "spec": {"v": 1}})
    await store.create("pods", "default", pod("b"))
    got = await take(store.watch("pods", since_rv=a["metadata"]["resourceVersion"]), 2)
    assert [(e.type, e.object["metadata"]["name"]) for e in got] == [("MODIFIED", "a"), ("ADDED", "b")]


async def test_filtered_watch_sees_objects_enter_and_leave_the_selection(store: Store) -> None:
    since = await store.current_revision()
    a = await store.create("pods", "default", pod("a", app="web"))
    a = await store.update("pods", "default", "a", {**a, "metadata": {**a["metadata"], "labels": {"app": "db"}}})
    await store.create("pods", "default", pod("b", app="db"))
    await store.update("pods", "default", "a", {**a, "metadata": {**a["metadata"], "labels": {"app": "web"}}})
    got = await take(store.watch("pods", since_rv=since, label_selector="app=web"), 3)
    assert [(e.type, e.object["metadata"]["name"]) for e in got] == [
        ("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a"),
    ]


async def test_bookmarks_when_asked_carry_the_revision_caught_up_to(store: Store) -> None:
    since = await store.current_revision()
    await store.create("pods", "default", pod("a"))
    other = await store.create("nodes", "", {"metadata": {"name": "n"}})  # not watched, still passed
    seen: list[WatchEvent] = []

    async def until_bookmark_past(rv: int) -> None:
        async for event in store.watch("pods", since_rv=since, bookmarks=True):
            seen.append(event)
            if event.type == "BOOKMARK" and int(event.object["metadata"]["resourceVersion"]) >= rv:
                return

    await asyncio.wait_for(until_bookmark_past(int(other["metadata"]["resourceVersion"])), 10)
    changes = [(e.type, e.object["metadata"]["name"]) for e in seen if e.type != "BOOKMARK"]
    assert changes == [("ADDED", "a")]
    assert seen[-1].object == {"metadata": {"resourceVersion": seen[-1].object["metadata"]["resourceVersion"]}}


async def test_watch_from_compacted_history_is_gone(backend: Backend, store: Store) -> None:
    first = await store.create("pods", "default", pod("a"))
    await store.create("pods", "default", pod("b"))
    await store.create("pods", "default", pod("c"))
    await backend.forget_history(store)
    with pytest.raises(Gone, match="too old resource version") as info:
        await take(store.watch("pods", since_rv=first["metadata"]["resourceVersion"]), 1)
    assert info.value.code == 410
    # Recent history still resumes.
    recent = await store.current_revision()
    await store.create("pods", "default", pod("d"))
    assert (await take(store.watch("pods", since_rv=recent), 1))[0].object["metadata"]["name"] == "d"


async def test_a_quiet_watch_outlives_the_compaction_of_other_writes(backend: Backend, store: Store) -> None:
    # Watching namespaces while only nodes are written: the history of those writes goes, and the
    # namespaces watch still delivers the next namespace, not 410.
    # From the revision now (a watch of "now" starts when first read, which may be after the create).
    _, since = await store.list("namespaces")
    events = store.watch("namespaces", since_rv=since)
    nxt = asyncio.ensure_future(events.__anext__())
    try:
        # Its first event says the watch has started and caught up.
        await store.create("namespaces", "", {"metadata": {"name": "before"}})
        assert (await asyncio.wait_for(nxt, 10)).object["metadata"]["name"] == "before"
        nxt = asyncio.ensure_future(events.__anext__())
        await backend.forget_history(store)
        await store.create("namespaces", "", {"metadata": {"name": "after"}})
        event = await asyncio.wait_for(nxt, 10)
        assert (event.type, event.object["metadata"]["name"]) == ("ADDED", "after")
    finally:
        nxt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await nxt
        await events.aclose()  # type: ignore[attr-defined]


async def test_store_is_durable_across_a_restart(backend: Backend) -> None:
    s = await open_spec(backend.spec)
    a = await s.create("pods", "default", pod("a"))
    await s.update("pods", "default", "a", {**a, "spec": {"v": 1}})
    rv = await s.current_revision()
    await s.close()
    backend.restart()
    s = await open_spec(backend.spec)
    try:
        assert (await s.get("pods", "default", "a"))["spec"] == {"v": 1}
        assert await s.current_revision() == rv
        assert int((await s.create("pods", "default", pod("b")))["metadata"]["resourceVersion"]) == int(rv) + 1
        got = await take(s.watch("pods", since_rv=a["metadata"]["resourceVersion"]), 2)
        assert [e.type for e in got] == ["MODIFIED", "ADDED"]
    finally:
        await s.close()


async def test_two_stores_racing_an_update_one_wins(backend: Backend, store: Store) -> None:
    other = await open_spec(backend.spec)
    try:
        created = await store.create("pods", "default", pod("a"))
        rv = created["metadata"]["resourceVersion"]
        results = await asyncio.gather(
            store.update("pods", "default", "a", {**created, "spec": {"by": "one"}}, expected_rv=rv),
            other.update("pods", "default", "a", {**created, "spec": {"by": "other"}}, expected_rv=rv),
            return_exceptions=True,
        )
        won = [r for r in results if isinstance(r, dict)]
        assert len(won) == 1 and [type(r) for r in results if not isinstance(r, dict)] == [Conflict]
        assert await other.get("pods", "default", "a") == won[0]
    finally:
        await other.close()


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from podbay.api.errors import Conflict
    from tests.store.conftest import open_spec

    async def main(spec: str, tag: str, n: int) -> None:
        s = await open_spec(spec)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # start together
        for i in range(n):
            await s.create("pods", "default", {"metadata": {"name": f"{tag}-{i}", "namespace": "default"}})
            while True:  # read-modify-write a shared counter, retried on conflict
                c = await s.get("nodes", "", "counter")
                c["value"] += 1
                try:
                    await s.update("nodes", "", "counter", c, expected_rv=c["metadata"]["resourceVersion"])
                    break
                except Conflict:
                    pass
        await s.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_two_processes_writing_at_once(backend: Backend, store: Store) -> None:
    s = store
    await s.create("nodes", "", {"metadata": {"name": "counter"}, "value": 0})
    since = await s.current_revision()
    n = 60
    watch = asyncio.ensure_future(take(s.watch("pods", since_rv=since), 2 * n, timeout=60))
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, backend.spec, tag, str(n)], cwd=REPO,
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
    assert (await s.get("nodes", "", "counter"))["value"] == 2 * n
    items, _ = await s.list("pods")
    assert len(items) == 2 * n
    assert sorted(e.object["metadata"]["name"] for e in watched) == sorted(i["metadata"]["name"] for i in items)
    rvs = [int(e.object["metadata"]["resourceVersion"]) for e in watched]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    # Every write got its own revision: n creates + n counter updates per process.
    assert int(await s.current_revision()) == int(since) + 4 * n


async def test_concurrent_writes_each_keep_their_own_outcome(store: Store) -> None:
    """Writes in flight together (SQLite commits them as one group) behave as one after another:
    a name taken twice is created once and refused once, an update against a stale
    resourceVersion is a Conflict, a failed write leaves the others of its group stored."""
    created = await asyncio.gather(*(store.create("pods", "default", pod(f"c{i % 10}")) for i in range(20)),
                                   return_exceptions=True)
    stored = [c for c in created if isinstance(c, dict)]
    assert sorted(c["metadata"]["name"] for c in stored) == [f"c{i}" for i in range(10)]
    assert all(isinstance(c, AlreadyExists) for c in created if not isinstance(c, dict))
    versions = [int(c["metadata"]["resourceVersion"]) for c in stored]
    assert len(set(versions)) == 10
    for c in stored:
        assert await store.get("pods", "default", c["metadata"]["name"]) == c

    base = stored[0]
    name, rv = base["metadata"]["name"], base["metadata"]["resourceVersion"]
    updates = await asyncio.gather(
        *(store.update("pods", "default", name, {**base, "spec": {"n": i}}, expected_rv=rv) for i in range(5)),
        return_exceptions=True)
    won = [u for u in updates if isinstance(u, dict)]
    assert len(won) == 1 and all(isinstance(u, Conflict) for u in updates if not isinstance(u, dict))
    assert await store.get("pods", "default", name) == won[0]
    assert int(won[0]["metadata"]["resourceVersion"]) > max(versions)
    items, list_rv = await store.list("pods", "default")
    assert len(items) == 10 and int(list_rv) >= int(won[0]["metadata"]["resourceVersion"])


async def test_concurrent_writes_reach_a_watch_in_revision_order(store: Store) -> None:
    since = await store.current_revision()
    created = await asyncio.gather(*(store.create("pods", "default", pod(f"w{i}")) for i in range(30)))
    events = await take(store.watch("pods", "default", since_rv=since), 30)
    assert [e.object for e in events] == sorted(created, key=lambda c: int(c["metadata"]["resourceVersion"]))


async def test_watches_of_two_resources_each_see_their_own_writes_committed_together(store: Store) -> None:
    since = await store.current_revision()
    pods = asyncio.ensure_future(take(store.watch("pods", "default", since_rv=since), 10))
    nodes = asyncio.ensure_future(take(store.watch("nodes", since_rv=since), 10))
    await asyncio.sleep(0)  # both usually waiting before the writes, so woken by their commit
    await asyncio.gather(*(store.create("pods", "default", pod(f"m{i}")) for i in range(10)),
                         *(store.create("nodes", "", {"metadata": {"name": f"n{i}"}}) for i in range(10)),
                         *(store.create("events", "default", {"metadata": {"name": f"e{i}"}}) for i in range(10)))
    assert sorted(e.object["metadata"]["name"] for e in await pods) == sorted(f"m{i}" for i in range(10))
    assert sorted(e.object["metadata"]["name"] for e in await nodes) == sorted(f"n{i}" for i in range(10))
