"""Events expire a while after their last write, as kube-apiserver's `--event-ttl` (1 h by
default: each write of an Event renews its etcd lease). Without it an edge box's store would
grow with every probe failure and restart for as long as the machine runs."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta, timezone

from podbay.api import Event
from podbay.api.errors import Conflict, NotFound
from podbay.api.serialize import from_dict
from podbay.api.stored import name_of
from podbay.store.base import Store

log = logging.getLogger(__name__)

EVENT_TTL = 3600.0


def last_written(event: Event) -> datetime | None:
    """When the writer last touched the event (each repeat moves these), else when it was made."""
    times = [t for t in (event.last_timestamp, event.event_time,
                         event.series.last_observed_time if event.series else None) if t is not None]
    return max(times) if times else event.first_timestamp or event.metadata.creation_timestamp


def expired(events: list[Event], ttl: float, now: datetime) -> list[Event]:
    """The events last written more than `ttl` seconds before `now` (pure)."""
    limit = now - timedelta(seconds=ttl)
    return [e for e in events if (t := last_written(e)) is not None and t < limit]


async def expire_once(store: Store, ttl: float, now: datetime | None = None) -> int:
    """Deletes the expired events; one written again meanwhile (another resourceVersion) stays."""
    objects, _ = await store.list("events")
    events = [from_dict(Event, o, strict=False) for o in objects]
    gone = 0
    for e in expired(events, ttl, now or datetime.now(timezone.utc)):
        with contextlib.suppress(NotFound, Conflict):
            await store.delete("events", e.metadata.namespace or "", name_of(e), expected_rv=e.metadata.resource_version)
            gone += 1
    return gone


async def expire_events(store: Store, ttl: float = EVENT_TTL) -> None:
    """Runs until cancelled, sweeping often enough that nothing outlives its TTL by more than a tenth."""
    while True:
        try:
            gone = await expire_once(store, ttl)
            if gone:
                log.info("deleted %d expired event(s)", gone)
        except Exception:
            log.exception("expiring events failed")
        await asyncio.sleep(min(60.0, ttl / 10))
