"""The storage contract: objects as dicts, keyed by (resource, namespace, name).

Small on purpose: everything here maps onto etcd (a revisioned key-value
store with transactions on mod_revision and watch from a revision), so the
etcd backend replaces SQLite without touching the API server. Every method is
a coroutine because a backend may be across the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Literal, Protocol

from podbay.store.selectors import FieldSelector, LabelSelector

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True)
class WatchEvent:
    type: EventType
    object: dict[str, Any]


LabelSelectorArg = str | LabelSelector | None
FieldSelectorArg = str | FieldSelector | None


class Store(Protocol):
    async def create(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Stores a new object; sets metadata.resourceVersion. AlreadyExists."""

    async def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        """NotFound when absent."""

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: LabelSelectorArg = None,
        field_selector: FieldSelectorArg = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Matching objects sorted by (namespace, name), and the store's revision."""

    async def update(
        self,
        resource: str,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        expected_rv: str | None = None,
    ) -> dict[str, Any]:
        """Replaces the object; Conflict when expected_rv is not the current one."""

    async def delete(
        self,
        resource: str,
        namespace: str,
        name: str,
        expected_rv: str | None = None,
        expected_uid: str | None = None,
    ) -> dict[str, Any]:
        """Removes the object; returns it carrying the deletion's resourceVersion."""

    def watch(
        self,
        resource: str,
        namespace: str | None = None,
        since_rv: str | None = None,
        label_selector: LabelSelectorArg = None,
        field_selector: FieldSelectorArg = None,
        bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent]:
        """Changes after since_rv (or from now), in revision order. Gone when too old.
        With `bookmarks`, now and then also a BOOKMARK whose object has only
        metadata.resourceVersion: every change up to it has been yielded."""

    async def current_revision(self) -> str:
        """The revision of the latest write (what a list would report)."""

    async def close(self) -> None: ...
