"""kubectl's pod columns (printPod) and ages, as pure functions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from podbay.api import Pod
from podbay.api.printing import human_duration, pod_row
from podbay.api.serialize import from_dict, to_dict
from podbay.cli.common import table
from podbay.cli.describe import describe_pod, event_age

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)


def make(spec: dict, status: dict, **meta) -> Pod:
    return from_dict(Pod, {"metadata": {"name": "p", **meta}, "spec": spec, "status": status})


TWO = {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}


def test_running_and_ready() -> None:
    p = make(TWO, {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
        {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
        {"name": "b", "ready": True, "restartCount": 3, "state": {"running": {}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": (NOW - timedelta(minutes=2)).isoformat()}}}]})
    row = pod_row(p, NOW)
    assert (row.ready, row.status, row.restarts) == ("2/2", "Running", "3 (2m ago)")


def test_crash_loop_and_init_states() -> None:
    p = make(TWO, {"phase": "Running", "containerStatuses": [
        {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 1},
        {"name": "b", "ready": True, "state": {"running": {}}}]})
    assert pod_row(p, NOW).status == "CrashLoopBackOff"
    init = {"initContainers": [{"name": "i1", "image": "i"}, {"name": "i2", "image": "i"}], **TWO}
    p = make(init, {"phase": "Pending", "initContainerStatuses": [
        {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "i2", "state": {"running": {}}}]})
    assert pod_row(p, NOW).status == "Init:1/2"
    p = make(init, {"phase": "Pending", "initContainerStatuses": [
        {"name": "i1", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]})
    assert pod_row(p, NOW).status == "Init:Error"


def test_completed_but_one_running_is_not_ready_and_terminating_wins() -> None:
    p = make(TWO, {"phase": "Running", "containerStatuses": [
        {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "b", "ready": True, "state": {"running": {}}}]})
    assert pod_row(p, NOW).status == "NotReady"
    p = make(TWO, {"phase": "Running"}, deletionTimestamp=NOW.isoformat())
    assert pod_row(p, NOW).status == "Terminating"
    assert pod_row(make(TWO, {"phase": "Pending", "reason": "Created"}), NOW).status == "Created"


def test_human_duration_like_kubectl() -> None:
    assert [human_duration(s) for s in (5, 119, 150, 3600 * 3 + 60 * 5, 86400 * 3)] == \
        ["5s", "119s", "2m30s", "3h5m", "3d"]


def test_table_pads_like_tabwriter() -> None:
    assert table([["NAME", "READY"], ["web", "2/2"]]) == "NAME   READY\nweb    2/2"


def test_describe_shows_a_repeated_event_as_kubectl_does() -> None:
    def event(count: int, first: int, last: int) -> dict:
        return {"metadata": {"name": "e"}, "involvedObject": {"name": "p"}, "count": count,
                "firstTimestamp": (NOW - timedelta(seconds=first)).isoformat(),
                "lastTimestamp": (NOW - timedelta(seconds=last)).isoformat()}
    assert event_age(event(1, 30, 30), NOW) == "30s"
    assert event_age(event(12, 180, 5), NOW) == "5s (x12 over 3m)"


def test_describe_lists_ephemeral_containers_with_their_state() -> None:
    p = make({"containers": [{"name": "app", "image": "i"}],
              "ephemeralContainers": [{"name": "debugger", "image": "busybox:1.35", "targetContainerName": "app"}]},
             {"phase": "Running", "ephemeralContainerStatuses": [
                 {"name": "debugger", "restartCount": 0, "ready": False,
                  "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
    text = describe_pod(to_dict(p), [])
    section = text.split("Ephemeral Containers:\n", 1)[1]
    assert section.startswith("  debugger:\n") and "Image:         busybox:1.35" in section
    assert "Terminated" in section and "Restart Count: 0" in section


def test_describe_names_the_runtime_class_as_kubectl_does_only_when_set() -> None:
    sandboxed = describe_pod(to_dict(make({"runtimeClassName": "gvisor", "containers": [{"name": "c", "image": "i"}]},
                                  {"phase": "Running"})), [])
    lines = sandboxed.splitlines()
    assert "Runtime Class Name:  gvisor" in lines
    assert lines.index("Runtime Class Name:  gvisor") == [l.split(":")[0] for l in lines].index("Node") - 1
    plain = describe_pod(to_dict(make({"containers": [{"name": "c", "image": "i"}]}, {"phase": "Running"})), [])
    assert "Runtime Class Name" not in plain
