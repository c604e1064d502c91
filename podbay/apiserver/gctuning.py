"""The garbage collector's thresholds in a process that serves the API.

A list decodes every stored object into fresh dicts that all stay alive until the response is
written: 10,000 pods are ~500,000 tracked containers, and with CPython's default thresholds (700,
10, 10) their allocation sets off hundreds of young collections and several full ones over the
growing heap — measured at about two thirds of a 10,000-pod list's CPU (`bench/README.md`). The
objects are freed by reference counting when the response is sent; cycles are rare, so collecting
less often costs little memory.
"""
from __future__ import annotations

import gc

# Young-generation allocations between collections, and the older generations' multipliers.
THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """Raises the thresholds (never lowers them: an embedding process may have chosen its own)."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(c, t) for c, t in zip(current, THRESHOLDS)))
