"""What every Store backend does the same way: selector arguments, resourceVersion
parsing, Kubernetes' conflict messages and its watch filter."""
from __future__ import annotations

from typing import Any

from podbay.api.errors import BadRequest, Conflict
from podbay.store.base import FieldSelectorArg, LabelSelectorArg, WatchEvent
from podbay.store.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)

MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def as_label_selector(sel: LabelSelectorArg) -> LabelSelector:
    return sel if isinstance(sel, LabelSelector) else parse_label_selector(sel)


def as_field_selector(sel: FieldSelectorArg, resource: str) -> FieldSelector:
    return sel if isinstance(sel, FieldSelector) else parse_field_selector(sel, resource)


def matches(obj: dict[str, Any], labels: LabelSelector, fields: FieldSelector) -> bool:
    return labels.matches(obj.get("metadata", {}).get("labels")) and fields.matches(obj)


def parse_rv(rv: str, what: str = "resourceVersion") -> int:
    try:
        value = int(rv)
    except (TypeError, ValueError):
        value = -1
    # Revisions are signed 64-bit in etcd and SQLite alike: a larger one would overflow a query.
    if not 0 <= value <= 2**63 - 1:
        raise BadRequest(f'invalid {what}: "{rv}"')
    return value


def conflict(resource: str, name: str, why: str) -> Conflict:
    return Conflict(f'Operation cannot be fulfilled on {resource} "{name}": {why}', kind=resource, name=name)


def check_delete_preconditions(
    resource: str, name: str, meta: dict[str, Any], expected_uid: str | None, expected_rv: str | None
) -> None:
    if expected_uid and meta.get("uid") != expected_uid:
        raise conflict(
            resource,
            name,
            f"Precondition failed: UID in precondition: {expected_uid}, "
            f"UID in object meta: {meta.get('uid', '')}",
        )
    if expected_rv and meta["resourceVersion"] != str(expected_rv):
        raise conflict(
            resource,
            name,
            f"Precondition failed: ResourceVersion in precondition: {expected_rv}, "
            f"ResourceVersion in object meta: {meta['resourceVersion']}",
        )


def stamp(obj: dict[str, Any], rev: int) -> dict[str, Any]:
    """A shallow copy carrying `rev` as its resourceVersion."""
    obj = dict(obj)
    obj["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(rev)}
    return obj


def bookmark(revision: int | str) -> WatchEvent:
    """A watch's promise that every change up to `revision` has been delivered."""
    return WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": str(revision)}})


def translate(
    type_: str,
    obj: dict[str, Any],
    prev: dict[str, Any] | None,
    labels: LabelSelector,
    fields: FieldSelector,
) -> WatchEvent | None:
    """A change as the filtered watcher sees it (Kubernetes' watch filter)."""
    if labels.empty() and fields.empty():
        return WatchEvent(type_, obj)  # type: ignore[arg-type]  # type_ is a history row's ADDED/MODIFIED/DELETED
    now = matches(obj, labels, fields)
    if type_ == "ADDED":
        return WatchEvent("ADDED", obj) if now else None
    if type_ == "DELETED":
        return WatchEvent("DELETED", obj) if now else None
    before = prev is not None and matches(prev, labels, fields)
    if now and before:
        return WatchEvent("MODIFIED", obj)
    if now:
        return WatchEvent("ADDED", obj)
    if before:
        return WatchEvent("DELETED", obj)
    return None
