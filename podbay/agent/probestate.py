"""Probe result bookkeeping, as the kubelet's prober worker (prober/worker.go). Pure.

The agent runs one timer per (container, probe type); each probe outcome goes
through `ProbeState.observe`, which applies the thresholds and says whether the
published result changed.
"""
from __future__ import annotations

from dataclasses import dataclass

from podbay.api import Probe


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int
    termination_grace: int | None  # probe-level terminationGracePeriodSeconds


def probe_timing(probe: Probe) -> ProbeTiming:
    """The probe's timing, a field unset or 0 taking the API's default (a delay of 0 is 0)."""
    return ProbeTiming(probe.initial_delay_seconds or 0, probe.period_seconds or 10, probe.timeout_seconds or 1,
                       probe.success_threshold or 1, probe.failure_threshold or 3,
                       probe.termination_grace_period_seconds)


def initial_result(probe_type: str) -> bool | None:
    """Readiness starts failed, liveness passed, startup unknown."""
    return {"readiness": False, "liveness": True, "startup": None}[probe_type]


@dataclass
class ProbeState:
    probe_type: str  # "liveness" | "readiness" | "startup"
    timing: ProbeTiming
    result: bool | None = None
    last: bool | None = None
    run: int = 0
    on_hold: bool = False  # liveness/startup failed: wait for a new container

    def __post_init__(self) -> None:
        self.result = initial_result(self.probe_type)

    def due(self, seconds_since_start: float) -> bool:
        return not self.on_hold and seconds_since_start >= self.timing.initial_delay

    def observe(self, success: bool) -> bool:
        """Records one probe outcome; returns True when the published result changed."""
        self.run = self.run + 1 if self.last == success else 1
        self.last = success
        needed = self.timing.success_threshold if success else self.timing.failure_threshold
        if self.run < needed:
            return False
        changed = self.result != success
        self.result = success
        if not success and self.probe_type in ("liveness", "startup"):
            self.on_hold = True
            self.run = 0
        return changed
