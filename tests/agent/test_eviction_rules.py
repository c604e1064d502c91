"""The eviction manager's pure rules: thresholds, pressure conditions, local storage limits."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import pytest

from podbay.agent.eviction import (
    Observation, PodUsage, PressureHistory, StorageUsage, Threshold, admission_rejection, node_pressure_victim,
    pressure_conditions, storage_violation, thresholds_met,
)
from podbay.agent.thresholds import DEFAULT_EVICTION_HARD, parse_thresholds
from podbay.api import Pod
from podbay.api.formats import load_pods
from podbay.runtime.diskusage import disk_usage

MI = 1024 * 1024


def test_the_default_thresholds_are_the_kubelets() -> None:
    assert parse_thresholds(DEFAULT_EVICTION_HARD) == [
        Threshold("memory.available", quantity=100 * MI),
        Threshold("nodefs.available", percentage=Fraction(1, 10)),
        Threshold("nodefs.inodesFree", percentage=Fraction(1, 20)),
        Threshold("imagefs.available", percentage=Fraction(15, 100)),
        Threshold("imagefs.inodesFree", percentage=Fraction(1, 20)),
    ]
    assert parse_thresholds("pid.available<1k") == [Threshold("pid.available", quantity=1000)]
    assert parse_thresholds("") == []
    assert parse_thresholds("nodefs.available<100%,imagefs.available<0%,pid.available<99.5%") == [
        Threshold("pid.available", percentage=Fraction(995, 1000))]


@pytest.mark.parametrize("text, words", [
    ("memory.available>1Gi", "only the operator '<'"),
    ("cpu.available<1", "unsupported eviction signal cpu.available"),
    ("nodefs.available<120%", "must be <= 100%"),
    ("nodefs.available<-1%", "must be >= 0%"),
    ("memory.available<0", "must be positive"),
    ("nodefs.available<1%,nodefs.available<2%", "duplicate"),
    ("memory.available<lots", "regular expression"),
])
def test_bad_thresholds_are_refused(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_thresholds(text)


def test_a_threshold_is_met_when_less_than_it_is_available() -> None:
    thresholds = parse_thresholds("memory.available<100Mi,nodefs.available<10%,pid.available<100")
    observed = {"memory.available": Observation(100 * MI, 8000 * MI),
                "nodefs.available": Observation(9, 100), "pid.available": Observation(100, 32768)}
    assert thresholds_met(thresholds, observed) == {"nodefs.available"}


def test_pressure_conditions_in_the_kubelets_words() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = pressure_conditions(["DiskPressure"], [], t0)
    assert [(c.type, c.status, c.reason, c.message) for c in first] == [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    t1 = t0 + timedelta(seconds=10)
    later = {c.type: c for c in pressure_conditions(["PIDPressure"], first, t1)}
    assert later["MemoryPressure"].last_transition_time == t0 and later["MemoryPressure"].last_heartbeat_time == t1
    assert later["DiskPressure"].last_transition_time == t1
    assert later["DiskPressure"].reason == "KubeletHasNoDiskPressure"
    assert later["PIDPressure"].status == "True" and later["PIDPressure"].reason == "KubeletHasInsufficientPID"


def pod(containers: str, volumes: str = "[]") -> Pod:
    return load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers: {containers}
  volumes: {volumes}
""")[0]


def test_an_empty_dir_over_its_size_limit() -> None:
    p = pod("[{name: a, image: busybox}]", "[{name: cache, emptyDir: {sizeLimit: 10Mi}}, {name: free, emptyDir: {}}]")
    assert storage_violation(p, StorageUsage(volumes={"cache": 10 * MI, "free": 500 * MI})) is None
    assert storage_violation(p, StorageUsage(volumes={"cache": 10 * MI + 1})) == \
        'Usage of EmptyDir volume "cache" exceeds the limit "10Mi". '


def test_the_pod_total_is_checked_before_each_container() -> None:
    limits = ("[{name: a, image: busybox, resources: {limits: {ephemeral-storage: 1Mi}}},"
              " {name: b, image: busybox, resources: {limits: {ephemeral-storage: 1Mi}}}]")
    p = pod(limits, "[{name: cache, emptyDir: {}}]")
    assert storage_violation(p, StorageUsage(containers={"a": MI, "b": MI})) is None
    assert storage_violation(p, StorageUsage(volumes={"cache": 1}, containers={"a": MI, "b": MI})) == \
        "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi. "
    assert storage_violation(p, StorageUsage(containers={"a": MI + 1, "b": 0})) == \
        'Container a exceeded its local ephemeral storage limit "1Mi". '


def test_no_limit_no_eviction() -> None:
    p = pod("[{name: a, image: busybox}]", "[{name: cache, emptyDir: {}}]")
    assert storage_violation(p, StorageUsage(volumes={"cache": 10**12}, containers={"a": 10**12})) is None


def test_disk_usage_counts_allocated_blocks_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 3 * MI)
    (tmp_path / "d" / "link").hardlink_to(tmp_path / "d" / "f")
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(100 * MI)
    used = disk_usage(tmp_path)
    assert 3 * MI <= used < 4 * MI
    assert disk_usage(tmp_path / "missing") == 0


def test_admission_under_pressure() -> None:
    best_effort = pod("[{name: a, image: busybox}]")
    burstable = pod("[{name: a, image: busybox, resources: {requests: {memory: 1Mi}}}]")
    assert admission_rejection(best_effort, []) is None
    assert admission_rejection(burstable, ["MemoryPressure"]) is None
    assert admission_rejection(best_effort, ["MemoryPressure"]) == "The node had condition: [MemoryPressure]. "
    best_effort.spec.tolerations = load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: t}
spec:
  containers: [{name: a, image: busybox}]
  tolerations: [{key: node.kubernetes.io/memory-pressure, operator: Exists, effect: NoSchedule}]
""")[0].spec.tolerations
    assert admission_rejection(best_effort, ["MemoryPressure"]) is None
    assert admission_rejection(burstable, ["MemoryPressure", "DiskPressure"]) == \
        "The node had condition: [MemoryPressure DiskPressure]. "
    burstable.spec.priority = 2_000_000_000
    assert admission_rejection(burstable, ["DiskPressure"]) is None


def usage_of(name: str, containers: str, used: dict[str, int], priority: int | None = None,
             processes: int = 1) -> PodUsage:
    p = pod(containers)
    p.metadata.name = name
    p.spec.priority = priority
    return PodUsage(p, StorageUsage(containers=used), memory=0, processes=processes)


def test_node_pressure_evicts_the_pod_ranked_first_with_the_kubelets_message() -> None:
    thresholds = parse_thresholds("nodefs.available<150Mi,pid.available<1k")
    observed = {"nodefs.available": Observation(90 * MI, 256 * MI), "pid.available": Observation(5000, 32768)}
    hog = usage_of("hog", "[{name: main, image: busybox}]", {"main": 160 * MI})
    quiet = usage_of("quiet", "[{name: main, image: busybox}]", {"main": 4096})
    within = usage_of("within", "[{name: main, image: busybox, resources: {requests: {ephemeral-storage: 1Gi}}}]",
                      {"main": 500 * MI})
    victim, message = node_pressure_victim(thresholds, observed, [quiet, within, hog])
    assert victim is hog.pod
    assert message == ("The node was low on resource: ephemeral-storage. Threshold quantity: 150Mi, available: 90Mi. "
                       "Container main was using 160Mi, request is 0, has larger consumption of ephemeral-storage. ")
    # Lower priority goes first among pods over their requests; within its requests goes last.
    quiet.pod.spec.priority = -1
    assert node_pressure_victim(thresholds, observed, [within, hog, quiet])[0] is quiet.pod
    assert node_pressure_victim(thresholds, observed, [within])[0] is within.pod


def test_pid_pressure_evicts_the_pod_with_the_most_tasks() -> None:
    thresholds = parse_thresholds("pid.available<1k")
    observed = {"pid.available": Observation(900, 32768)}
    few, many = (usage_of(n, "[{name: main, image: busybox}]", {}, processes=k) for n, k in (("few", 3), ("many", 800)))
    victim, message = node_pressure_victim(thresholds, observed, [few, many])
    assert victim is many.pod
    assert message == "The node was low on resource: pids. Threshold quantity: 1k, available: 900. "
    assert node_pressure_victim(thresholds, {"pid.available": Observation(5000, 32768)}, [few, many]) is None
    critical = usage_of("critical", "[{name: main, image: busybox}]", {}, priority=2_000_000_000, processes=900)
    assert node_pressure_victim(thresholds, observed, [critical]) is None


def test_a_condition_stays_true_for_the_transition_period() -> None:
    history = PressureHistory(period=300)
    assert history.pressed({"nodefs.available", "memory.available"}, now=1000) == ["MemoryPressure", "DiskPressure"]
    assert history.pressed({"pid.available"}, now=1299) == ["MemoryPressure", "DiskPressure", "PIDPressure"]
    assert history.pressed(set(), now=1300) == ["PIDPressure"]
    assert PressureHistory(period=0).pressed(set(), now=5) == []
