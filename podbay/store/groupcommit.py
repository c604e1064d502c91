"""Group commit for the SQLite store: one writer thread runs the writes queued meanwhile in one
transaction, so concurrent writers share a single COMMIT (and its fsync) instead of each stalling
the event loop for its own — what etcd's raft log does for concurrent proposals.

Each write runs in its own SAVEPOINT, in the order submitted, against the transaction's view (so a
write sees every earlier write of its batch, exactly as if they ran one after another): a write that
raises (AlreadyExists, Conflict, NotFound) is rolled back alone and its caller gets the exception;
the others commit. A caller learns its result only after the COMMIT returned, so a write reported
done is durable (with `synchronous=FULL`). When the COMMIT fails (a full disk) every write of the
batch fails with that error and none is stored.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

# Writes per transaction at most: bounds how long one batch holds SQLite's write lock against
# writers in other processes.
MAX_BATCH = 512


@dataclass
class _Write(Generic[T]):
    run: Callable[[sqlite3.Connection], T]
    future: concurrent.futures.Future[T] = field(default_factory=concurrent.futures.Future)


class GroupCommitter:
    """Runs writes on `conn` (which only this committer may use from now on) in its own thread.
    `committed` is called in that thread after each successful COMMIT, before the writers learn
    their results; `translate` turns a failed BEGIN/COMMIT's error into the one callers get."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        committed: Callable[[], None],
        translate: Callable[[BaseException], BaseException],
    ) -> None:
        self._conn = conn
        self._committed = committed
        self._translate = translate
        self._queue: queue.SimpleQueue[_Write[object] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sqlite-group-commit", daemon=True)
        self._thread.start()

    async def run(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """`write(conn)`'s result once its transaction has committed; its exception if it raised."""
        item: _Write[T] = _Write(write)
        self._queue.put(item)  # type: ignore[arg-type]  # the queue holds writes of any result type
        return await asyncio.wrap_future(item.future)

    def close(self) -> None:
        """Finishes the writes already queued, stops the thread and closes the connection."""
        self._queue.put(None)
        self._thread.join()
        self._conn.close()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)
            if stopping:
                return

    def _commit(self, batch: list[_Write[object]]) -> None:
        conn = self._conn
        # A caller cancelled before its write started is skipped; once started it cannot be.
        batch = [w for w in batch if w.future.set_running_or_notify_cancel()]
        if not batch:
            return
        outcomes: list[tuple[object, BaseException | None]] = []
        try:
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
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            for write in batch:
                write.future.set_exception(self._translate(exc))
            return
        if any(exc is None for _, exc in outcomes):
            self._committed()
        for write, (result, error) in zip(batch, outcomes):
            if error is None:
                write.future.set_result(result)
            else:
                write.future.set_exception(error)
