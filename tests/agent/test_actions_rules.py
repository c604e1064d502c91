import pytest

from podbay.agent.actions import compute_pod_actions, sandbox_changed
from agent_builders import container, pod, rec, runtime, sidecar
from podbay.api import Probe


def test_new_pod_creates_sandbox_and_starts_all_containers():
    p = pod([container("a"), container("b")])
    a = compute_pod_actions(p, runtime(sandbox=False))
    assert a.create_sandbox and a.containers_to_start == [0, 1] and a.attempt == 0


def test_new_pod_with_init_starts_first_init_only():
    p = pod([container("a")], init=[container("i1"), container("i2")])
    a = compute_pod_actions(p, runtime(sandbox=False))
    assert a.create_sandbox and a.init_containers_to_start == [0] and a.containers_to_start == []


def test_dead_sandbox_is_recreated_with_next_attempt():
    p = pod([container("a")])
    st = runtime(rec("a", "exited", 1), ready=False)
    assert sandbox_changed(p, st) == (True, 1, "sb1")
    a = compute_pod_actions(p, st)
    assert a.kill_pod and a.create_sandbox and a.attempt == 1 and a.containers_to_start == [0]


def test_dead_sandbox_under_never_is_not_recreated():
    p = pod([container("a")], restart_policy="Never")
    a = compute_pod_actions(p, runtime(rec("a", "exited", 0), ready=False))
    assert a.kill_pod and not a.create_sandbox


def test_sandbox_without_ip_is_changed():
    assert sandbox_changed(pod([container("a")]), runtime(ip=None))[0]


def test_init_containers_run_one_at_a_time_in_order():
    p = pod([container("a")], init=[container("i1"), container("i2")])
    a = compute_pod_actions(p, runtime(rec("i1", "running")))
    assert a.init_containers_to_start == [] and a.containers_to_start == []
    a = compute_pod_actions(p, runtime(rec("i1", "exited", 0)))
    assert a.init_containers_to_start == [1] and a.containers_to_start == []
    a = compute_pod_actions(p, runtime(rec("i2", "exited", 0), rec("i1", "exited", 0)))
    assert a.init_containers_to_start == [] and a.containers_to_start == [0]


@pytest.mark.parametrize("policy,kill,restart", [("Always", False, [0]), ("OnFailure", False, [0]), ("Never", True, [])])
def test_failed_init_container_per_restart_policy(policy, kill, restart):
    p = pod([container("a")], init=[container("i1")], restart_policy=policy)
    a = compute_pod_actions(p, runtime(rec("i1", "exited", 3)))
    assert a.kill_pod is kill and a.init_containers_to_start == restart and a.containers_to_start == []


@pytest.mark.parametrize("policy,code,start", [
    ("Always", 0, [0]), ("Always", 1, [0]),
    ("OnFailure", 0, []), ("OnFailure", 1, [0]),
    ("Never", 0, []), ("Never", 1, []),
])
def test_restart_policy_by_exit_code(policy, code, start):
    p = pod([container("a"), container("b")], restart_policy=policy)
    a = compute_pod_actions(p, runtime(rec("a", "exited", code), rec("b", "running")))
    assert a.containers_to_start == start and not a.kill_pod


def test_all_done_kills_pod():
    p = pod([container("a")], restart_policy="OnFailure")
    a = compute_pod_actions(p, runtime(rec("a", "exited", 0)))
    assert a.kill_pod and a.containers_to_start == []


def test_deleted_pod_restarts_nothing():
    p = pod([container("a")], deleting=True)
    a = compute_pod_actions(p, runtime(rec("a", "exited", 1)))
    assert a.containers_to_start == [] and a.kill_pod


def test_image_change_kills_and_recreates_even_under_never():
    p = pod([container("a", image="busybox:2")], restart_policy="Never")
    a = compute_pod_actions(p, runtime(rec("a", "running", image="busybox:1")))
    assert a.containers_to_start == [0] and a.containers_to_kill["id-a"].reason == "Changed"


def test_liveness_failure_kills_and_restarts_per_policy():
    p = pod([container("a")])
    a = compute_pod_actions(p, runtime(rec("a", "running")), liveness={"id-a": False})
    assert a.containers_to_start == [0]
    assert a.containers_to_kill["id-a"].message == "Container a failed liveness probe, will be restarted"
    p = pod([container("a")], restart_policy="Never")
    a = compute_pod_actions(p, runtime(rec("a", "running")), startup={"id-a": False})
    assert a.containers_to_start == [] and a.containers_to_kill["id-a"].reason == "StartupProbe"


def test_unknown_container_is_killed_before_restart():
    p = pod([container("a")])
    a = compute_pod_actions(p, runtime(rec("a", "unknown")))
    assert a.containers_to_start == [0] and "id-a" in a.containers_to_kill


def test_sidecar_started_lets_next_init_run():
    p = pod([container("a")], init=[sidecar("s"), container("i")])
    a = compute_pod_actions(p, runtime(rec("s", "running")))
    assert a.init_containers_to_start == [1]


def test_sidecar_waits_for_startup_probe():
    p = pod([container("a")], init=[sidecar("s", startup_probe=Probe()), container("i")])
    assert compute_pod_actions(p, runtime(rec("s", "running"))).init_containers_to_start == []
    a = compute_pod_actions(p, runtime(rec("s", "running")), startup={"id-s": True})
    assert a.init_containers_to_start == [1]
    a = compute_pod_actions(p, runtime(rec("s", "running")), startup={"id-s": False})
    assert a.init_containers_to_start == [0] and "id-s" in a.containers_to_kill


def test_sidecar_restarts_whatever_the_policy_and_mains_keep_running():
    p = pod([container("a")], init=[sidecar("s")], restart_policy="Never")
    a = compute_pod_actions(p, runtime(rec("a", "running"), rec("s", "exited", 0)))
    assert a.init_containers_to_start == [0] and a.containers_to_start == [] and not a.kill_pod


def test_sidecar_last_init_initializes_pod():
    p = pod([container("a")], init=[container("i"), sidecar("s")])
    a = compute_pod_actions(p, runtime(rec("s", "running"), rec("i", "exited", 0)))
    assert a.containers_to_start == [0] and a.init_containers_to_start == []


def test_sidecar_does_not_keep_finished_pod_alive():
    p = pod([container("a")], init=[sidecar("s")], restart_policy="OnFailure")
    a = compute_pod_actions(p, runtime(rec("a", "exited", 0), rec("s", "running")))
    assert a.kill_pod and a.init_containers_to_start == []


def test_completed_init_removed_after_initialization_is_not_rerun():
    p = pod([container("a")], init=[container("i")])
    a = compute_pod_actions(p, runtime(rec("a", "running")))
    assert a.init_containers_to_start == [] and a.containers_to_start == [] and not a.kill_pod


def test_created_init_container_is_started_again():
    p = pod([container("a")], init=[container("i")])
    assert compute_pod_actions(p, runtime(rec("i", "created"))).init_containers_to_start == [0]


def test_ephemeral_container_starts_once_and_is_never_restarted() -> None:
    p = pod([container("main")], ephemeral=[container("debugger")])
    assert compute_pod_actions(p, runtime(rec("main", "running"))).ephemeral_containers_to_start == [0]
    for state, code in (("running", None), ("exited", 0), ("exited", 1)):
        actions = compute_pod_actions(p, runtime(rec("main", "running"), rec("debugger", state, code)))
        assert actions.ephemeral_containers_to_start == [] and not actions.kill_pod


def test_ephemeral_container_waits_for_the_sandbox_and_not_for_init() -> None:
    p = pod([container("main")], init=[container("init")], ephemeral=[container("debugger")])
    assert compute_pod_actions(p, runtime(sandbox=False)).ephemeral_containers_to_start == []
    assert compute_pod_actions(p, runtime(rec("init", "running"))).ephemeral_containers_to_start == [0]
