"""`Client.watch` as client-go's reflector runs a list and watch: the current objects first, then
watch requests resumed from the last resourceVersion delivered (on the next server when one stops
answering), and a relist that yields the difference when that resourceVersion has expired."""
from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any, AsyncGenerator, Awaitable, Callable, Generic, TypeVar

import aiohttp

from podbay.api import jsoncodec
from podbay.client.codec import decode
from podbay.client.errors import error_from_response, error_from_status
from podbay.client.transport import UNANSWERED, Transport

T = TypeVar("T")

_RETRY_MIN, _RETRY_MAX = 0.1, 5.0
# client-go's reflector asks every watch to end after 5 to 10 minutes (minWatchTimeout, jittered):
# a silent server past that, plus this grace, has stopped answering.
_WATCH_TIMEOUT, _WATCH_GRACE = 300, 30

Event = tuple[str, T]


class _Expired(Exception):
    """The server no longer has the resourceVersion the watch resumes from (410 Gone)."""


def _key(obj: Any) -> tuple[str, str]:
    return (obj.metadata.namespace or "", obj.metadata.name or "")


class Reflector(Generic[T]):
    """One watch of `kind` at `path` with the selectors in `params`; `lister` lists the same objects."""

    def __init__(self, transport: Transport, kind: type[T], path: str, params: dict[str, str],
                 lister: Callable[[], Awaitable[tuple[list[T], str]]]) -> None:
        self.transport = transport
        self.kind = kind
        self.path = path
        self.params = params
        self.lister = lister
        self.rv = ""
        # What was delivered, for a relist's difference: each object's resourceVersion and the event
        # line it came in (decoded again only for a DELETED after a relist), not the object, so a
        # watcher that keeps no copy holds none (a process runs several watches of every pod).
        self.known: dict[tuple[str, str], tuple[str | None, T | bytes]] = {}
        self._delay = _RETRY_MIN
        self._failures = 0

    async def events(self, resource_version: str | None) -> AsyncGenerator[Event[T], None]:
        """The events from `resource_version` (none or "0": the current objects as ADDED first), forever."""
        if resource_version and resource_version != "0":
            self.rv = resource_version
        else:
            items, self.rv = await self.lister()
            for item in items:
                self.known[_key(item)] = (item.metadata.resource_version, item)  # type: ignore[attr-defined]
                yield "ADDED", item
        while True:
            url = self.transport.base_url
            expired = False
            try:
                async with contextlib.aclosing(self._watch(url)) as events:
                    async for event in events:
                        yield event
            except _Expired:
                expired = True
            except UNANSWERED:
                if self.transport.closed:
                    return
                await self._failed(url)
                continue
            if expired:
                async with contextlib.aclosing(self._relist()) as changes:
                    async for event in changes:
                        yield event

    async def _watch(self, url: str) -> AsyncGenerator[Event[T], None]:
        """One watch request to `url` from the last resourceVersion; _Expired when it is too old."""
        timeout = int(_WATCH_TIMEOUT * (1 + random.random()))
        params = {"watch": "1", "allowWatchBookmarks": "true", "resourceVersion": self.rv,
                  "timeoutSeconds": str(timeout), **self.params}
        async with self.transport.round_trip("GET", url, self.path, params=params, timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=10, sock_read=timeout + _WATCH_GRACE)) as resp:
            if resp.status == 410:
                raise _Expired
            if resp.status >= 400:
                raise error_from_response(resp.status, await resp.read())
            self._delay, self._failures = _RETRY_MIN, 0
            async for line in resp.content:
                if not line.strip():
                    continue
                event = jsoncodec.decode(line)
                type_, data = event.get("type"), event.get("object", {})
                if type_ == "ERROR":
                    if data.get("code") == 410:
                        raise _Expired
                    raise error_from_status(data)
                self.rv = data.get("metadata", {}).get("resourceVersion") or self.rv
                if type_ == "BOOKMARK":
                    continue
                obj = decode(self.kind, data)
                if type_ == "DELETED":
                    self.known.pop(_key(obj), None)
                else:
                    self.known[_key(obj)] = (obj.metadata.resource_version, line)  # type: ignore[attr-defined]
                yield type_, obj

    async def _failed(self, url: str) -> None:
        self.transport.failed(url)
        self._failures += 1
        # Each server is tried at once; a pause only once every one of them has failed.
        if self._failures % len(self.transport.servers) == 0:
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, _RETRY_MAX)

    async def _relist(self) -> AsyncGenerator[Event[T], None]:
        """What changed between the delivered objects and a fresh list, as an informer's relist sees it."""
        items, self.rv = await self.lister()
        fresh = {_key(i): i for i in items}
        for key, (_, old) in list(self.known.items()):
            if key not in fresh:
                del self.known[key]
                yield "DELETED", decode(self.kind, jsoncodec.decode(old)["object"]) if isinstance(old, bytes) else old
        for key, item in fresh.items():
            before = self.known.get(key)
            self.known[key] = (item.metadata.resource_version, item)  # type: ignore[attr-defined]
            if before is None:
                yield "ADDED", item
            elif before[0] != item.metadata.resource_version:  # type: ignore[attr-defined]
                yield "MODIFIED", item
