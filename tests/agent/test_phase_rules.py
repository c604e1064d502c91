from datetime import datetime, timezone

import pytest

from podbay.agent.phase import (
    Condition, containers_ready_condition, get_phase, initialized_condition, merge_conditions, ready_condition,
)
from podbay.api import PodCondition
from agent_builders import container, cstatus, pod, running, sidecar, terminated, waiting


def test_pending_until_init_done():
    p = pod([container("a")], init=[container("i")])
    assert get_phase(p, [cstatus("i", running())], [cstatus("a", waiting("PodInitializing"))], False) == "Pending"
    assert get_phase(p, [cstatus("i", terminated(0))], [cstatus("a", running())], False) == "Running"


@pytest.mark.parametrize("policy,phase", [("Never", "Failed"), ("OnFailure", "Pending"), ("Always", "Pending")])
def test_failed_init(policy, phase):
    p = pod([container("a")], init=[container("i")], restart_policy=policy)
    assert get_phase(p, [cstatus("i", terminated(1))], [cstatus("a", waiting("PodInitializing"))], False) == phase


def test_failed_init_waiting_to_restart_counts_as_failed_under_never_only():
    p = pod([container("a")], init=[container("i")], restart_policy="Never")
    assert get_phase(p, [cstatus("i", waiting("CrashLoopBackOff"), last_exit=1)], [cstatus("a", waiting())], False) == "Failed"


@pytest.mark.parametrize("policy,codes,phase", [
    ("Always", [0, 0], "Running"), ("Always", [0, 1], "Running"),
    ("OnFailure", [0, 0], "Succeeded"), ("OnFailure", [0, 1], "Running"),
    ("Never", [0, 0], "Succeeded"), ("Never", [0, 1], "Failed"),
])
def test_all_stopped(policy, codes, phase):
    p = pod([container("a"), container("b")], restart_policy=policy)
    st = [cstatus("a", terminated(codes[0])), cstatus("b", terminated(codes[1]))]
    assert get_phase(p, [], st, False) == phase


def test_terminal_pod_decides_by_exit_codes():
    p = pod([container("a")], restart_policy="Always")
    assert get_phase(p, [], [cstatus("a", terminated(0))], True) == "Succeeded"
    assert get_phase(p, [], [cstatus("a", terminated(2))], True) == "Failed"


def test_waiting_and_unknown_are_pending_and_running_is_running():
    p = pod([container("a"), container("b")])
    assert get_phase(p, [], [cstatus("a", running()), cstatus("b", waiting())], False) == "Pending"
    assert get_phase(p, [], [cstatus("a", running())], False) == "Pending"
    assert get_phase(p, [], [cstatus("a", running()), cstatus("b", waiting("CrashLoopBackOff"), last_exit=1)],
                     False) == "Running"


def test_sidecar_not_started_keeps_pending_and_stopped_sidecar_ignored():
    p = pod([container("a")], init=[sidecar("s")], restart_policy="Never")
    assert get_phase(p, [cstatus("s", running(), started=False)], [cstatus("a", waiting())], False) == "Pending"
    assert get_phase(p, [cstatus("s", running(), started=True)], [cstatus("a", running())], False) == "Running"
    assert get_phase(p, [cstatus("s", terminated(137))], [cstatus("a", terminated(0))], False) == "Succeeded"


def test_initialized_condition():
    p = pod([container("a")], init=[container("i1"), sidecar("s"), container("i2")])
    c = initialized_condition(p, [cstatus("i1", terminated(0)), cstatus("s", running(), started=False)],
                              [cstatus("a", waiting())], "Pending")
    assert c == Condition("Initialized", "False", "ContainersNotInitialized",
                          "containers with unknown status: [i2], containers with incomplete status: [s]")
    done = [cstatus("i1", terminated(0)), cstatus("s", running(), started=True), cstatus("i2", terminated(0))]
    assert initialized_condition(p, done, [cstatus("a", waiting())], "Pending").status == "True"
    assert initialized_condition(pod([container("a")]), [], [], "Pending").status == "True"


def test_ready_conditions_include_sidecars_and_gates():
    p = pod([container("a")], init=[sidecar("s")], gates=["example.com/gate"])
    cr = containers_ready_condition(p, [cstatus("s", running(), ready=False)], [cstatus("a", running(), ready=True)],
                                    "Running")
    assert (cr.status, cr.message) == ("False", "containers with unready status: [s]")
    assert ready_condition(p, cr, "Running").reason == "ContainersNotReady"
    cr = containers_ready_condition(p, [cstatus("s", running(), ready=True)], [cstatus("a", running(), ready=True)],
                                    "Running")
    assert cr.status == "True"
    r = ready_condition(p, cr, "Running")
    assert (r.status, r.reason) == ("False", "ReadinessGatesNotReady")
    p.status.conditions = [PodCondition(type="example.com/gate", status="True")]
    assert ready_condition(p, cr, "Running").status == "True"


def test_succeeded_pod_is_not_ready_with_pod_completed():
    p = pod([container("a")], restart_policy="Never")
    cr = containers_ready_condition(p, [], [cstatus("a", terminated(0))], "Succeeded")
    assert (cr.status, cr.reason) == ("False", "PodCompleted")


def test_merge_keeps_transition_time_when_status_unchanged():
    t = [datetime(2026, 1, 1, 0, 0, second, tzinfo=timezone.utc) for second in range(10)]
    old = [PodCondition(type="PodScheduled", status="True", last_transition_time=t[1]),
           PodCondition(type="Ready", status="False", last_transition_time=t[2]),
           PodCondition(type="Initialized", status="False", last_transition_time=t[3])]
    make = lambda c, ltt: PodCondition(type=c.type, status=c.status, last_transition_time=ltt)  # noqa: E731
    out = merge_conditions(old, [Condition("Ready", "False"), Condition("Initialized", "True")], t[9], make)
    got = {c.type: c.last_transition_time for c in out}
    assert got == {"PodScheduled": t[1], "Ready": t[2], "Initialized": t[9]}
