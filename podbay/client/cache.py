"""A watched copy of one kind's objects (client-go's informer, reduced to what the service
controllers need): the objects by namespace and name, and a wake-up when any of them changes."""
from __future__ import annotations

import asyncio
import logging
from typing import Generic, Protocol, TypeVar

from podbay.api.models import ObjectMeta
from podbay.client.client import Client

log = logging.getLogger(__name__)


class _Object(Protocol):
    metadata: ObjectMeta


T = TypeVar("T", bound=_Object)

# Between failed attempts to list (a server that is restarting); the watch itself resumes on its own.
_RETRY = 1.0


class Informer(Generic[T]):
    def __init__(self, client: Client, kind: type[T], changed: asyncio.Event,
                 label_selector: str | None = None) -> None:
        self.client, self.kind, self.changed = client, kind, changed
        self.label_selector = label_selector
        self.objects: dict[tuple[str, str], T] = {}
        self.synced = asyncio.Event()  # set once the first list is in `objects`

    def items(self) -> list[T]:
        return list(self.objects.values())

    async def run(self) -> None:
        """Lists, then follows the watch from the list's resourceVersion, forever; `changed` is set
        after the list and after every event."""
        while True:
            try:
                items, rv = await self.client.list(self.kind, label_selector=self.label_selector)
                break
            except Exception as exc:  # the server may be (re)starting: try again, said once per failure
                log.warning("listing %s failed: %s", self.kind.__name__, exc)
                await asyncio.sleep(_RETRY)
        self.objects = {(o.metadata.namespace or "", o.metadata.name or ""): o for o in items}
        self.synced.set()
        self.changed.set()
        async for event, obj in self.client.watch(self.kind, resource_version=rv,
                                                  label_selector=self.label_selector):
            key = (obj.metadata.namespace or "", obj.metadata.name or "")
            if event == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
            self.changed.set()
