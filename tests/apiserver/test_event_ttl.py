"""Events expire an hour after their last write, as kube-apiserver's --event-ttl."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from podbay.api import Event
from podbay.api.serialize import from_dict
from podbay.apiserver.embedded import EmbeddedServer
from podbay.apiserver.eventttl import expire_once
from podbay.client import Client

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def event(name: str, last: datetime) -> Event:
    return from_dict(Event, {"metadata": {"name": name, "namespace": "default"}, "involvedObject": {"name": "p"},
                             "reason": "Unhealthy", "firstTimestamp": last - timedelta(minutes=5),
                             "lastTimestamp": last, "count": 3})


async def test_events_last_written_over_the_ttl_ago_go(api_server: EmbeddedServer, api_client: Client) -> None:
    for name, last in (("old", NOW - timedelta(hours=2)), ("recent", NOW - timedelta(minutes=10))):
        await api_client.create(event(name, last))
    assert await expire_once(api_server.store, 3600, NOW) == 1
    events, _ = await api_client.list(Event, "default")
    assert [e.metadata.name for e in events] == ["recent"]
