"""Waking the SQLite store's watchers: those in this process right after each commit that
changed their resource (a watcher woken for another resource's write would only query the history
to find nothing: with a dozen watches and every pod's Events, Leases and status writes, that was
most of the store's work per pod in a burst), and, for writes from other processes, when a cheap `PRAGMA data_version` check (every
`poll_interval` seconds while anyone watches) sees one — SQLite offers no cross-process
notification, so this interval is the safety net's latency."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Callable, Collection


class WatchNotifier:
    def __init__(self, data_version: Callable[[], int], poll_interval: float) -> None:
        self._data_version = data_version
        self.poll_interval = poll_interval
        self._watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event, str]] = set()
        self._pollers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._closed = False

    def add(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event, resource: str) -> None:
        self._watchers.add((loop, wake, resource))
        task = self._pollers.get(loop)
        if task is None or task.done():
            self._pollers[loop] = loop.create_task(self._poll_other_writers(loop))

    def discard(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event, resource: str) -> None:
        self._watchers.discard((loop, wake, resource))

    def notify(self, resources: Collection[str]) -> None:
        """Wakes the watchers of `resources`; called after each commit that changed them."""
        for loop, wake, resource in list(self._watchers):
            if resource not in resources or loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                wake.set()
            else:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(wake.set)

    async def _poll_other_writers(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wakes this loop's watchers when another process has committed."""
        seen = self._data_version()
        while any(lp is loop for lp, _, _ in self._watchers) and not self._closed:
            await asyncio.sleep(self.poll_interval)
            version = self._data_version()
            if version != seen:
                seen = version
                for lp, wake, _ in list(self._watchers):
                    if lp is loop:
                        wake.set()
        self._pollers.pop(loop, None)

    def close(self) -> None:
        self._closed = True
        for task in self._pollers.values():
            task.cancel()
        self._pollers.clear()
