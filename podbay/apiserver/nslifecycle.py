"""kube-apiserver's NamespaceLifecycle admission for creates: a namespaced object is refused in a
namespace that does not exist (404) or is being terminated (403).

As the admission plugin reads a namespace informer rather than storage, the namespaces come from a
watch-fed cache here (a store read per create was ~3 ms of the event loop per pod in a burst: the
pod, its Events); and, as the plugin does, the cache is only trusted to say yes:
- a namespace the cache lacks (made a moment ago, or the cache not synced yet) or shows being
  terminated (it may have been made again since) is read live;
- a namespace this server was asked to delete in the last `FORCE_LIVE_TTL` seconds, which the cache
  still shows active, is read live too (the plugin's forceLiveLookupCache), so a create right after
  `kubectl delete namespace` is refused even before the watch delivers the deletion.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from podbay.api.errors import Forbidden, NotFound
from podbay.store.base import Store

log = logging.getLogger(__name__)

# The plugin's forceLiveLookupTTL.
FORCE_LIVE_TTL = 30.0
# A failed watch is listed again after this pause (its errors are logged once per failure).
RELIST_DELAY = 1.0


def _terminating(ns: dict[str, Any]) -> bool:
    return bool(ns.get("metadata", {}).get("deletionTimestamp"))


class NamespaceLifecycle:
    def __init__(self, store: Store) -> None:
        self._store = store
        # name -> whether it is being terminated; trusted only while `_synced`.
        self._cache: dict[str, bool] = {}
        self._synced = False
        self._force_live: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Fills the cache and keeps it current on the running loop until `stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._synced = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def deleting(self, name: str) -> None:
        """A delete of namespace `name` is under way through this server."""
        now = asyncio.get_running_loop().time()
        self._force_live = {n: t for n, t in self._force_live.items() if t > now}
        self._force_live[name] = now + FORCE_LIVE_TTL

    async def admit_create(self, namespace: str, resource: str, name: str) -> None:
        """Raises what kube-apiserver answers a create of `resource`/`name` in `namespace` with, if anything."""
        active = self._synced and self._cache.get(namespace) is False
        if active and namespace in self._force_live:
            if asyncio.get_running_loop().time() < self._force_live[namespace]:
                active = False
            else:
                del self._force_live[namespace]
        terminating = False
        if not active:
            try:
                terminating = _terminating(await self._store.get("namespaces", "", namespace))
            except NotFound:
                raise NotFound(f'namespaces "{namespace}" not found', kind="namespaces", name=namespace) from None
        if terminating:
            raise Forbidden(
                f'{resource} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                kind=resource,
                name=name,
            )

    async def _run(self) -> None:
        while True:
            try:
                await self._sync()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store's watch ended (compacted, a connection lost): list again
                log.warning("namespace cache: watch failed, listing again", exc_info=True)
            self._synced = False
            await asyncio.sleep(RELIST_DELAY)

    async def _sync(self) -> None:
        items, rv = await self._store.list("namespaces")
        self._cache = {ns["metadata"]["name"]: _terminating(ns) for ns in items}
        self._synced = True
        async for event in self._store.watch("namespaces", None, rv):
            name = event.object.get("metadata", {}).get("name")
            if not name:
                continue
            if event.type == "DELETED":
                self._cache.pop(name, None)
            else:
                self._cache[name] = _terminating(event.object)
