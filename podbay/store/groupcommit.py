"""Group commit for the SQLite store: the writes that arrive while a COMMIT is in progress run next
in one transaction, so concurrent writers share a single COMMIT (and its fsync) instead of each
stalling the event loop for its own — what etcd's raft log does for concurrent proposals.

The writes' statements run on the event loop (each takes microseconds against SQLite's page
cache); only the COMMIT, which waits for the fsync, runs in a thread. Handing every statement to a
thread instead costs a hand-over of the interpreter's lock per statement, and on a loaded machine
each hand-over waits for the scheduler.

Each write runs in its own SAVEPOINT, in the order submitted, against the transaction's view (so a
write sees every earlier write of its batch, exactly as if they ran one after another): a write that
raises (AlreadyExists, Conflict, NotFound) is rolled back alone and its caller gets the exception;
the others commit. A caller learns its result only after the COMMIT returned, so a write reported
done is durable (with `synchronous=FULL`). When the transaction fails (a full disk) every write of
the batch fails with that error and none is stored.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")

# Writes per transaction at most: bounds how long one batch holds SQLite's write lock against
# writers in other processes, and the loop's time running one batch's statements.
MAX_BATCH = 512


@dataclass
class _Write:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


class GroupCommitter:
    """Runs writes on `conn` (which only this committer may use from now on). `committed` is called
    after each successful COMMIT, before the writers learn their results; `translate` turns a failed
    transaction's error into the one callers get."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        committed: Callable[[], None],
        translate: Callable[[BaseException], BaseException],
    ) -> None:
        self._conn = conn
        self._committed = committed
        self._translate = translate
        self._pending: list[_Write] = []
        self._lock = threading.Lock()  # the pending list and the flushing task, across loops
        self._flushing: asyncio.Task[None] | None = None
        self._commits = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")

    async def run(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """`write(conn)`'s result once its transaction has committed; its exception if it raised."""
        loop = asyncio.get_running_loop()
        item = _Write(write, loop.create_future())
        with self._lock:
            self._pending.append(item)
            if self._flushing is None or self._flushing.done() or self._flushing.get_loop().is_closed():
                self._flushing = loop.create_task(self._flush())
        result: T = await item.future
        return result

    async def close(self) -> None:
        """Finishes the writes already queued (on this loop), then closes the connection."""
        with self._lock:
            flushing = self._flushing
        if flushing is not None and flushing.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(flushing)
        await asyncio.to_thread(self._commits.shutdown, wait=True)
        self._conn.close()

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                if not batch:
                    self._flushing = None
                    return
            # A caller cancelled before its write ran is skipped; once run, its write stands.
            batch = [w for w in batch if not w.future.cancelled()]
            if not batch:
                continue
            outcomes = await self._commit(loop, batch)
            for write, (result, error) in zip(batch, outcomes):
                _settle(write.future, result, error)

    async def _commit(self, loop: asyncio.AbstractEventLoop,
                      batch: list[_Write]) -> list[tuple[Any, BaseException | None]]:
        conn = self._conn
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            if conn.in_transaction:  # a COMMIT whose batch was cancelled with its loop failed: undo it
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            for write in batch:
                conn.execute("SAVEPOINT write")
                try:
                    outcomes.append((write.run(conn), None))
                except Exception as exc:  # the write's own failure: undo it alone
                    if not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back (SQLITE_FULL does)
                    conn.execute("ROLLBACK TO write")
                    outcomes.append((None, exc))
                conn.execute("RELEASE write")
            # Shielded: were this task cancelled (its loop closing), the COMMIT still finishes in its
            # thread, and the next batch's statements wait for it on the connection's mutex.
            await asyncio.shield(loop.run_in_executor(self._commits, conn.execute, "COMMIT"))
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return [(None, self._translate(exc)) for _ in batch]
        if any(error is None for _, error in outcomes):
            self._committed()
        return outcomes


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Resolves `future` from whichever loop the batch ran on."""
    def settle() -> None:
        if future.cancelled():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
    else:
        with contextlib.suppress(RuntimeError):  # that loop has closed
            loop.call_soon_threadsafe(settle)
