"""etcd's KV API over its v3 JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`,
`/v3/kv/compaction`) with aiohttp, which podbay already depends on: fully asynchronous,
no gRPC stack. Several endpoints are tried in order, sticking to the last one that
answered; requests are sent again while etcd elects a leader.
"""
from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from podbay.api.errors import InternalError, ServiceUnavailable, Timeout
from podbay.api.jsoncodec import decode

log = logging.getLogger(__name__)

# gRPC codes etcd answers with when it cannot commit: UNAVAILABLE (no leader, leader changed,
# "request timed out" while a quorum is missing) and DEADLINE_EXCEEDED.
_UNAVAILABLE, _DEADLINE_EXCEEDED = 14, 4
_NO_QUORUM_CODES = frozenset({_UNAVAILABLE, _DEADLINE_EXCEEDED})
_ELECTION_WAIT = 10.0  # seconds a request is retried while etcd elects a leader (a few election timeouts)
RETRY_MIN = 0.1  # seconds before the first retry

JSONObject = dict[str, Any]


class EtcdError(InternalError):
    """etcd refused a request (the gRPC status it answered with)."""

    def __init__(self, message: str, grpc_code: int) -> None:
        super().__init__(message)
        self.grpc_code = grpc_code


def _timed_out(message: str) -> bool:
    """etcd's server timed out ("request timed out"), or its gRPC gateway's own call to it did:
    the gateway answers that one as code 2, Unknown, with Go's "context deadline exceeded"."""
    return "timed out" in message or "context deadline exceeded" in message


def _unavailable(message: str, grpc_code: int) -> Timeout | ServiceUnavailable:
    """etcd's "cannot commit now" as the API's Status. kube-apiserver passes etcd's words on as a
    500 InternalError; podbay says what the client may do. A timed-out request may still be
    committed once etcd has a quorum again: 504 Timeout (read before writing again). Anything
    else (no leader, leader changed) was not applied: 503 ServiceUnavailable, retry."""
    text = f"etcd cannot serve the request now (is a majority of its members up?): {message}"
    if grpc_code == _DEADLINE_EXCEEDED or _timed_out(message):
        return Timeout(text)
    return ServiceUnavailable(text)


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def unb64(data: str) -> bytes:
    return base64.b64decode(data)


def prefix_end(prefix: str) -> str:
    """The range_end that makes a range cover every key starting with `prefix`."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def compare_mod(key: str, result: Literal["EQUAL", "GREATER"], revision: int) -> JSONObject:
    return {"key": key, "target": "MOD", "result": result, "mod_revision": str(revision)}


@dataclass(frozen=True)
class Txn:
    succeeded: bool
    revision: int
    responses: list[JSONObject]
    ambiguous: bool  # an earlier attempt may have been committed (see EtcdClient.put)

    def range_kvs(self) -> list[JSONObject]:
        """The kvs of the failure branch's range (the key as it is now)."""
        return self.responses[0].get("response_range", {}).get("kvs", []) if self.responses else []


class EtcdClient:
    def __init__(self, endpoints: list[str], request_timeout: float) -> None:
        if not endpoints:
            raise ValueError("the etcd store needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self._request_timeout = request_timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Every watch holds a connection for as long as it streams: no pool limit, or more
            # watches than the limit would leave no connection for a write.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def open(self, path: str, body: JSONObject, timeout: float | None) -> aiohttp.ClientResponse:
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

    async def call(self, path: str, body: JSONObject) -> JSONObject:
        return (await self._call_through_elections(path, body))[0]

    async def _call_through_elections(self, path: str, body: JSONObject) -> tuple[JSONObject, bool]:
        """etcd's answer, and whether an earlier attempt failed in a way that leaves unknown if it
        was applied. A member lost takes etcd an election (a second or two) during which it answers
        "leader changed" or "no leader": the request is sent again for up to `_ELECTION_WAIT`, so
        clients see a pause, not an error; past that (no majority) etcd's refusal is the answer."""
        deadline = asyncio.get_running_loop().time() + _ELECTION_WAIT
        delay, ambiguous = RETRY_MIN, False
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
            async with await self.open(path, body, self._request_timeout) as resp:
                answer: JSONObject = await resp.json(content_type=None, loads=decode)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ServiceUnavailable(f"etcd request {path} failed: {exc}") from exc
        if "error" in answer or resp.status != 200:
            message, code = str(answer.get("message") or answer.get("error")), int(answer.get("code", 2))
            if code in _NO_QUORUM_CODES or _timed_out(message):
                raise _unavailable(message, code)
            raise EtcdError(message, code)
        return answer

    async def range(self, body: JSONObject) -> tuple[list[JSONObject], int]:
        answer = await self.call("/v3/kv/range", body)
        return answer.get("kvs", []), int(answer["header"]["revision"])

    async def txn(self, compare: list[JSONObject], success: list[JSONObject], key: str) -> Txn:
        """A transaction whose failure branch reads `key`."""
        answer, ambiguous = await self._call_through_elections(
            "/v3/kv/txn",
            {"compare": compare, "success": success, "failure": [{"request_range": {"key": key}}]},
        )
        return Txn(bool(answer.get("succeeded")), int(answer["header"]["revision"]), answer.get("responses", []),
                   ambiguous)

    async def put(self, compare: JSONObject, key: str, value: str) -> Txn:
        """A conditional put. When an attempt's outcome was unknown and the next one's compare
        fails on a key holding exactly `value`, the first attempt was committed: that is success
        (the value holds the object's uid and timestamps, so no other writer made it)."""
        txn = await self.txn([compare], [{"request_put": {"key": key, "value": value}}], key)
        kvs = txn.range_kvs()
        if not txn.succeeded and txn.ambiguous and kvs and kvs[0].get("value") == value:
            return Txn(True, int(kvs[0]["mod_revision"]), txn.responses, True)
        return txn

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
