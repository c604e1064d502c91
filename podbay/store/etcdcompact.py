"""The compactor, as kube-apiserver's (compact.go): every interval, the API server whose
compare-and-swap of `compact_rev_key` wins compacts etcd to the revision it saw an
interval earlier, so several API servers on one etcd compact once per interval and
always keep at least one interval of history for watches to resume from."""
from __future__ import annotations

import asyncio
import logging

from podbay.api.errors import ServiceUnavailable, Timeout
from podbay.store.etcdclient import EtcdClient, EtcdError, b64

log = logging.getLogger(__name__)

# Where the compactors of all API servers on one etcd agree (compact.go's compactRevKey).
_COMPACT_REV_KEY = "compact_rev_key"
_OUT_OF_RANGE = 11  # gRPC code of "required revision has been compacted"


async def compact(client: EtcdClient, revision: str) -> None:
    """Drops history before `revision`: a watch from before it is then Gone."""
    try:
        await client.call("/v3/kv/compaction", {"revision": revision})
    except EtcdError as exc:
        # Another API server (or an operator) compacted this far already.
        if exc.grpc_code != _OUT_OF_RANGE:
            raise


async def _compact_once(client: EtcdClient, version: int, revision: int) -> tuple[int, int]:
    """compact.go's compact(): (compact_rev_key's version, this revision) for the next
    round; compacts to `revision` only when this server's compare-and-swap wins."""
    key = b64(_COMPACT_REV_KEY)
    txn = await client.txn(
        [{"key": key, "target": "VERSION", "result": "EQUAL", "version": str(version)}],
        [{"request_put": {"key": key, "value": b64(str(revision))}}],
        key,
    )
    if not txn.succeeded:
        return int(txn.range_kvs()[0]["version"]), txn.revision
    if revision:
        await compact(client, str(revision))
    return version + 1, txn.revision


async def compact_periodically(client: EtcdClient, interval: float) -> None:
    version, revision = 0, 0
    while True:
        await asyncio.sleep(interval)
        try:
            version, revision = await _compact_once(client, version, revision)
        except (EtcdError, ServiceUnavailable, Timeout) as exc:
            log.warning("etcd compaction failed: %s", exc)
