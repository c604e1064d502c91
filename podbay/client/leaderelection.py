"""Leader election over a coordination.k8s.io/v1 Lease, as client-go's tools/leaderelection
with a resourcelock.LeaseLock: of several candidates running the same loop, exactly one acts.

The decision rules are pure functions of the lock as observed and the time
(`next_record`, `lease_valid`, `observe`, `release_record`); `LeaderElector` does the I/O.
Expiry is judged by the observer's own clock, never by the times written in the Lease:
a record counts as held until leaseDurationSeconds after this candidate first saw it
unchanged, so clocks that disagree between machines do not matter.
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable

from podbay.api import Lease, LeaseSpec, ObjectMeta
from podbay.api.errors import NotFound
from podbay.client.client import Client
from podbay.client.record import EventRecorder

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2  # client-go's JitterFactor: a candidate retries after retryPeriod * (1 + [0, 1.2))


def new_identity() -> str:
    """`<hostname>_<uuid>`, as kube-scheduler and kube-controller-manager name themselves."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class LeaderElectionConfig:
    """kube-scheduler's --leader-elect-* flags; an empty `name` means the component's own lease."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    namespace: str = "kube-system"
    name: str = ""
    identity: str = field(default_factory=new_identity)
    release_on_cancel: bool = True


def config_errors(config: LeaderElectionConfig) -> list[str]:
    """NewLeaderElector's checks, plus one of podbay's: the Lease keeps whole seconds."""
    errors = []
    if config.lease_duration <= config.renew_deadline:
        errors.append("leaseDuration must be greater than renewDeadline")
    if config.renew_deadline <= JITTER_FACTOR * config.retry_period:
        errors.append("renewDeadline must be greater than retryPeriod*JitterFactor")
    if config.lease_duration < 1:
        errors.append("leaseDuration must be at least 1s (leaseDurationSeconds is a whole number)")
    if config.renew_deadline <= 0:
        errors.append("renewDeadline must be greater than zero")
    if config.retry_period <= 0:
        errors.append("retryPeriod must be greater than zero")
    if not config.identity:
        errors.append("Lock identity is empty")
    return errors


@dataclass(frozen=True)
class LeaderElectionRecord:
    """resourcelock.LeaderElectionRecord: what the Lease's spec says."""

    holder_identity: str
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    leader_transitions: int


@dataclass(frozen=True)
class Observation:
    """A record and when (on the observer's monotonic clock) it was first seen as it is."""

    record: LeaderElectionRecord
    time: float


def record_of(lease: Lease) -> LeaderElectionRecord:
    spec = lease.spec
    return LeaderElectionRecord(spec.holder_identity or "", spec.lease_duration_seconds or 0, spec.acquire_time,
                                spec.renew_time, spec.lease_transitions or 0)


def spec_of(record: LeaderElectionRecord) -> LeaseSpec:
    return LeaseSpec(holder_identity=record.holder_identity, lease_duration_seconds=record.lease_duration_seconds,
                     acquire_time=record.acquire_time, renew_time=record.renew_time,
                     lease_transitions=record.leader_transitions)


def observe(previous: Observation | None, record: LeaderElectionRecord, now: float) -> Observation:
    """The observed time moves only when the record changes: a holder that stops renewing
    leaves the record as it was, and its lease runs out on the observer's clock."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def lease_valid(observed: Observation, now: float) -> bool:
    return observed.time + observed.record.lease_duration_seconds > now


def next_record(identity: str, observed: Observation | None, now: float, wall: datetime,
                lease_duration_seconds: int) -> LeaderElectionRecord | None:
    """tryAcquireOrRenew's decision on the lock as observed (None: no Lease yet): the record
    to write, or None while another holder's lease is still valid. Renewing keeps the
    acquire time and the transition count; taking over from another holder counts one transition."""
    fresh = LeaderElectionRecord(identity, lease_duration_seconds, wall, wall, 0)
    if observed is None:
        return fresh
    current = observed.record
    leader = current.holder_identity == identity
    if current.holder_identity and lease_valid(observed, now) and not leader:
        return None
    if leader:
        return LeaderElectionRecord(identity, lease_duration_seconds, current.acquire_time, wall,
                                    current.leader_transitions)
    return LeaderElectionRecord(identity, lease_duration_seconds, wall, wall, current.leader_transitions + 1)


def release_record(observed: Observation, wall: datetime) -> LeaderElectionRecord:
    """What a leader writes as it steps down (ReleaseOnCancel): no holder, a 1 s lease,
    so every candidate may take it at once."""
    return LeaderElectionRecord("", 1, wall, wall, observed.record.leader_transitions)


def _wall() -> datetime:
    return datetime.now(timezone.utc)


class LeaderElector:
    def __init__(self, client: Client, config: LeaderElectionConfig, recorder: EventRecorder | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] = _wall) -> None:
        errors = config_errors(config)
        if errors:
            raise ValueError("; ".join(errors))
        self.client = client
        self.config = config
        self.recorder = recorder
        self.clock = clock
        self.wall = wall
        self.observed: Observation | None = None
        # The Lease as last read or written: its resourceVersion guards the next write.
        self._lease: Lease | None = None
        self._reported_leader = ""

    @property
    def describe(self) -> str:
        return f"{self.config.namespace}/{self.config.name}"

    def is_leader(self) -> bool:
        return self.observed is not None and self.observed.record.holder_identity == self.config.identity

    async def try_acquire_or_renew(self) -> bool:
        now, wall = self.clock(), self.wall()
        duration = int(self.config.lease_duration)
        # The leader first writes over the Lease it last wrote; a Conflict sends it the long way.
        if self._lease is not None and self.observed is not None and self.is_leader() \
                and lease_valid(self.observed, now):
            record = next_record(self.config.identity, self.observed, now, wall, duration)
            assert record is not None
            try:
                await self._write(record)
                return True
            except Exception as exc:  # any failure: read the lock again below
                log.info("failed to update lock optimistically: %s, falling back to slow path", exc)
        try:
            lease: Lease | None = await self.client.get(Lease, self.config.name, self.config.namespace)
        except NotFound:
            lease = None
        except Exception as exc:  # the API unreachable is a failed attempt, not the candidate's end
            log.warning("error retrieving resource lock %s: %s", self.describe, exc)
            return False
        if lease is None:
            record = next_record(self.config.identity, None, now, wall, duration)
            assert record is not None
            try:
                self._lease = await self.client.create(Lease(
                    metadata=ObjectMeta(name=self.config.name, namespace=self.config.namespace),
                    spec=spec_of(record)))
            except Exception as exc:
                log.warning("error initially creating leader election record: %s", exc)
                return False
            self.observed = Observation(record, self.clock())
            self._report_leader()
            return True
        self._lease = lease
        self.observed = observe(self.observed, record_of(lease), now)
        self._report_leader()
        record = next_record(self.config.identity, self.observed, now, wall, duration)
        if record is None:
            return False
        try:
            await self._write(record)
        except Exception as exc:
            log.info("failed to update lock %s: %s", self.describe, exc)
            return False
        return True

    async def _write(self, record: LeaderElectionRecord) -> None:
        assert self._lease is not None
        lease = self._lease.model_copy(update={"spec": spec_of(record)})
        self._lease = await self.client.update(lease)
        self.observed = Observation(record, self.clock())
        self._report_leader()

    def _report_leader(self) -> None:
        holder = self.observed.record.holder_identity if self.observed else ""
        if holder and holder != self._reported_leader:
            log.info("new leader elected: %s", holder)
        self._reported_leader = holder

    async def _attempt(self, timeout: float) -> bool:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives
        # as the attempt completes, and a cancelled elector would then retry forever.
        try:
            async with asyncio.timeout(max(timeout, 0.001)):
                return await self.try_acquire_or_renew()
        except TimeoutError:
            return False

    async def acquire(self) -> None:
        """Returns once this candidate holds the lease, retrying every retry period (jittered)."""
        log.info("attempting to acquire leader lease %s as %s...", self.describe, self.config.identity)
        retry = self.config.retry_period
        while not await self._attempt(self.config.renew_deadline):
            await asyncio.sleep(retry + random.uniform(0, JITTER_FACTOR * retry))
        log.info("successfully acquired lease %s", self.describe)

    async def renew(self) -> None:
        """Renews every retry period; returns when no renewal succeeded within the renew deadline."""
        retry = self.config.retry_period
        while True:
            await asyncio.sleep(retry)
            deadline = self.clock() + self.config.renew_deadline
            while not await self._attempt(deadline - self.clock()):
                if self.clock() >= deadline:
                    log.info("failed to renew lease %s: timed out waiting for the condition", self.describe)
                    return
                await asyncio.sleep(min(retry, max(deadline - self.clock(), 0)))

    async def release(self) -> None:
        """Gives the lease up if this candidate holds it, so another takes over at once."""
        if not self.is_leader() or self._lease is None or self.observed is None:
            return
        try:
            async with asyncio.timeout(self.config.renew_deadline):
                await self._write(release_record(self.observed, self.wall()))
        except Exception as exc:  # it expires anyway; stepping down must not fail the shutdown
            log.warning("failed to release lock %s: %s", self.describe, exc)

    async def _record(self, what: str) -> None:
        if self.recorder is not None and self._lease is not None:
            await self.recorder.record(self._lease, "LeaderElection", f"{self.config.identity} {what}")

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Runs `lead()` while this candidate leads. When leadership is lost `lead()` is cancelled
        and the candidate stands again with a fresh `lead()` (kube-scheduler exits instead and is
        restarted by its supervisor, to the same end). Cancelling `run` cancels `lead()` and
        releases the lease (ReleaseOnCancel)."""
        try:
            while True:
                await self.acquire()
                await self._record("became leader")
                work = asyncio.ensure_future(lead())
                renewing = asyncio.create_task(self.renew())
                try:
                    await asyncio.wait({work, renewing}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (work, renewing):
                        task.cancel()
                    await asyncio.gather(work, renewing, return_exceptions=True)
                if work.done() and not work.cancelled():
                    work.result()  # the work ended (or failed) by itself: so does the election
                    return
                log.error("leaderelection lost: %s", self.describe)
                await self._record("stopped leading")
        finally:
            if self.config.release_on_cancel:
                await self.release()
