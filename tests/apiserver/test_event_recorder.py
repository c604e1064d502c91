"""Events recorded through the real API server: a repeat raises the stored Event's count
instead of storing another, as client-go's recorder does."""
from __future__ import annotations

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
