"""The embedded store: one SQLite file in WAL mode.

- `meta.revision` is a global counter bumped by every write; it is every
  object's resourceVersion, as etcd's revision is in Kubernetes.
- `history` keeps the last `history_limit` writes (object after and before)
  so a watch can resume from a resourceVersion; `meta.compacted` is the
  newest revision no longer kept, and resuming from before it is Gone.
- Writers take `BEGIN IMMEDIATE` with a busy timeout, so concurrent writers
  in this process (a lock) and in other processes (SQLite's write lock)
  serialise instead of failing, and a check-then-write is atomic.
- Watchers are woken by a `WatchNotifier` (sqlitenotify.py): right after each
X
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from podbay.api.errors import AlreadyExists, Gone, NotFound, StorageFull
from podbay.api.jsoncodec import decode, encode_str
from podbay.store.base import FieldSelectorArg, LabelSelectorArg, WatchEvent
from podbay.store.groupcommit import GroupCommitter
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
from podbay.store.sqlitenotify import WatchNotifier

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS history (
    rv INTEGER PRIMARY KEY, resource TEXT NOT NULL, namespace TEXT NOT NULL,
    name TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, prev TEXT
);
CREATE INDEX IF NOT EXISTS history_resource ON history (resource, rv);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0), ('compacted', 0);
"""

# Rows fetched per history query while a watcher catches up.
_BATCH = 512
# History rows (rv, type, data, prev). Named here because inside SQLiteStore `list` is its method.
_HistoryRows = list[tuple[int, str, str, str | None]]


def _disk_full(exc: BaseException | None) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _storage_error(exc: BaseException) -> BaseException:
    """What the writers of a batch whose transaction failed are told."""
    return StorageFull(str(exc)) if _disk_full(exc) else exc


class SQLiteStore:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        history_limit: int = 10_000,
        poll_interval: float = 0.5,
        bookmark_interval: float = 60.0,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 30_000,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.history_limit = history_limit
        # How often an idle watch that asked for bookmarks gets one (kube-apiserver's watch
        # cache sends them about once a minute).
        self.bookmark_interval = bookmark_interval
        # Writes go through one connection owned by the group committer's thread, so their COMMITs
        # (and fsyncs) never run on an event loop; reads use their own connection under a lock
        # (they may come from a thread, asyncio.to_thread, as well as the loop) and, WAL being
        # snapshot isolation for readers, never wait for a write.
        timeout = busy_timeout_ms / 1000
        writer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute(f"PRAGMA synchronous={synchronous}")
        writer.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        writer.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                writer.execute(statement)
        writer.execute("COMMIT")
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self._lock = threading.RLock()
        self._notifier = WatchNotifier(self._data_version, poll_interval)
        self._changed: set[str] = set()  # resources the writes since the last commit recorded
        self._writer = GroupCommitter(writer, self._committed, _storage_error)
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: its statements see one snapshot."""
        with self._lock:
            self._conn.execute("BEGIN DEFERRED")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def _committed(self) -> None:
        changed, self._changed = self._changed, set()
        self._notifier.notify(changed)

    def _bump(self, conn: sqlite3.Connection) -> int:
        rev: int
        (rev,) = conn.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value"
        ).fetchone()
        if rev % 64 == 0:
            self._compact(conn, rev)
        return rev

    def _compact(self, conn: sqlite3.Connection, rev: int) -> None:
        horizon = rev - self.history_limit
        if horizon <= 0:
            return
        conn.execute("DELETE FROM history WHERE rv <= ?", (horizon,))
        conn.execute(
            "UPDATE meta SET value = max(value, ?) WHERE key = 'compacted'", (horizon,)
        )

    @staticmethod
    def _meta(conn: sqlite3.Connection, key: str) -> int:
        value: int = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
        return value

    def _record(
        self,
        conn: sqlite3.Connection,
        rev: int,
        key: tuple[str, str, str],
        type_: str,
        obj: dict[str, Any],
        prev: dict[str, Any] | None,
    ) -> None:
        self._changed.add(key[0])
        conn.execute(
            "INSERT INTO history (rv, resource, namespace, name, type, data, prev) VALUES (?,?,?,?,?,?,?)",
            (rev, *key, type_, encode_str(obj), encode_str(prev) if prev is not None else None),
        )

    @staticmethod
    def _load(conn: sqlite3.Connection, key: tuple[str, str, str]) -> dict[str, Any] | None:
        row = conn.execute(
            "SELECT data FROM objects WHERE resource = ? AND namespace = ? AND name = ?", key
        ).fetchone()
        return decode(row[0]) if row else None

    # -- the Store interface -------------------------------------------------

    async def create(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj.get("metadata", {}).get("name", "")
        key = (resource, namespace, name)

        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            if conn.execute(
                "SELECT 1 FROM objects WHERE resource = ? AND namespace = ? AND name = ?", key
            ).fetchone() is not None:
                raise AlreadyExists(f'{resource} "{name}" already exists', kind=resource, name=name)
            rev = self._bump(conn)
            stored = stamp(obj, rev)
            conn.execute(
                "INSERT INTO objects (resource, namespace, name, rv, data) VALUES (?,?,?,?,?)",
                (*key, rev, encode_str(stored)),
            )
            self._record(conn, rev, key, "ADDED", stored, None)
            return stored
        return await self._writer.run(write)

    async def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self._load(self._conn, (resource, namespace, name))
        if obj is None:
            raise NotFound(f'{resource} "{name}" not found', kind=resource, name=name)
        return obj

    async def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: LabelSelectorArg = None,
        field_selector: FieldSelectorArg = None,
    ) -> tuple[list[dict[str, Any]], str]:
        labels = as_label_selector(label_selector)
        fields = as_field_selector(field_selector, resource)
        with self._read() as conn:
            if namespace is None:
                rows = conn.execute(
                    "SELECT data FROM objects WHERE resource = ? ORDER BY namespace, name", (resource,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT data FROM objects WHERE resource = ? AND namespace = ? ORDER BY name",
                    (resource, namespace),
                ).fetchall()
            rev = self._meta(conn, "revision")
        items = [obj for obj in (decode(r[0]) for r in rows) if matches(obj, labels, fields)]
        return items, str(rev)

    async def update(
        self,
        resource: str,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        expected_rv: str | None = None,
    ) -> dict[str, Any]:
        key = (resource, namespace, name)

        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            old = self._load(conn, key)
            if old is None:
                raise NotFound(f'{resource} "{name}" not found', kind=resource, name=name)
            if expected_rv and old["metadata"]["resourceVersion"] != str(expected_rv):
                raise conflict(resource, name, MODIFIED)
            rev = self._bump(conn)
            stored = stamp(obj, rev)
            conn.execute(
                "UPDATE objects SET rv = ?, data = ? WHERE resource = ? AND namespace = ? AND name = ?",
                (rev, encode_str(stored), *key),
            )
            self._record(conn, rev, key, "MODIFIED", stored, old)
            return stored
        return await self._writer.run(write)

    async def delete(
        self,
        resource: str,
        namespace: str,
        name: str,
        expected_rv: str | None = None,
        expected_uid: str | None = None,
    ) -> dict[str, Any]:
        key = (resource, namespace, name)

        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            old = self._load(conn, key)
            if old is None:
                raise NotFound(f'{resource} "{name}" not found', kind=resource, name=name)
            check_delete_preconditions(resource, name, old["metadata"], expected_uid, expected_rv)
            rev = self._bump(conn)
            gone = stamp(old, rev)
            conn.execute(
                "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?", key
            )
            self._record(conn, rev, key, "DELETED", gone, old)
            return gone
        return await self._writer.run(write)

    async def current_revision(self) -> str:
        return str(self._revision())

    def _revision(self) -> int:
        with self._lock:
            return self._meta(self._conn, "revision")

    def compacted_revision(self) -> str:
        with self._lock:
            return str(self._meta(self._conn, "compacted"))

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
        loop = asyncio.get_running_loop()
        next_bookmark = loop.time() + self.bookmark_interval
        wake = asyncio.Event()
        cursor = parse_rv(since_rv) if since_rv else self._revision()
        self._notifier.add(loop, wake, resource)
        try:
            while True:
                wake.clear()
                rows, revision = self._history_after(resource, namespace, cursor)
                for rv, type_, data, prev in rows:
                    cursor = rv
                    event = translate(type_, decode(data), decode(prev) if prev is not None else None, labels, fields)
                    if event is not None:
                        yield event
                if len(rows) >= _BATCH:
                    continue
                # Caught up: every change up to `revision` has been yielded. The cursor moves there
                # too, so a watch of a quiet resource is not Gone once other resources' writes have
                # compacted the history past its last event (etcd's watch stays valid likewise).
                cursor = max(cursor, revision)
                if bookmarks and loop.time() >= next_bookmark:
                    yield bookmark(revision)
                    next_bookmark = loop.time() + self.bookmark_interval
                if bookmarks:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(wake.wait(), next_bookmark - loop.time())
                else:
                    await wake.wait()
        finally:
            self._notifier.discard(loop, wake, resource)

    def _history_after(
        self, resource: str, namespace: str | None, cursor: int
    ) -> tuple[_HistoryRows, int]:
        """History rows after `cursor` (a batch at most) and the store's revision they were read at."""
        sql = "SELECT rv, type, data, prev FROM history WHERE resource = ? AND rv > ?"
        args: tuple[Any, ...] = (resource, cursor)
        if namespace is not None:
            sql += " AND namespace = ?"
            args += (namespace,)
        with self._read() as conn:
            rows = conn.execute(sql + f" ORDER BY rv LIMIT {_BATCH}", args).fetchall()
            compacted = self._meta(conn, "compacted")
            revision = self._meta(conn, "revision")
        if cursor < compacted:
            raise Gone(f"too old resource version: {cursor} ({compacted})")
        return rows, revision

    def _data_version(self) -> int:
        with self._lock:
            version: int = self._conn.execute("PRAGMA data_version").fetchone()[0]
            return version

    async def close(self) -> None:
        self._notifier.close()
        await self._writer.close()
        with self._lock:
            self._conn.close()

