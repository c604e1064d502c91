from typing import Any

from podbay.agent.prober import ProbeManager, ProbeTarget
from podbay.agent.probestate import ProbeState, probe_timing
from podbay.api import ExecAction, Probe
from tests.agent.agent_builders import container, pod


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


async def test_a_pods_probe_timers_change_with_its_own_sync_only() -> None:
    # Probes an hour away: the timers exist, none runs (the runtime is never reached).
    later = probe(exec=ExecAction(command=["true"]), initial_delay_seconds=3600)
    probed = container("c", readiness_probe=later, liveness_probe=later)

    async def no_failure(*_: object) -> None:
        raise AssertionError("no probe runs")

    probes = ProbeManager(None, lambda uid: None, no_failure)  # type: ignore[arg-type]
    a, b = pod([probed]), pod([probed])
    probes.set_pod("uid-a", [ProbeTarget(a, probed, "ca", None, None, False)])
    probes.set_pod("uid-b", [ProbeTarget(b, probed, "cb", None, None, False)])
    assert (probes.result("readiness", "ca"), probes.result("liveness", "ca")) == (False, True)
    assert (probes.result("readiness", "cb"), probes.result("liveness", "cb")) == (False, True)
    # Pod a's container was replaced: its old timers go, pod b's stay.
    probes.set_pod("uid-a", [ProbeTarget(a, probed, "ca2", None, None, False)])
    assert probes.result("readiness", "ca") is None and probes.result("readiness", "ca2") is False
    assert probes.result("readiness", "cb") is False
    probes.set_pod("uid-a", [])
    assert probes.known("readiness") == {"cb": False} and probes.known("liveness") == {"cb": True}
    probes.set_pod("uid-b", [])
    assert probes.known("readiness") == {} and probes.known("liveness") == {}
    await probes.close()
