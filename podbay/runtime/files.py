"""State files the runtime keeps (written whole or not at all) and the pid files crun and conmon write."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from podbay.runtime.syscalls import exchange

T = TypeVar("T")


def spare_path(path: Path) -> Path:
    """Where `write_json_atomic` writes `path`'s next content; it holds the one before after a write."""
    return path.with_name(f".{path.name}.tmp")


def write_json_atomic(path: Path, data: Any) -> None:
    """A reader never sees half a file: write beside it, then swap it in.

    An existing file is exchanged with the new one, not renamed over: on ext4 a rename over an
    existing file first writes the new file's data out (its `auto_da_alloc` guard for programs
    that skip fsync), a synchronous wait on the event loop of ~0.2 ms idle and several under
    load, several times per pod. The old content stays in the spare beside it and the next write
    overwrites it in place: creating and unlinking a file each wait on ext4's journal (most of a
    record's save under load), rewriting a block already allocated does not. Not fsynced either
    way; `remove_json` removes both."""
    tmp = spare_path(path)
    body = json.dumps(data, default=str).encode()
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666), "wb") as spare:
        spare.write(body)
        spare.truncate()  # its old content may be longer
    try:
        swapped = exchange(str(tmp), str(path))
    except FileNotFoundError:  # the first write: its spare is made in the same call (off the loop, for some)
        os.replace(tmp, path)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
        return
    if not swapped:
        os.replace(tmp, path)


def remove_json(path: Path) -> None:
    """Removes a file `write_json_atomic` wrote, and its spare."""
    path.unlink(missing_ok=True)
    spare_path(path).unlink(missing_ok=True)


def read_pid_file(path: Path) -> int | None:
    """The pid in a pid file; None while it is missing or not yet written."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class ParsedFile(Generic[T]):
    """A file's parsed content, parsed again only once the file changed (another inode, mtime or
    size: a replaced file has another inode), not read and parsed on the event loop per use."""

    def __init__(self, path: Path, parse: Callable[[Path], T]) -> None:
        self.path = path
        self._parse = parse
        self._parsed: tuple[tuple[int, int, int], T] | None = None

    def read(self) -> T | None:
        """The content, or None when the file cannot be found."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._parsed is None or self._parsed[0] != stamp:
            self._parsed = stamp, self._parse(self.path)
        return self._parsed[1]
