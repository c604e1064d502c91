"""The etcd store: kube-apiserver's etcd3 storage, over etcd's JSON gRPC gateway.

- Keys are kube-apiserver's: `<prefix>/<resource>/<namespace>/<name>` for
  namespaced objects, `<prefix>/<resource>/<name>` for cluster-scoped ones, with
  nodes under `minions`; values are the objects as JSON without
  resourceVersion (kube-apiserver's `--storage-media-type=application/json`).
- An object's resourceVersion is its key's mod_revision; a deleted object
  carries the deletion's revision. Create, update and delete are transactions
  comparing mod_revision (0 for create: the key is absent).
- A list is one range at one revision: the response header's.
- A watch is an etcd watch from since_rv + 1 with prev_kv (the filter needs the
  object before a change), watched again from where it was when etcd goes away;
  etcd cancelling it as compacted is 410 Gone.
- The compactor does what kube-apiserver's compactor does (compact.go): every
  interval, the API server whose compare-and-swap of `compact_rev_key` wins
  compacts etcd to the revision it saw an interval earlier, so several API
  servers on one etcd compact once per interval and always keep at least one
  interval of history for watches to resume from.

The gateway client is etcdclient.py, the watcher etcdwatch.py, the compactor
etcdcompact.py, the value codec etcdcodec.py.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from podbay.api.errors import AlreadyExists, NotFound
from podbay.store.base import FieldSelectorArg, LabelSelectorArg, WatchEvent
from podbay.store.etcdclient import EtcdClient, JSONObject, b64, compare_mod, prefix_end
from podbay.store.etcdcodec import decode_kv, encode_value
from podbay.store.etcdcompact import compact, compact_periodically
from podbay.store.etcdwatch import watch_prefix
from podbay.store.shared import (
    MODIFIED,
    as_field_selector,
    as_label_selector,
    check_delete_preconditions,
    conflict,
    matches,
    parse_rv,
    stamp,
)

DEFAULT_PREFIX = "/registry"
DEFAULT_COMPACTION_INTERVAL = 300.0  # kube-apiserver's --etcd-compaction-interval: 5m
# kube-apiserver's resource prefixes where they differ from the resource's name.
_RESOURCE_PREFIX = {"nodes": "minions"}


def _rv_int(rv: str) -> int | None:
    try:
        return int(rv)
    except ValueError:
        return None


class EtcdStore:
    def __init__(
        self,
        endpoints: list[str],
        prefix: str = DEFAULT_PREFIX,
        *,
        request_timeout: float = 30.0,
    ) -> None:
        self.client = EtcdClient(endpoints, request_timeout)
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._compactor: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        endpoints: list[str],
        prefix: str = DEFAULT_PREFIX,
        *,
        compaction_interval: float = DEFAULT_COMPACTION_INTERVAL,
    ) -> "EtcdStore":
        """A store that has reached etcd once, compacting every `compaction_interval`
        seconds (0: never, for when another API server or an operator compacts)."""
        store = cls(endpoints, prefix)
        try:
            await store.current_revision()
        except BaseException:
            await store.close()
            raise
        if compaction_interval > 0:
            store._compactor = asyncio.create_task(compact_periodically(store.client, compaction_interval))
        return store

    # -- keys ----------------------------------------------------------------

    def _key_prefix(self, resource: str, namespace: str | None) -> str:
        base = f"{self.prefix}/{_RESOURCE_PREFIX.get(resource, resource)}/"
        return f"{base}{namespace}/" if namespace else base

    def _key(self, resource: str, namespace: str, name: str) -> str:
        return b64(self._key_prefix(resource, namespace) + name)

    # -- the Store interface -------------------------------------------------

    async def create(self, resource: str, namespace: str, obj: JSONObject) -> JSONObject:
        name = obj.get("metadata", {}).get("name", "")
        key = self._key(resource, namespace, name)
        txn = await self.client.put(compare_mod(key, "EQUAL", 0), key, encode_value(obj))
        if not txn.succeeded:
            raise AlreadyExists(f'{resource} "{name}" already exists', kind=resource, name=name)
        return stamp(obj, txn.revision)

    async def get(self, resource: str, namespace: str, name: str) -> JSONObject:
        kvs, _ = await self.client.range({"key": self._key(resource, namespace, name)})
        if not kvs:
            raise NotFound(f'{resource} "{name}" not found', kind=resource, name=name)
        return decode_kv(kvs[0])

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: LabelSelectorArg = None,
        field_selector: FieldSelectorArg = None,
    ) -> tuple[list[JSONObject], str]:
        labels = as_label_selector(label_selector)
        fields = as_field_selector(field_selector, resource)
        prefix = self._key_prefix(resource, namespace)
        kvs, rev = await self.client.range({"key": b64(prefix), "range_end": prefix_end(prefix)})
        items = [obj for obj in map(decode_kv, kvs) if matches(obj, labels, fields)]
        # Keys sort "a-b/" before "a/"; the contract is (namespace, name) order.
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"].get("name", "")))
        return items, str(rev)

    async def update(
        self,
        resource: str,
        namespace: str,
        name: str,
        obj: JSONObject,
        expected_rv: str | None = None,
    ) -> JSONObject:
        key = self._key(resource, namespace, name)
        if expected_rv:
            expected = _rv_int(expected_rv)
            if expected is None:
                raise conflict(resource, name, MODIFIED)
            compare = compare_mod(key, "EQUAL", expected)
        else:
            compare = compare_mod(key, "GREATER", 0)  # it exists
        txn = await self.client.put(compare, key, encode_value(obj))
        if not txn.succeeded:
            if not txn.range_kvs():
                raise NotFound(f'{resource} "{name}" not found', kind=resource, name=name)
            raise conflict(resource, name, MODIFIED)
        return stamp(obj, txn.revision)

    async def delete(
        self,
        resource: str,
        namespace: str,
        name: str,
        expected_rv: str | None = None,
        expected_uid: str | None = None,
    ) -> JSONObject:
        key = self._key(resource, namespace, name)
        kvs, _ = await self.client.range({"key": key})
        while True:
            if not kvs:
                raise NotFound(f'{resource} "{name}" not found', kind=resource, name=name)
            current = decode_kv(kvs[0])
            check_delete_preconditions(resource, name, current["metadata"], expected_uid, expected_rv)
            txn = await self.client.txn(
                [compare_mod(key, "EQUAL", int(kvs[0]["mod_revision"]))],
                [{"request_delete_range": {"key": key}}],
                key,
            )
            if txn.succeeded or (txn.ambiguous and not txn.range_kvs()):
                # Gone after an attempt of unknown outcome: that attempt deleted it.
                return stamp(current, txn.revision)
            # Changed since it was read: the preconditions are checked again on what is there now.
            kvs = txn.range_kvs()

    async def current_revision(self) -> str:
        _, rev = await self.client.range({"key": b64(self.prefix + "/"), "count_only": True})
        return str(rev)

    async def watch(
        self,
        resource: str,
        namespace: str | None = None,
        since_rv: str | None = None,
        label_selector: LabelSelectorArg = None,
        field_selector: FieldSelectorArg = None,
        bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent]:
        labels = as_label_selector(label_selector)
        fields = as_field_selector(field_selector, resource)
        seen = parse_rv(since_rv) if since_rv else None
        # Closed with this generator, so the watch's connection goes when its watcher does.
        async with contextlib.aclosing(watch_prefix(self.client, self._key_prefix(resource, namespace), seen,
                                                    labels, fields, bookmarks)) as events:
            async for event in events:
                yield event

    async def compact(self, revision: str) -> None:
        """Drops history before `revision`: a watch from before it is then Gone."""
        await compact(self.client, revision)

    async def close(self) -> None:
        if self._compactor is not None:
            self._compactor.cancel()
            await asyncio.gather(self._compactor, return_exceptions=True)
            self._compactor = None
        await self.client.close()
