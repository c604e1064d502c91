"""Resident memory of processes, from /proc: RSS and PSS (smaps_rollup), in KiB."""
from __future__ import annotations

from pathlib import Path


def rss_pss_kib(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def total_kib(pids: list[int]) -> tuple[int, int]:
    rss = pss = 0
    for pid in pids:
        r, p = rss_pss_kib(pid)
        rss, pss = rss + r, pss + p
    return rss, pss


def children_named(name: str, under_cmdline: str) -> list[int]:
    """PIDs of processes called `name` whose command line mentions `under_cmdline` (a root path),
    so only the benchmark's own processes are counted."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if comm == name and under_cmdline in cmdline:
            out.append(int(proc.name))
    return out
