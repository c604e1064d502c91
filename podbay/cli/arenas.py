"""glibc's malloc arenas in a long-running podbay process."""
from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # malloc.h
ARENAS = 1


def limit_malloc_arenas() -> None:
    """One arena for every thread (glibc's MALLOC_ARENA_MAX=1), set before the process starts any.

    glibc gives each thread that allocates an arena of its own, up to eight per core, and what a
    thread frees stays resident in its arena. The server's threads (asyncio.to_thread's workers,
    the SQLite store's COMMITs) run Python under the GIL or wait on fsync, so separate arenas spare them no waiting, only
    memory (bench/README.md, "Memory: the server's base"). A libc without mallopt (musl) is left as it is."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(M_ARENA_MAX, ARENAS)
