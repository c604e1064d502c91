"""Events recorded through the real API server: a repeat raises the stored Event's count
instead of storing another, as client-go's recorder does; an object's Events held back go out in
order, with the times they were recorded at, when released."""
from __future__ import annotations

import asyncio
import time

from podbay.api import Event
from podbay.api.formats import load_pods
from podbay.client import Client
from podbay.client.record import EventRecorder


async def test_repeats_raise_the_count_and_distinct_events_stay_apart(api_client: Client) -> None:
    pod = await api_client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec: {containers: [{name: c, image: busybox:1.35}]}
""")[0])
    recorder = EventRecorder(api_client, "kubelet", "node-a")
    await recorder.record(pod, "Unhealthy", "Readiness probe failed: no", warning=True, field_path="spec.containers{c}")
    await recorder.close()
    (first,), _ = await api_client.list(Event, "default")
    for _ in range(2):
        await recorder.record(pod, "Unhealthy", "Readiness probe failed: no", warning=True, field_path="spec.containers{c}")
    await recorder.record(pod, "Unhealthy", "Readiness probe failed: other", warning=True,
                          field_path="spec.containers{c}")
    await recorder.close()
    events, _ = await api_client.list(Event, "default")
    by_message = {e.message: e for e in events}
    assert len(events) == 2
    repeated = by_message["Readiness probe failed: no"]
    assert repeated.count == 3 and repeated.type == "Warning" and repeated.source.component == "kubelet"
    assert repeated.last_timestamp >= repeated.first_timestamp
    # The repeat keeps the first Event's name, uid and first time ("x3 over 2m" in describe).
    assert (repeated.metadata.name, repeated.metadata.uid, repeated.first_timestamp) == \
        (first.metadata.name, first.metadata.uid, first.first_timestamp)
    assert repeated.metadata.creation_timestamp == first.metadata.creation_timestamp
    assert repeated.involved_object.field_path == "spec.containers{c}" and repeated.involved_object.kind == "Pod"
    assert by_message["Readiness probe failed: other"].count == 1

    # An Event gone meanwhile (the API server's TTL) is stored afresh.
    await api_client.delete(Event, repeated.metadata.name, "default")
    await recorder.record(pod, "Unhealthy", "Readiness probe failed: no", warning=True, field_path="spec.containers{c}")
    await recorder.close()
    events, _ = await api_client.list(Event, "default")
    assert sorted((e.message, e.count) for e in events) == [("Readiness probe failed: no", 1),
                                                            ("Readiness probe failed: other", 1)]


async def _events_until(client: Client, count: int) -> list[Event]:
    deadline = time.monotonic() + 60
    while True:
        events, _ = await client.list(Event, "default")
        if len(events) >= count:
            return events
        assert time.monotonic() < deadline, f"{count} Events never stored: {[e.reason for e in events]}"
        await asyncio.sleep(0.02)


async def test_held_events_wait_for_their_release_and_keep_their_order_and_times(api_client: Client) -> None:
    held, other = [await api_client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec: {{containers: [{{name: c, image: busybox:1.35}}]}}
""")[0]) for name in ("starting", "other")]
    assert held.metadata.uid is not None
    recorder = EventRecorder(api_client, "kubelet", "node-a")
    recorder.hold(held.metadata.uid)
    await recorder.record(held, "Created", "Created container c", field_path="spec.containers{c}")
    await recorder.record(held, "Started", "Started container c", field_path="spec.containers{c}")
    await recorder.record(other, "Scheduled", "Successfully assigned default/other to node-a")
    # The other pod's Event, recorded last, is stored while the held ones are not: the queue is
    # first in, first out, so they would have gone before it.
    (first,) = await _events_until(api_client, 1)
    assert first.reason == "Scheduled"
    recorder.release(held.metadata.uid)
    events = await _events_until(api_client, 3)
    mine = sorted((e for e in events if e.involved_object.name == "starting"), key=lambda e: int(e.metadata.resource_version or 0))
    assert [e.reason for e in mine] == ["Created", "Started"]  # stored in the order recorded
    # Their times are when they were recorded, before the other pod's Event.
    assert first.first_timestamp is not None
    assert all(e.first_timestamp is not None and e.first_timestamp <= first.first_timestamp for e in mine)
    # After the release, the pod's Events go out at once again.
    await recorder.record(held, "Killing", "Stopping container c", field_path="spec.containers{c}")
    await _events_until(api_client, 4)

    # Closing sends what is still held.
    recorder.hold(held.metadata.uid)
    await recorder.record(held, "Pulled", "Container image already present on machine")
    await recorder.close()
    events, _ = await api_client.list(Event, "default")
    assert sorted(e.reason or "" for e in events) == ["Created", "Killing", "Pulled", "Scheduled", "Started"]


async def test_events_are_named_as_client_go_names_them_and_never_alike(api_client: Client) -> None:
    pod = await api_client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: named}
spec: {containers: [{name: c, image: busybox:1.35}]}
""")[0])
    recorder = EventRecorder(api_client, "kubelet", "node-a")
    # Recorded back to back, faster than many clocks tick: each is stored under a name of its own.
    for i in range(50):
        await recorder.record(pod, "Started", f"Started container c{i}")
    await recorder.close()
    events, _ = await api_client.list(Event, "default")
    assert len(events) == 50
    stamps = []
    for e in events:
        prefix, _, stamp = (e.metadata.name or "").rpartition(".")
        assert prefix == "named"
        stamps.append(int(stamp, 16))
    assert len(set(stamps)) == 50
    # The hex part is the time recorded, in nanoseconds since the epoch (the API's times are in seconds).
    for e, ns in zip(events, stamps):
        assert e.first_timestamp is not None and e.first_timestamp.timestamp() == ns // 10**9
