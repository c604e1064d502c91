"""The kubelet's eviction manager, in pure rules: hard eviction thresholds (parsed from
--eviction-hard), the node pressure conditions they set, and local storage capacity
isolation (emptyDir sizeLimit, container and pod ephemeral-storage limits).

Words and formats are the kubelet's (pkg/kubelet/eviction/helpers.go, eviction_manager.go,
pkg/kubelet/nodestatus/setters.go), so `describe` reads the same.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from podbay.agent.thresholds import SIGNAL_CONDITION, Threshold
from podbay.api.models import NodeCondition, Pod, Taint
from podbay.api.quantity import format_bytes, parse_quantity
from podbay.api.resources import pod_limits, qos_class
from podbay.api.taints import CONDITION_TAINTS, tolerates

EVICTED_REASON = "Evicted"
EMPTY_DIR_MESSAGE = 'Usage of EmptyDir volume "{}" exceeds the limit "{}". '
CONTAINER_MESSAGE = 'Container {} exceeded its local ephemeral storage limit "{}". '
POD_MESSAGE = "Pod ephemeral local storage usage exceeds the total limit of containers {}. "
NODE_CONDITION_MESSAGE = "The node had condition: {}. "
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000  # scheduling.SystemCriticalPriority: such pods are always admitted

# condition -> ((reason, message) when True, (reason, message) when False), as setters.go words them
CONDITION_WORDS = {
    "MemoryPressure": (("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
                       ("KubeletHasSufficientMemory", "kubelet has sufficient memory available")),
    "DiskPressure": (("KubeletHasDiskPressure", "kubelet has disk pressure"),
                     ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")),
    "PIDPressure": (("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
                    ("KubeletHasSufficientPID", "kubelet has sufficient PID available")),
}


@dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


def observe(state_root: Path, images_root: Path) -> dict[str, Observation]:
    """What each signal measures on this host now. memory.available is MemAvailable (the
    kubelet subtracts the root cgroup's working set; on a host without container memory
    accounting to subtract, the kernel's estimate is the closest). nodefs is the filesystem of
    the state root (the kubelet's root dir), imagefs the images'; pid.available is the
    smaller of pid_max and threads-max less the tasks that exist, as the kubelet's rlimit stats."""
    meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024
               for line in Path("/proc/meminfo").read_text().splitlines() if line.split()[1:]}
    out = {"memory.available": Observation(meminfo.get("MemAvailable", 0), meminfo.get("MemTotal", 0))}
    for prefix, path in (("nodefs", state_root), ("imagefs", images_root)):
        st = os.statvfs(path if path.exists() else state_root if state_root.exists() else Path("/"))
        out[f"{prefix}.available"] = Observation(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
        out[f"{prefix}.inodesFree"] = Observation(st.f_favail, st.f_files)
    max_pids = min(int(Path("/proc/sys/kernel/pid_max").read_text()),
                   int(Path("/proc/sys/kernel/threads-max").read_text()))
    tasks = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    out["pid.available"] = Observation(max_pids - tasks, max_pids)
    return out


def thresholds_met(thresholds: list[Threshold], observed: dict[str, Observation]) -> set[str]:
    """The signals whose available amount is below their threshold."""
    met = set()
    for t in thresholds:
        seen = observed.get(t.signal) or (observed.get("memory.available")
                                          if t.signal == "allocatableMemory.available" else None)
        if seen is not None and seen.capacity and seen.available < t.limit(seen.capacity):
            met.add(t.signal)
    return met


def pressed_conditions(met: set[str]) -> list[str]:
    """The node conditions the met thresholds set, in the kubelet's order."""
    return [kind for kind in CONDITION_WORDS if any(SIGNAL_CONDITION[s] == kind for s in met)]


def admission_rejection(pod: Pod, pressed: list[str]) -> str | None:
    """The eviction manager's Admit for a pod new to the node: under memory pressure alone only
    BestEffort pods that do not tolerate it are refused; under any other pressure every pod is,
    but critical ones. The message, or None to admit."""
    if not pressed or (pod.spec.priority or 0) >= SYSTEM_CRITICAL_PRIORITY:
        return None
    if pressed == ["MemoryPressure"]:
        taint = Taint(key=CONDITION_TAINTS["MemoryPressure"], effect="NoSchedule")
        if qos_class(pod) != "BestEffort" or any(tolerates(t, taint) for t in pod.spec.tolerations):
            return None
    return NODE_CONDITION_MESSAGE.format(f"[{' '.join(pressed)}]")


@dataclass
class PressureHistory:
    """When each pressure condition's threshold was last met. A condition stays True until
    `period` seconds after that (the kubelet's --eviction-pressure-transition-period, 5 minutes),
    so a node hovering at a threshold does not flap between taking and refusing pods."""

    period: float
    last_met: dict[str, float] = field(default_factory=dict)

    def pressed(self, met: set[str], now: float) -> list[str]:
        """The conditions that are True at `now` (monotonic seconds), given the signals met now."""
        current = pressed_conditions(met)
        for kind in current:
            self.last_met[kind] = now
        return [kind for kind in CONDITION_WORDS
                if kind in current or (kind in self.last_met and now - self.last_met[kind] < self.period)]


def pressure_conditions(pressed: list[str], previous: list[NodeCondition], now: datetime) -> list[NodeCondition]:
    """MemoryPressure, DiskPressure and PIDPressure as the kubelet posts them, True for those in
    `pressed`: lastTransitionTime kept while the status stays, lastHeartbeatTime now."""
    before = {c.type: c for c in previous}
    out = []
    for kind, (true_words, false_words) in CONDITION_WORDS.items():
        status = "True" if kind in pressed else "False"
        reason, message = true_words if status == "True" else false_words
        old = before.get(kind)
        since = old.last_transition_time if old is not None and old.status == status else now
        out.append(NodeCondition(type=kind, status=status, reason=reason, message=message, last_heartbeat_time=now,
                                 last_transition_time=since))
    return out


@dataclass
class StorageUsage:
    """Bytes a pod uses on the node's disk: each disk-backed local volume, and each container's
    writable layer plus its log (the kubelet's rootfs + logs stats; a volume in memory has none)."""

    volumes: dict[str, int] = field(default_factory=dict)
    containers: dict[str, int] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.volumes.values()) + sum(self.containers.values())


def storage_violation(pod: Pod, usage: StorageUsage) -> str | None:
    """The kubelet's localStorageEviction for one pod: the eviction message, or None. The
    checks and their order are its: emptyDir sizeLimit, then the pod's total against the sum of
    its containers' limits, then each container's own limit."""
    for volume in pod.spec.volumes:
        empty = volume.empty_dir
        if empty is None or not empty.size_limit:
            continue
        used = usage.volumes.get(volume.name)
        if used is not None and parse_quantity(empty.size_limit) > 0 and used > parse_quantity(empty.size_limit):
            return EMPTY_DIR_MESSAGE.format(volume.name, empty.size_limit)
    pod_limit = pod_limits(pod).get("ephemeral-storage")
    if pod_limit is not None and usage.total() > pod_limit:
        return POD_MESSAGE.format(format_bytes(pod_limit))
    for container in pod.spec.containers:  # the kubelet looks at regular containers only
        limit = container.resources.limits.get("ephemeral-storage") if container.resources else None
        used = usage.containers.get(container.name)
        if limit and parse_quantity(limit) and used is not None and used > parse_quantity(limit):
            return CONTAINER_MESSAGE.format(container.name, limit)
    return None


# What a node-pressure eviction reclaims for each signal (the kubelet's signalToResource).
SIGNAL_RESOURCE = {
    "memory.available": "memory",
    "allocatableMemory.available": "memory",
    "nodefs.available": "ephemeral-storage",
    "imagefs.available": "ephemeral-storage",
    "nodefs.inodesFree": "inodes",
    "imagefs.inodesFree": "inodes",
    "pid.available": "pids",
}
NODE_LOW_MESSAGE = "The node was low on resource: {}. "
THRESHOLD_MET_MESSAGE = "Threshold quantity: {}, available: {}. "
CONTAINER_USAGE_MESSAGE = "Container {} was using {}, request is {}, has larger consumption of {}. "


@dataclass
class PodUsage:
    """One running pod as the node-pressure ranking sees it."""

    pod: Pod
    storage: StorageUsage
    memory: int  # working set bytes of the pod's cgroup
    processes: int  # tasks in the pod's cgroup
    running: bool = True  # only pods with a running container are ranked


def _request(pod: Pod, resource: str) -> Fraction:
    return sum((parse_quantity(c.resources.requests[resource]) for c in pod.spec.containers
                if c.resources and resource in c.resources.requests), Fraction(0))


def _usage(p: PodUsage, resource: str) -> int:
    if resource == "memory":
        return p.memory
    if resource == "pids":
        return p.processes
    return p.storage.total()  # inodes are ranked by bytes: podbay does not count inodes per pod


def _rank_key(p: PodUsage, resource: str) -> tuple[int, int, Fraction]:
    """The kubelet's orderedBy: pods over their requests first, then lower priority first, then the
    larger use beyond requests first (for pids, which have no requests, the larger count)."""
    priority = p.pod.spec.priority or 0
    if resource == "pids":
        return 0, priority, Fraction(-p.processes)
    beyond = _usage(p, resource) - _request(p.pod, resource)
    return (0 if beyond > 0 else 1), priority, -beyond


def _format_count(value: int) -> str:
    """A count as a decimal Quantity prints it: 1000 is 1k."""
    for suffix, unit in (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def _format(resource: str, value: Fraction | int) -> str:
    return format_bytes(Fraction(value)) if resource in ("memory", "ephemeral-storage") else _format_count(int(value))


def node_pressure_victim(thresholds: list[Threshold], observed: dict[str, Observation],
                         pods: list[PodUsage]) -> tuple[Pod, str] | None:
    """The kubelet's synchronize for hard thresholds: the threshold to act on (memory first),
    the pods ranked for its resource, and the one to evict with the kubelet's message; None
    when no threshold is met or no pod may go (critical pods never do)."""
    met = [t for t in thresholds if t.signal in thresholds_met([t], observed)]
    if not met:
        return None
    threshold = sorted(met, key=lambda t: t.signal not in ("memory.available", "allocatableMemory.available"))[0]
    resource = SIGNAL_RESOURCE[threshold.signal]
    candidates = [p for p in pods if (p.pod.spec.priority or 0) < SYSTEM_CRITICAL_PRIORITY]
    if not candidates:
        return None
    victim = min(candidates, key=lambda p: _rank_key(p, resource))
    seen = observed.get(threshold.signal) or observed["memory.available"]
    message = NODE_LOW_MESSAGE.format(resource) + THRESHOLD_MET_MESSAGE.format(
        _format(resource, int(threshold.limit(seen.capacity))), _format(resource, seen.available))
    if resource == "ephemeral-storage":  # memory is measured per pod here, so no container lines for it
        for c in victim.pod.spec.containers:
            used = victim.storage.containers.get(c.name)
            request = parse_quantity(c.resources.requests[resource]) if c.resources and resource in \
                c.resources.requests else Fraction(0)
            if used is not None and used > request:
                message += CONTAINER_USAGE_MESSAGE.format(c.name, _format(resource, used), _format(resource, request),
                                                          resource)
    return victim.pod, message
