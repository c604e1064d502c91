"""Summaries of repeated measurements: min / median / p90 / max."""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    n: int
    min: float
    median: float
    p90: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarise(samples: list[float]) -> Summary:
    ordered = sorted(samples)
    # Nearest-rank p90: the value below which 90 % of the samples lie.
    rank = max(0, -(-9 * len(ordered) // 10) - 1)
    return Summary(len(ordered), ordered[0], statistics.median(ordered), ordered[rank], ordered[-1])


def ratio(peer: float, ours: float) -> float:
    """How many times faster (or smaller) podbay is than the peer."""
    return peer / ours if ours else float("inf")
