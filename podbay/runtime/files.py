"""State files the runtime keeps (written whole or not at all) and the pid files crun and conmon write."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """A reader never sees half a file: write beside it, then rename over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def read_pid_file(path: Path) -> int | None:
    """The pid in a pid file; None while it is missing or not yet written."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
