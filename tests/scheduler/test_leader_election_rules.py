"""Leader election's decisions (client-go's tryAcquireOrRenew) as pure functions of the lock
as observed and the observer's clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from podbay.api import Lease, LeaseSpec
from podbay.client.leaderelection import (
    LeaderElectionConfig,
    LeaderElectionRecord,
    Observation,
    config_errors,
    lease_valid,
    next_record,
    observe,
    record_of,
    release_record,
    spec_of,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
LATER = T0 + timedelta(seconds=30)


def held_by(holder: str, transitions: int = 0, duration: int = 15) -> LeaderElectionRecord:
    return LeaderElectionRecord(holder, duration, T0, T0, transitions)


def test_no_lease_yet_is_acquired_with_no_transition() -> None:
    assert next_record("b", None, 100.0, LATER, 15) == LeaderElectionRecord("b", 15, LATER, LATER, 0)


def test_another_holders_lease_is_respected_until_it_expires_on_the_observers_clock() -> None:
    seen = Observation(held_by("a", transitions=2), time=100.0)
    assert next_record("b", seen, 114.9, LATER, 15) is None
    # Expired 15 s after it was first seen unchanged: taken over, one more transition, a new acquire time.
    assert next_record("b", seen, 115.0, LATER, 15) == LeaderElectionRecord("b", 15, LATER, LATER, 3)


def test_expiry_ignores_the_holders_clock() -> None:
    # The renewTime written by the holder is far in the past, but this observer only just saw it.
    stale = LeaderElectionRecord("a", 15, T0 - timedelta(days=1), T0 - timedelta(days=1), 0)
    assert next_record("b", Observation(stale, time=500.0), 505.0, LATER, 15) is None


def test_a_record_seen_again_unchanged_keeps_its_observed_time() -> None:
    first = observe(None, held_by("a"), 100.0)
    assert observe(first, held_by("a"), 110.0) is first
    renewed = LeaderElectionRecord("a", 15, T0, T0 + timedelta(seconds=2), 0)
    assert observe(first, renewed, 110.0) == Observation(renewed, 110.0)
    assert lease_valid(observe(first, renewed, 110.0), 124.0)


def test_the_holder_renews_keeping_acquire_time_and_transitions() -> None:
    seen = Observation(held_by("a", transitions=4), time=100.0)
    assert next_record("a", seen, 105.0, LATER, 15) == LeaderElectionRecord("a", 15, T0, LATER, 4)
    # Even past its own lease (it was partitioned), a holder that finds itself still holding renews.
    assert next_record("a", seen, 200.0, LATER, 15) == LeaderElectionRecord("a", 15, T0, LATER, 4)


def test_a_released_lease_is_free_at_once() -> None:
    released = release_record(Observation(held_by("a", transitions=1), time=100.0), LATER)
    assert released == LeaderElectionRecord("", 1, LATER, LATER, 1)
    # No holder: taken whatever the duration says.
    assert next_record("b", Observation(released, time=200.0), 200.0, LATER, 15) == \
        LeaderElectionRecord("b", 15, LATER, LATER, 2)


def test_the_lease_spec_round_trip_keeps_microseconds() -> None:
    record = held_by("host_0b1c", transitions=3)
    lease = Lease.model_validate({"spec": {"holderIdentity": "host_0b1c", "leaseDurationSeconds": 15,
                                           "acquireTime": "2026-01-01T12:00:00.123456Z",
                                           "renewTime": "2026-01-01T12:00:00.123456Z", "leaseTransitions": 3}})
    assert record_of(lease) == record
    assert record_of(Lease(spec=spec_of(record))) == record
    assert record_of(Lease(spec=LeaseSpec())) == LeaderElectionRecord("", 0, None, None, 0)


def test_config_checks_as_new_leader_elector() -> None:
    assert config_errors(LeaderElectionConfig()) == []
    assert config_errors(LeaderElectionConfig(lease_duration=10, renew_deadline=10)) == [
        "leaseDuration must be greater than renewDeadline"]
    assert config_errors(LeaderElectionConfig(renew_deadline=2, retry_period=2)) == [
        "renewDeadline must be greater than retryPeriod*JitterFactor"]
    assert "Lock identity is empty" in config_errors(LeaderElectionConfig(identity=""))
    identity = LeaderElectionConfig().identity
    host, _, uid = identity.rpartition("_")
    assert host and len(uid) == 36
