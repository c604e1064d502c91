"""The kubelet's hard eviction thresholds (--eviction-hard), parsed. Apart from the eviction
rules (podbay.agent.eviction) so that the command line validates the flag without loading them."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from podbay.api.quantity import parse_quantity

# The kubelet's DefaultEvictionHard on Linux.
DEFAULT_EVICTION_HARD = ("memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,"
                         "imagefs.available<15%,imagefs.inodesFree<5%")

# Each signal and the node condition it drives (the kubelet's signalToNodeCondition).
SIGNAL_CONDITION = {
    "memory.available": "MemoryPressure",
    "allocatableMemory.available": "MemoryPressure",
    "nodefs.available": "DiskPressure",
    "nodefs.inodesFree": "DiskPressure",
    "imagefs.available": "DiskPressure",
    "imagefs.inodesFree": "DiskPressure",
    "pid.available": "PIDPressure",
}


@dataclass(frozen=True)
class Threshold:
    signal: str
    quantity: int | None = None  # an absolute amount (bytes, inodes or pids) ...
    percentage: Fraction | None = None  # ... or a share of the capacity (0.1 for 10%)

    def limit(self, capacity: int) -> Fraction:
        return Fraction(self.quantity) if self.quantity is not None else (self.percentage or Fraction(0)) * capacity


def parse_thresholds(text: str) -> list[Threshold]:
    """`signal<value,...` as the kubelet's --eviction-hard; ValueError names a bad item."""
    out: list[Threshold] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        signal, op, value = item.partition("<")
        if not op:
            raise ValueError(f"invalid eviction threshold {item!r}: only the operator '<' is supported")
        if signal not in SIGNAL_CONDITION:
            raise ValueError(f"unsupported eviction signal {signal}")
        if any(t.signal == signal for t in out):
            raise ValueError(f"found duplicate eviction threshold for signal {signal}")
        if value.endswith("%"):
            if value in ("0%", "100%"):
                continue  # the kubelet ignores both: one is never met, the other always
            share = Fraction(value[:-1]) / 100
            if share < 0:
                raise ValueError(f"eviction percentage threshold {signal} must be >= 0%: {value}")
            if share > 1:
                raise ValueError(f"eviction percentage threshold {signal} must be <= 100%: {value}")
            out.append(Threshold(signal, percentage=share))
        else:
            amount = parse_quantity(value)
            if amount <= 0:
                raise ValueError(f"eviction threshold {signal} must be positive: {value}")
            out.append(Threshold(signal, quantity=int(amount)))
    return out
