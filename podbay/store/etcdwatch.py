"""Watches (kube-apiserver's etcd3 watcher.go): an etcd watch from since_rv + 1 with
prev_kv (the filter needs the object before a change), watched again from where it was
when etcd goes away; etcd cancelling it as compacted is 410 Gone."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import AsyncGenerator, AsyncIterator

import aiohttp

from podbay.api.errors import Gone, ServiceUnavailable
from podbay.api.jsoncodec import decode
from podbay.store.base import WatchEvent
from podbay.store.etcdclient import RETRY_MIN, EtcdClient, EtcdError, JSONObject, b64, prefix_end, unb64
from podbay.store.etcdcodec import decode_kv
from podbay.store.selectors import FieldSelector, LabelSelector
from podbay.store.shared import bookmark, translate

log = logging.getLogger(__name__)

_RETRY_MAX = 5.0  # seconds between attempts to watch again while etcd is away


@dataclass
class _Watch:
    prefix: str
    labels: LabelSelector
    fields: FieldSelector
    bookmarks: bool
    seen: int | None  # the revision up to which every change has been yielded; None: from now on
    delay: float = RETRY_MIN  # before watching again

    def create_request(self) -> JSONObject:
        # progress_notify: etcd then reports, every --experimental-watch-progress-notify-interval
        # (10 min by default), the revision this watch has caught up to: a bookmark.
        create: JSONObject = {"key": b64(self.prefix), "range_end": prefix_end(self.prefix), "prev_kv": True,
                              "progress_notify": self.bookmarks}
        if self.seen is not None:
            # A resourceVersion names the last change seen; etcd's start_revision the first wanted.
            create["start_revision"] = str(self.seen + 1)
        return {"create_request": create}

    async def back_off(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, _RETRY_MAX)

    def events(self, message: JSONObject) -> list[WatchEvent]:
        """What one message of the stream brings to the watcher, in order."""
        if "error" in message:
            raise EtcdError(str(message["error"].get("message")), int(message["error"].get("code", 2)))
        result = message.get("result", {})
        if result.get("canceled"):
            compacted = result.get("compact_revision")
            if compacted:
                raise Gone(f"too old resource version: {self.seen} ({compacted})")
            raise EtcdError(f"etcd cancelled the watch: {result.get('cancel_reason', '')}", 1)
        revision = int(result["header"]["revision"])
        if result.get("created"):
            self.delay = RETRY_MIN
            self.seen = revision if self.seen is None else self.seen
            return []
        events = result.get("events", [])
        if not events:  # a progress notification
            self.seen = max(self.seen or 0, revision)
            return [bookmark(self.seen)] if self.bookmarks else []
        out = []
        for event in events:
            self.seen = int(event["kv"]["mod_revision"])
            change = _change(event)
            if change is not None:
                translated = translate(change[0], change[1], change[2], self.labels, self.fields)
                if translated is not None:
                    out.append(translated)
        return out


async def watch_prefix(client: EtcdClient, prefix: str, seen: int | None, labels: LabelSelector,
                       fields: FieldSelector, bookmarks: bool) -> AsyncGenerator[WatchEvent, None]:
    watch = _Watch(prefix, labels, fields, bookmarks, seen)
    while True:
        try:
            resp = await client.open("/v3/watch", watch.create_request(), None)
        except ServiceUnavailable as exc:
            log.info("etcd watch on %s waits for etcd: %s", prefix, exc)
            await watch.back_off()
            continue
        try:
            async for message in _messages(resp):
                for event in watch.events(message):
                    yield event
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            log.info("etcd watch on %s broke: %s", prefix, exc)
        finally:
            resp.close()
        # etcd went away (a restart, a failover): resume right after what was yielded, as
        # etcd's own client does, so the API's watchers see nothing but a pause.
        await watch.back_off()


def _change(event: JSONObject) -> tuple[str, JSONObject, JSONObject | None] | None:
    """(type, object, object before) of an etcd watch event, typed as etcd3/watcher.go does."""
    kv = event["kv"]
    prev = event.get("prev_kv")
    if event.get("type") == "DELETE":
        if prev is None:
            log.warning("etcd sent a deletion of %s without its previous value", unb64(kv["key"]).decode())
            return None
        return "DELETED", decode_kv(prev, int(kv["mod_revision"])), None
    type_ = "ADDED" if kv.get("create_revision") == kv.get("mod_revision") else "MODIFIED"
    return type_, decode_kv(kv), decode_kv(prev) if prev is not None else None


async def _messages(resp: aiohttp.ClientResponse) -> AsyncIterator[JSONObject]:
    """The gateway's stream: one JSON message per line (values are base64, so no line is
    split by its content); read in chunks so a large object is not a line too long."""
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield decode(line)
