"""The leader elector against a real API server: a leader that cannot renew within the renew
deadline stops acting; a cancelled leader releases its lease."""
from __future__ import annotations

import asyncio

from podbay.api import Event, Lease
from podbay.client import Client
from podbay.client.leaderelection import LeaderElectionConfig, LeaderElector
from podbay.client.record import EventRecorder

FAST = LeaderElectionConfig(lease_duration=2, renew_deadline=1, retry_period=0.2, name="demo")


class Work:
    """What a leader does: runs until cancelled, saying when it started and stopped."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def __call__(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped.set()


async def test_a_leader_whose_lease_is_taken_stops_acting(api_client: Client) -> None:
    work, recorder = Work(), EventRecorder(api_client, "demo-controller")
    running = asyncio.create_task(LeaderElector(api_client, FAST, recorder).run(work))
    try:
        await asyncio.wait_for(work.started.wait(), 10)
        lease = await api_client.get(Lease, "demo", "kube-system")
        assert lease.spec.holder_identity == FAST.identity and lease.spec.lease_transitions == 0
        # Someone else writes over it (no resourceVersion: unconditionally) with a long lease.
        lease.metadata.resource_version = None
        lease.spec.holder_identity, lease.spec.lease_duration_seconds = "intruder", 3600
        await api_client.update(lease)
        await asyncio.wait_for(work.stopped.wait(), 10)
        assert not running.done()  # a candidate again
        assert (await api_client.get(Lease, "demo", "kube-system")).spec.holder_identity == "intruder"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await recorder.close()
    # Not the holder when cancelled: nothing to release.
    assert (await api_client.get(Lease, "demo", "kube-system")).spec.holder_identity == "intruder"
    events, _ = await api_client.list(Event, "kube-system")
    assert sorted((e.reason, e.message) for e in events) == [
        ("LeaderElection", f"{FAST.identity} became leader"), ("LeaderElection", f"{FAST.identity} stopped leading")]
    assert {(e.involved_object.api_version, e.involved_object.kind, e.involved_object.name) for e in events} == {
        ("coordination.k8s.io/v1", "Lease", "demo")}


async def test_a_cancelled_leader_releases_and_keeps_the_transition_count(api_client: Client) -> None:
    work = Work()
    running = asyncio.create_task(LeaderElector(api_client, FAST).run(work))
    await asyncio.wait_for(work.started.wait(), 10)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert work.stopped.is_set()
    released = await api_client.get(Lease, "demo", "kube-system")
    assert released.spec.holder_identity == "" and released.spec.lease_duration_seconds == 1
    # The next candidate takes it at once and counts the transition.
    other = LeaderElectionConfig(lease_duration=2, renew_deadline=1, retry_period=0.2, name="demo")
    successor = LeaderElector(api_client, other)
    assert await successor.try_acquire_or_renew()
    taken = await api_client.get(Lease, "demo", "kube-system")
    assert taken.spec.holder_identity == other.identity and taken.spec.lease_transitions == 1
    assert taken.spec.acquire_time == taken.spec.renew_time  # a new holder's acquire time
