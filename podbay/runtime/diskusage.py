"""How much disk a directory tree takes, measured as the kubelet's volume metrics do (du)."""
from __future__ import annotations

import os
from pathlib import Path


def disk_usage(path: Path, max_entries: int = 1_000_000) -> int:
    """Bytes of disk the tree at `path` takes (as `du -s -x`): allocated blocks, each inode
    counted once, not crossing into other filesystems. The walk stops after `max_entries`
    entries, so a tree of millions of files costs bounded time; what was counted by then is
    already a lower bound to compare with a limit."""
    try:
        root = os.lstat(path)
    except OSError:
        return 0
    total, seen, entries = root.st_blocks * 512, {root.st_ino}, 0
    stack = [path]
    while stack and entries < max_entries:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if st.st_dev != root.st_dev or st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except OSError:
            continue
    return total
