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

It speaks etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`,
`/v3/kv/compaction`) with aiohttp, which podbay already depends on: fully
asynchronous, no gRPC stack. Several endpoints are tried in order, sticking to
the last one that answered.
"""
from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Literal

import aiohttp

from podbay.api.errors import AlreadyExists, Gone, InternalError, NotFound, ServiceUnavailable, Timeout
from podbay.api.jsoncodec import decode, encode
from podbay.store.base import FieldSelectorArg, LabelSelectorArg, WatchEvent
from podbay.store.shared import (
    MODIFIED,
    as_field_selector,
    as_label_selector,
    bookmark,
    check_delete_preconditions,
    conflict,
    matches,
    parse_rv,
    stamp,
    translate,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/registry"
DEFAULT_COMPACTION_INTERVAL = 300.0  # kube-apiserver's --etcd-compaction-interval: 5m
# kube-apiserver's resource prefixes where they differ from the resource's name.
_RESOURCE_PREFIX = {"nodes": "minions"}
# Where the compactors of all API servers on one etcd agree (compact.go's compactRevKey).
_COMPACT_REV_KEY = "compact_rev_key"
_OUT_OF_RANGE = 11  # gRPC code of "required revision has been compacted"
# gRPC codes etcd answers with when it cannot commit: UNAVAILABLE (no leader, leader changed,
# "request timed out" while a quorum is missing) and DEADLINE_EXCEEDED.
_UNAVAILABLE, _DEADLINE_EXCEEDED = 14, 4
_NO_QUORUM_CODES = frozenset({_UNAVAILABLE, _DEADLINE_EXCEEDED})
_ELECTION_WAIT = 10.0  # seconds a request is retried while etcd elects a leader (a few election timeouts)
_RETRY_MIN, _RETRY_MAX = 0.1, 5.0  # seconds between attempts to watch again while etcd is away

JSONObject = dict[str, Any]


class EtcdError(InternalError):
    """etcd refused a request (the gRPC status it answered with)."""

    def __init__(self, message: str, grpc_code: int) -> None:
        super().__init__(message)
        self.grpc_code = grpc_code


def _unavailable(message: str, grpc_code: int) -> Timeout | ServiceUnavailable:
    """etcd's "cannot commit now" as the API's Status. kube-apiserver passes etcd's words on as a
    500 InternalError; podbay says what the client may do. A timed-out request may still be
    committed once etcd has a quorum again: 504 Timeout (read before writing again). Anything
    else (no leader, leader changed) was not applied: 503 ServiceUnavailable, retry."""
    text = f"etcd cannot serve the request now (is a majority of its members up?): {message}"
    if grpc_code == _DEADLINE_EXCEEDED or "timed out" in message:
        return Timeout(text)
    return ServiceUnavailable(text)


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def _unb64(data: str) -> bytes:
    return base64.b64decode(data)


def _prefix_end(prefix: str) -> str:
    """The range_end that makes a range cover every key starting with `prefix`."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def _encode(obj: JSONObject) -> str:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return base64.b64encode(encode({**obj, "metadata": meta})).decode()


def _decode(kv: JSONObject, rev: int | None = None) -> JSONObject:
    """The object in `kv`, its resourceVersion `rev` or else the key's mod_revision."""
    return stamp(decode(_unb64(kv["value"])), rev if rev is not None else int(kv["mod_revision"]))


def _compare_mod(key: str, result: Literal["EQUAL", "GREATER"], revision: int) -> JSONObject:
    return {"key": key, "target": "MOD", "result": result, "mod_revision": str(revision)}


def _rv_int(rv: str) -> int | None:
    try:
        return int(rv)
    except ValueError:
        return None


@dataclass(frozen=True)
class _Txn:
    succeeded: bool
    revision: int
    responses: list[JSONObject]
    ambiguous: bool  # an earlier attempt may have been committed (see EtcdStore._put)

    def range_kvs(self) -> list[JSONObject]:
        """The kvs of the failure branch's range (the key as it is now)."""
        return self.responses[0].get("response_range", {}).get("kvs", []) if self.responses else []


class EtcdStore:
    def __init__(
        self,
        endpoints: list[str],
        prefix: str = DEFAULT_PREFIX,
        *,
        request_timeout: float = 30.0,
    ) -> None:
        if not endpoints:
            raise ValueError("the etcd store needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._request_timeout = request_timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None
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
            store._compactor = asyncio.create_task(store._compact_periodically(compaction_interval))
        return store

    # -- the gateway ---------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Every watch holds a connection for as long as it streams: no pool limit, or more
            # watches than the limit would leave no connection for a write.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def _open(self, path: str, body: JSONObject, timeout: float | None) -> aiohttp.ClientResponse:
        """A response from the first endpoint that answers, starting with the last good one."""
        last: Exception | None = None
        for i in range(len(self.endpoints)):
            index = (self._current + i) % len(self.endpoints)
            try:
                resp = await self._http().post(
                    f"{self.endpoints[index]}{path}",
                    json=body,
                    timeout=aiohttp.ClientTimeout(total=timeout, connect=5),
                )
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                last = exc
                continue
            self._current = index
            return resp
        raise ServiceUnavailable(f"etcd is unreachable at {','.join(self.endpoints)}: {last}")

    async def _call(self, path: str, body: JSONObject) -> JSONObject:
        return (await self._call_through_elections(path, body))[0]

    async def _call_through_elections(self, path: str, body: JSONObject) -> tuple[JSONObject, bool]:
        """etcd's answer, and whether an earlier attempt failed in a way that leaves unknown if it
        was applied. A member lost takes etcd an election (a second or two) during which it answers
        "leader changed" or "no leader": the request is sent again for up to `_ELECTION_WAIT`, so
        clients see a pause, not an error; past that (no majority) etcd's refusal is the answer."""
        deadline = asyncio.get_running_loop().time() + _ELECTION_WAIT
        delay, ambiguous = _RETRY_MIN, False
        while True:
            try:
                return await self._call_once(path, body), ambiguous
            except (Timeout, ServiceUnavailable) as exc:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                # A write that timed out or met a leader change may yet be committed.
                ambiguous = ambiguous or "no leader" not in str(exc)
                log.info("etcd %s retried: %s", path, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _call_once(self, path: str, body: JSONObject) -> JSONObject:
        try:
            async with await self._open(path, body, self._request_timeout) as resp:
                answer: JSONObject = await resp.json(content_type=None, loads=decode)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ServiceUnavailable(f"etcd request {path} failed: {exc}") from exc
        if "error" in answer or resp.status != 200:
            message, code = str(answer.get("message") or answer.get("error")), int(answer.get("code", 2))
            if code in _NO_QUORUM_CODES:
                raise _unavailable(message, code)
            raise EtcdError(message, code)
        return answer

    async def _range(self, body: JSONObject) -> tuple[list[JSONObject], int]:
        answer = await self._call("/v3/kv/range", body)
        return answer.get("kvs", []), int(answer["header"]["revision"])

    async def _txn(self, compare: list[JSONObject], success: list[JSONObject], key: str) -> _Txn:
        """A transaction whose failure branch reads `key`."""
        answer, ambiguous = await self._call_through_elections(
            "/v3/kv/txn",
            {"compare": compare, "success": success, "failure": [{"request_range": {"key": key}}]},
        )
        return _Txn(bool(answer.get("succeeded")), int(answer["header"]["revision"]), answer.get("responses", []),
                    ambiguous)

    async def _put(self, compare: JSONObject, key: str, value: str) -> _Txn:
        """A conditional put. When an attempt's outcome was unknown and the next one's compare
        fails on a key holding exactly `value`, the first attempt was committed: that is success
        (the value holds the object's uid and timestamps, so no other writer made it)."""
        txn = await self._txn([compare], [{"request_put": {"key": key, "value": value}}], key)
        kvs = txn.range_kvs()
        if not txn.succeeded and txn.ambiguous and kvs and kvs[0].get("value") == value:
            return _Txn(True, int(kvs[0]["mod_revision"]), txn.responses, True)
        return txn

    # -- keys ----------------------------------------------------------------

    def _key_prefix(self, resource: str, namespace: str | None) -> str:
        base = f"{self.prefix}/{_RESOURCE_PREFIX.get(resource, resource)}/"
        return f"{base}{namespace}/" if namespace else base

    def _key(self, resource: str, namespace: str, name: str) -> str:
        return _b64(self._key_prefix(resource, namespace) + name)

    # -- the Store interface -------------------------------------------------

    async def create(self, resource: str, namespace: str, obj: JSONObject) -> JSONObject:
        name = obj.get("metadata", {}).get("name", "")
        key = self._key(resource, namespace, name)
        txn = await self._put(_compare_mod(key, "EQUAL", 0), key, _encode(obj))
        if not txn.succeeded:
            raise AlreadyExists(f'{resource} "{name}" already exists', kind=resource, name=name)
        return stamp(obj, txn.revision)

    async def get(self, resource: str, namespace: str, name: str) -> JSONObject:
        kvs, _ = await self._range({"key": self._key(resource, namespace, name)})
        if not kvs:
            raise NotFound(f'{resource} "{name}" not found', kind=resource, name=name)
        return _decode(kvs[0])

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
        kvs, rev = await self._range({"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        items = [obj for obj in map(_decode, kvs) if matches(obj, labels, fields)]
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
            compare = _compare_mod(key, "EQUAL", expected)
        else:
            compare = _compare_mod(key, "GREATER", 0)  # it exists
        txn = await self._put(compare, key, _encode(obj))
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
        kvs, _ = await self._range({"key": key})
        while True:
            if not kvs:
                raise NotFound(f'{resource} "{name}" not found', kind=resource, name=name)
            current = _decode(kvs[0])
            check_delete_preconditions(resource, name, current["metadata"], expected_uid, expected_rv)
            txn = await self._txn(
                [_compare_mod(key, "EQUAL", int(kvs[0]["mod_revision"]))],
                [{"request_delete_range": {"key": key}}],
                key,
            )
            if txn.succeeded or (txn.ambiguous and not txn.range_kvs()):
                # Gone after an attempt of unknown outcome: that attempt deleted it.
                return stamp(current, txn.revision)
            # Changed since it was read: the preconditions are checked again on what is there now.
            kvs = txn.range_kvs()

    async def current_revision(self) -> str:
        _, rev = await self._range({"key": _b64(self.prefix + "/"), "count_only": True})
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
        prefix = self._key_prefix(resource, namespace)
        # The revision up to which every change has been yielded; None: from now on.
        seen = parse_rv(since_rv) if since_rv else None
        delay = _RETRY_MIN
        while True:
            # progress_notify: etcd then reports, every --experimental-watch-progress-notify-interval
            # (10 min by default), the revision this watch has caught up to: a bookmark.
            create: JSONObject = {"key": _b64(prefix), "range_end": _prefix_end(prefix), "prev_kv": True,
                                  "progress_notify": bookmarks}
            if seen is not None:
                # A resourceVersion names the last change seen; etcd's start_revision the first wanted.
                create["start_revision"] = str(seen + 1)
            try:
                resp = await self._open("/v3/watch", {"create_request": create}, None)
            except ServiceUnavailable as exc:
                log.info("etcd watch on %s waits for etcd: %s", prefix, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            try:
                async for message in _messages(resp):
                    if "error" in message:
                        raise EtcdError(str(message["error"].get("message")), int(message["error"].get("code", 2)))
                    result = message.get("result", {})
                    if result.get("canceled"):
                        compacted = result.get("compact_revision")
                        if compacted:
                            raise Gone(f"too old resource version: {seen} ({compacted})")
                        raise EtcdError(f"etcd cancelled the watch: {result.get('cancel_reason', '')}", 1)
                    revision = int(result["header"]["revision"])
                    if result.get("created"):
                        delay = _RETRY_MIN
                        seen = revision if seen is None else seen
                        continue
                    events = result.get("events", [])
                    if not events:  # a progress notification
                        seen = max(seen or 0, revision)
                        if bookmarks:
                            yield bookmark(seen)
                        continue
                    for event in events:
                        seen = int(event["kv"]["mod_revision"])
                        change = _change(event)
                        if change is None:
                            continue
                        out = translate(change[0], change[1], change[2], labels, fields)
                        if out is not None:
                            yield out
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                log.info("etcd watch on %s broke: %s", prefix, exc)
            finally:
                resp.close()
            # etcd went away (a restart, a failover): resume right after what was yielded, as
            # etcd's own client does, so the API's watchers see nothing but a pause.
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    async def compact(self, revision: str) -> None:
        """Drops history before `revision`: a watch from before it is then Gone."""
        try:
            await self._call("/v3/kv/compaction", {"revision": revision})
        except EtcdError as exc:
            # Another API server (or an operator) compacted this far already.
            if exc.grpc_code != _OUT_OF_RANGE:
                raise

    async def _compact_once(self, version: int, revision: int) -> tuple[int, int]:
        """compact.go's compact(): (compact_rev_key's version, this revision) for the next
        round; compacts to `revision` only when this server's compare-and-swap wins."""
        key = _b64(_COMPACT_REV_KEY)
        txn = await self._txn(
            [{"key": key, "target": "VERSION", "result": "EQUAL", "version": str(version)}],
            [{"request_put": {"key": key, "value": _b64(str(revision))}}],
            key,
        )
        if not txn.succeeded:
            return int(txn.range_kvs()[0]["version"]), txn.revision
        if revision:
            await self.compact(str(revision))
        return version + 1, txn.revision

    async def _compact_periodically(self, interval: float) -> None:
        version, revision = 0, 0
        while True:
            await asyncio.sleep(interval)
            try:
                version, revision = await self._compact_once(version, revision)
            except (EtcdError, ServiceUnavailable, Timeout) as exc:
                log.warning("etcd compaction failed: %s", exc)

    async def close(self) -> None:
        if self._compactor is not None:
            self._compactor.cancel()
            await asyncio.gather(self._compactor, return_exceptions=True)
            self._compactor = None
        if self._session is not None:
            await self._session.close()
            self._session = None




def _change(event: JSONObject) -> tuple[str, JSONObject, JSONObject | None] | None:
    """(type, object, object before) of an etcd watch event, typed as etcd3/watcher.go does."""
    kv = event["kv"]
    prev = event.get("prev_kv")
    if event.get("type") == "DELETE":
        if prev is None:
            log.warning("etcd sent a deletion of %s without its previous value", _unb64(kv["key"]).decode())
            return None
        return "DELETED", _decode(prev, int(kv["mod_revision"])), None
    type_ = "ADDED" if kv.get("create_revision") == kv.get("mod_revision") else "MODIFIED"
    return type_, _decode(kv), _decode(prev) if prev is not None else None


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
