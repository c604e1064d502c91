from typing import Any

from podbay.agent.probestate import ProbeState, probe_timing
from podbay.api import Probe


def probe(**kw: Any) -> Probe:
    return Probe(**kw)


def test_defaults():
    t = probe_timing(probe())
    assert (t.initial_delay, t.period, t.timeout, t.success_threshold, t.failure_threshold) == (0, 10, 1, 1, 3)


def test_liveness_fails_after_threshold_then_holds():
    s = ProbeState("liveness", probe_timing(probe(failure_threshold=2, initial_delay_seconds=5)))
    assert s.result is True
    assert not s.due(4) and s.due(5)
    assert s.observe(False) is False and s.result is True
    assert s.observe(True) is False
    assert s.observe(False) is False
    assert s.observe(False) is True and s.result is False
    assert s.on_hold and not s.due(100)


def test_readiness_starts_unready_and_flips_both_ways():
    s = ProbeState("readiness", probe_timing(probe(success_threshold=2, failure_threshold=1)))
    assert s.result is False
    assert s.observe(True) is False
    assert s.observe(True) is True and s.result is True
    assert s.observe(False) is True and s.result is False
    assert not s.on_hold


def test_startup_unknown_until_success():
    s = ProbeState("startup", probe_timing(probe()))
    assert s.result is None
    assert s.observe(True) is True and s.result is True
