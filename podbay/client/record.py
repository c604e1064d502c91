"""Recording Events, as client-go's tools/record does for every Kubernetes component.

Events go out from a queue in the background, so recording one never holds up a sync. An
event equal to one sent before (same object, field path, type, reason and message) is not
stored again: the earlier Event's `count` goes up and its `lastTimestamp` moves, which is what
`kubectl describe` shows as "x12 over 3m". Without that, a probe failing every second would
store 86,400 Events a day.

A component may hold the Events about one object for a while (`hold`/`release`): the node agent
holds a pod's while it starts the pod's containers and writes the pod's status, so their API calls
(each a commit of its own) do not stand in the way of that status write; they keep the time they
were recorded at and their order."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from podbay.api import Event
from podbay.api.errors import NotFound

log = logging.getLogger(__name__)

CACHE_SIZE = 4096  # client-go's maxLruCacheEntries

EventKey = tuple[str, str, str, str, str, str, str]


def event_key(event: Event) -> EventKey:
    ref = event.involved_object
    return (ref.uid or "", ref.namespace or "", ref.name or "", ref.field_path or "", event.type or "",
            event.reason or "", event.message or "")


_last_stamp = 0


def _unique_stamp() -> int:
    """The time in nanoseconds, later than any this process gave before: two Events about one
    object are never named alike, even on a clock that does not tick every nanosecond."""
    global _last_stamp
    _last_stamp = max(time.time_ns(), _last_stamp + 1)
    return _last_stamp


@dataclass(frozen=True)
class SentEvent:
    """What a repeat needs of the stored Event (client-go's eventLog): not the whole object, so
    the cache of up to CACHE_SIZE Events stays small."""
    name: str
    count: int
    first_timestamp: datetime | None


class EventRecorder:
    def __init__(self, client: Any, component: str, host: str | None = None) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._sent: OrderedDict[EventKey, SentEvent] = OrderedDict()
        self._held: dict[str, list[Event]] = {}  # involved object's uid -> its Events recorded since `hold`

    async def record(self, obj: Any, reason: str, message: str, *, warning: bool = False,
                     field_path: str | None = None) -> None:
        """An Event about `obj` (a Pod, Node or Lease object) from this component."""
        stamp = _unique_stamp()
        now = datetime.fromtimestamp(stamp / 1e9, timezone.utc)
        ref: dict[str, Any] = {"kind": obj.kind or "Pod", "apiVersion": obj.api_version, "name": obj.metadata.name,
                               "namespace": obj.metadata.namespace, "uid": obj.metadata.uid}
        if field_path:
            ref["fieldPath"] = field_path
        source: dict[str, str] = {"component": self.component}
        if self.host:
            source["host"] = self.host
        # Validated, but not checked for unknown fields as a user's manifest is: the keys are these.
        event = Event.model_validate({
            # client-go's name: the object's, then the time in hex nanoseconds (no random read).
            "metadata": {"name": f"{obj.metadata.name}.{stamp:x}",
                         "namespace": obj.metadata.namespace or "default"},
            "involvedObject": ref, "reason": reason, "message": message,
            "type": "Warning" if warning else "Normal", "source": source,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host or self.component,
        })
        held = self._held.get(obj.metadata.uid or "")
        if held is not None:
            held.append(event)
        else:
            self._enqueue(event)

    def hold(self, uid: str) -> None:
        """Events about the object with `uid` wait in order until `release(uid)`."""
        self._held.setdefault(uid, [])

    def release(self, uid: str) -> None:
        """Sends what `hold(uid)` kept back; later Events about it go out at once again."""
        for event in self._held.pop(uid, []):
            self._enqueue(event)

    def _enqueue(self, event: Event) -> None:
        self._queue.put_nowait(event)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._write(event)
            except Exception as exc:  # an event lost must never stop the component
                log.warning("event %s for %s/%s not recorded: %s", event.reason, event.involved_object.namespace,
                            event.involved_object.name, exc)
            finally:
                self._queue.task_done()

    async def _write(self, event: Event) -> None:
        key = event_key(event)
        seen = self._sent.pop(key, None)
        if seen is not None:
            # Equal key, so equal to the stored Event but for its name, count and first time.
            repeat = event.model_copy(deep=True)
            repeat.metadata.name = seen.name
            repeat.count = seen.count + 1
            repeat.first_timestamp = seen.first_timestamp
            try:
                event = await self.client.update(repeat)  # no resourceVersion: Events are updated unconditionally
            except NotFound:  # expired meanwhile (the API server's event TTL): start again
                event = await self.client.create(event)
        else:
            event = await self.client.create(event)
        self._sent[key] = SentEvent(event.metadata.name or "", event.count or 1, event.first_timestamp)
        while len(self._sent) > CACHE_SIZE:
            self._sent.popitem(last=False)

    async def close(self) -> None:
        """Sends what is queued or held, then stops."""
        for uid in list(self._held):
            self.release(uid)
        if self._sender is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.join(), 5)
        self._sender.cancel()
        await asyncio.gather(self._sender, return_exceptions=True)
