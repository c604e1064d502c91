"""Pod-level cgroups: crun makes each container's cgroup below the pod's and
removes it with the container; the pod's own directories are ours to remove."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _hierarchies() -> list[Path]:
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]  # pure cgroup v2
    return [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]


def remove_cgroup(path: str) -> None:
    """Removes the cgroup `path` (and its empty parents up to the first non-empty)
    from every hierarchy; a cgroup that still holds processes is left and reported."""
    parts = Path(path.strip("/")).parts
    busy = []
    for hierarchy in _hierarchies():
        # Empty cgroups below it go first: runsc leaves a container's when the container's sandbox
        # went before it; one holding processes makes the rmdir below fail and is reported.
        below = hierarchy.joinpath(*parts)
        for child in sorted((d for d in below.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            with contextlib.suppress(OSError):
                os.rmdir(child)
        for depth in range(len(parts), 0, -1):
            directory = hierarchy.joinpath(*parts[:depth])
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError:
                if depth == len(parts):
                    busy.append(str(directory))
                break
    if busy:
        raise OSError(f"cgroups still in use: {', '.join(busy)}")


def cpu_shares(milli_cpu: int) -> int:
    """The kubelet's MilliCPUToShares: 1024 per CPU, at least 2."""
    return max(2, milli_cpu * 1024 // 1000) if milli_cpu else 2


def cpu_quota(milli_cpu: int, period: int = 100_000) -> int:
    """The kubelet's MilliCPUToQuota, at least 1 ms per period."""
    return max(1000, milli_cpu * period // 1000) if milli_cpu else 0
