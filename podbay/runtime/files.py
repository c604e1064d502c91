"""State files the runtime keeps (written whole or not at all) and the pid files crun and conmon write."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from podbay.runtime.syscalls import exchange


def write_json_atomic(path: Path, data: Any) -> None:
    """A reader never sees half a file: write beside it, then swap it in.

    An existing file is exchanged with the new one, not renamed over: on ext4 a rename over an
    existing file first writes the new file's data out (its `auto_da_alloc` guard for programs
    that skip fsync), a synchronous wait on the event loop of ~0.2 ms idle and several under
    load, several times per pod. Records are not fsynced either way."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, default=str))
    try:
        swapped = exchange(str(tmp), str(path))
    except FileNotFoundError:  # the first write
        swapped = False
    if swapped:
        tmp.unlink()
    else:
        os.replace(tmp, path)


def read_pid_file(path: Path) -> int | None:
    """The pid in a pid file; None while it is missing or not yet written."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
