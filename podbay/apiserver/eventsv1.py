"""events.k8s.io/v1 Events: the stored core v1 Events, converted when read as kube-apiserver
converts between the two versions of the one resource (pkg/apis/events/v1 conversion): message is
`note`, involvedObject `regarding`, source `deprecatedSource`, count `deprecatedCount`, the first and
last timestamps `deprecatedFirstTimestamp`/`deprecatedLastTimestamp`, reportingComponent
`reportingController`. Read-only here (get, list); writers and watchers use core v1.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web

from podbay.apiserver.status import HTTPError
from podbay.store.base import Store
from podbay.store.selectors import parse_field_selector, parse_label_selector

GROUP_VERSION = "events.k8s.io/v1"
_RENAMED = {"message": "note", "involvedObject": "regarding", "source": "deprecatedSource",
            "count": "deprecatedCount", "firstTimestamp": "deprecatedFirstTimestamp",
            "lastTimestamp": "deprecatedLastTimestamp", "reportingComponent": "reportingController"}
_KEPT = ("metadata", "reason", "type", "eventTime", "series", "action", "related", "reportingInstance")


def to_events_v1(event: dict[str, Any]) -> dict[str, Any]:
    """A stored core v1 Event as events.k8s.io/v1 serves it (eventTime is null when never set)."""
    out: dict[str, Any] = {"kind": "Event", "apiVersion": GROUP_VERSION, "eventTime": None}
    for key, value in event.items():
        if key in _RENAMED:
            out[_RENAMED[key]] = value
        elif key in _KEPT:
            out[key] = value
    return out


def _parse(tail: str) -> tuple[str | None, str | None]:
    """(namespace, name) of a path below /apis/events.k8s.io/v1/."""
    parts = [p for p in tail.split("/") if p]
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    if not parts or parts[0] != "events" or len(parts) > 2 or (len(parts) == 2 and namespace is None):
        raise HTTPError(404, "NotFound", "the server could not find the requested resource")
    return namespace, parts[1] if len(parts) == 2 else None


def handler(store: Store) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            raise HTTPError(405, "MethodNotAllowed", f"{request.method} is not supported on {GROUP_VERSION} "
                                                     "here: events are written through core v1")
        namespace, name = _parse(request.match_info["tail"])
        if name is not None:
            return web.json_response(to_events_v1(await store.get("events", namespace or "", name)))
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), "events")
        if request.query.get("watch") in ("1", "true"):
            raise HTTPError(405, "MethodNotAllowed", f"watch is not supported on {GROUP_VERSION} here; "
                                                     "watch core v1 events")
        items, rv = await store.list("events", namespace, labels, fields)
        return web.json_response({"kind": "EventList", "apiVersion": GROUP_VERSION,
                                  "metadata": {"resourceVersion": rv},
                                  "items": [{k: v for k, v in to_events_v1(i).items()
                                             if k not in ("kind", "apiVersion")} for i in items]})

    return dispatch
