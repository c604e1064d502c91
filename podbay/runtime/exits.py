"""Container exits: a container has exited when its monitor (conmon) has, after it wrote the exit
file. A pidfd becomes readable then, so nothing polls; the ids come out as events."""
from __future__ import annotations

import asyncio
import contextlib
import os
from typing import AsyncIterator


class ExitWatcher:
    def __init__(self) -> None:
        self._events: asyncio.Queue[str] = asyncio.Queue()
        self._exited: set[str] = set()  # containers whose monitor has exited
        self._watched: dict[str, asyncio.Future[None]] = {}

    def exited(self, container_id: str) -> bool:
        return container_id in self._exited

    def watch(self, container_id: str, monitor_pid: int | None) -> asyncio.Future[None]:
        """A future that resolves when the container's monitor exits (at once without one)."""
        existing = self._watched.get(container_id)
        if existing is not None:
            return existing
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._watched[container_id] = done
        try:
            fd = os.pidfd_open(monitor_pid) if monitor_pid else -1
        except ProcessLookupError:
            fd = -1
        if fd < 0:
            self._exited.add(container_id)
            done.set_result(None)
            self._events.put_nowait(container_id)
            return done

        def on_exit() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._exited.add(container_id)
            if not done.done():
                done.set_result(None)
            self._events.put_nowait(container_id)

        loop.add_reader(fd, on_exit)
        done.add_done_callback(lambda f: _close_reader(loop, fd) if f.cancelled() else None)
        return done

    def forget(self, container_id: str) -> None:
        watcher = self._watched.pop(container_id, None)
        if watcher is not None and not watcher.done():
            watcher.cancel()
        self._exited.discard(container_id)

    def stop(self) -> None:
        """Stops watching every container (they keep running)."""
        for fut in list(self._watched.values()):
            if not fut.done():
                fut.cancel()
        self._watched.clear()

    async def events(self) -> AsyncIterator[str]:
        """Ids of containers as they exit."""
        while True:
            yield await self._events.get()


def _close_reader(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    with contextlib.suppress(Exception):
        loop.remove_reader(fd)
    with contextlib.suppress(OSError):
        os.close(fd)
