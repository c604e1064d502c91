"""Pod phase and conditions, as the kubelet computes them (kubelet_pods.go getPhase,
status/generate.go). Pure: works on the pod spec and API container statuses.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from podbay.api import ContainerStateTerminated, ContainerStatus, Pod, PodCondition
from podbay.api.models import is_restartable_init


TERMINAL_PHASES = ("Succeeded", "Failed")


def _status_of(statuses: Sequence[ContainerStatus], name: str) -> ContainerStatus | None:
    for s in statuses:
        if s.name == name:
            return s
    return None


def _last_terminated(s: ContainerStatus) -> ContainerStateTerminated | None:
    return s.last_state.terminated if s.last_state is not None else None


def get_phase(pod: Pod, init_statuses: Sequence[ContainerStatus], statuses: Sequence[ContainerStatus],
              pod_is_terminal: bool) -> str:
    """getPhase: `pod_is_terminal` is true once the pod will run nothing more."""
    counts = _PhaseCounts()
    for c in pod.spec.init_containers:
        s = _status_of(init_statuses, c.name)
        if is_restartable_init(c):
            counts.add_sidecar(s)
        else:
            counts.add_regular_init(s)
    for c in pod.spec.containers:
        counts.add_container(_status_of(statuses, c.name))
    return counts.phase(pod.spec.restart_policy, pod_is_terminal)


@dataclass
class _PhaseCounts:
    """getPhase's tallies of the containers' states."""

    pending_regular_init: int = 0
    pending_sidecars: int = 0
    failed_init: int = 0
    unknown: int = 0
    running: int = 0
    waiting: int = 0
    stopped: int = 0
    succeeded: int = 0

    def add_regular_init(self, s: ContainerStatus | None) -> None:
        state = s.state if s is not None else None
        if s is None or state is None or state.running is not None:
            self.pending_regular_init += 1
        elif state.terminated is not None:
            if state.terminated.exit_code != 0:
                self.failed_init += 1
        elif state.waiting is not None and (last := _last_terminated(s)) is not None:
            if last.exit_code != 0:
                self.failed_init += 1
        else:
            self.pending_regular_init += 1

    def add_sidecar(self, s: ContainerStatus | None) -> None:
        state = s.state if s is not None else None
        if s is None or state is None:
            self.pending_sidecars += 1
            self.unknown += 1
        elif state.running is not None:
            if not s.started:
                self.pending_sidecars += 1
            self.running += 1
        elif state.terminated is not None:
            pass  # a stopped sidecar never decides the phase
        elif state.waiting is not None:
            if _last_terminated(s) is None:
                self.pending_sidecars += 1
                self.waiting += 1
        else:
            self.pending_sidecars += 1
            self.unknown += 1

    def add_container(self, s: ContainerStatus | None) -> None:
        state = s.state if s is not None else None
        if s is None or state is None:
            self.unknown += 1
        elif state.running is not None:
            self.running += 1
        elif state.terminated is not None:
            self.stopped += 1
            if state.terminated.exit_code == 0:
                self.succeeded += 1
        elif state.waiting is not None:
            if _last_terminated(s) is not None:
                self.stopped += 1
            else:
                self.waiting += 1
        else:
            self.unknown += 1

    def phase(self, restart_policy: str | None, pod_is_terminal: bool) -> str:
        if self.failed_init > 0 and restart_policy == "Never":
            return "Failed"
        if self.pending_regular_init > 0 or self.pending_sidecars > 0 or self.waiting > 0:
            return "Pending"
        if self.running > 0 and self.unknown == 0:
            return "Running"
        if self.running == 0 and self.stopped > 0 and self.unknown == 0:
            if pod_is_terminal:
                return "Succeeded" if self.stopped == self.succeeded else "Failed"
            if restart_policy == "Always":
                return "Running"
            if self.stopped == self.succeeded:
                return "Succeeded"
            if restart_policy == "Never":
                return "Failed"
            return "Running"
        return "Pending"


@dataclass(frozen=True)
class Condition:
    """A pod condition before its lastTransitionTime is settled."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def initialized_condition(pod: Pod, init_statuses: Sequence[ContainerStatus], statuses: Sequence[ContainerStatus], phase: str) -> Condition:
    """GeneratePodInitializedCondition; stays True once any main container has started."""
    if any(s.state is not None and (s.state.running is not None or s.state.terminated is not None
                                    or _last_terminated(s) is not None) for s in statuses):
        return Condition("Initialized", "True")
    unknown, incomplete = [], []
    for c in pod.spec.init_containers:
        s = _status_of(init_statuses, c.name)
        if s is None:
            unknown.append(c.name)
            continue
        if is_restartable_init(c):
            if not s.started:
                incomplete.append(c.name)
        elif not (s.state is not None and s.state.terminated is not None and s.state.terminated.exit_code == 0):
            incomplete.append(c.name)
    if not unknown and not incomplete:
        return Condition("Initialized", "True")
    if phase == "Succeeded" and not unknown:
        return Condition("Initialized", "True", "PodCompleted")
    parts = []
    if unknown:
        parts.append(f"containers with unknown status: {_names(unknown)}")
    if incomplete:
        parts.append(f"containers with incomplete status: {_names(incomplete)}")
    return Condition("Initialized", "False", "ContainersNotInitialized", ", ".join(parts))


def containers_ready_condition(pod: Pod, init_statuses: Sequence[ContainerStatus], statuses: Sequence[ContainerStatus], phase: str) -> Condition:
    """GenerateContainersReadyCondition: every main container and sidecar ready."""
    unknown, unready = [], []
    for c in pod.spec.init_containers:
        if not is_restartable_init(c):
            continue
        s = _status_of(init_statuses, c.name)
        if s is None:
            unknown.append(c.name)
        elif not s.ready:
            unready.append(c.name)
    for c in pod.spec.containers:
        s = _status_of(statuses, c.name)
        if s is None:
            unknown.append(c.name)
        elif not s.ready:
            unready.append(c.name)
    if phase == "Succeeded" and not unknown:
        return Condition("ContainersReady", "False", "PodCompleted")
    parts = []
    if unknown:
        parts.append(f"containers with unknown status: {_names(unknown)}")
    if unready:
        parts.append(f"containers with unready status: {_names(unready)}")
    if parts:
        return Condition("ContainersReady", "False", "ContainersNotReady", ", ".join(parts))
    return Condition("ContainersReady", "True")


def ready_condition(pod: Pod, containers_ready: Condition, phase: str) -> Condition:
    """GeneratePodReadyCondition: ContainersReady plus every readiness gate True."""
    if containers_ready.status != "True":
        return Condition("Ready", containers_ready.status, containers_ready.reason, containers_ready.message)
    existing = {c.type: c.status for c in (pod.status.conditions if pod.status else [])}
    missing = [g.condition_type for g in pod.spec.readiness_gates if g.condition_type not in existing]
    false = [g.condition_type for g in pod.spec.readiness_gates
             if g.condition_type in existing and existing[g.condition_type] != "True"]
    parts = []
    if missing:
        parts.append(f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist." if len(missing) == 1
                     else f"corresponding conditions of pod readiness gates {missing} do not exist.")
    if false:
        parts.append(f"the status of pod readiness gate \"{false[0]}\" is not \"True\", but False"
                     if len(false) == 1 else f"the status of pod readiness gates {false} are not \"True\".")
    if parts:
        return Condition("Ready", "False", "ReadinessGatesNotReady", ", ".join(parts))
    return Condition("Ready", "True")


def merge_conditions(old: Sequence[PodCondition], new: Sequence[Condition], now: datetime,
                     make: Callable[[Condition, datetime | None], PodCondition]) -> list[PodCondition]:
    """Builds API conditions from `new`, keeping each old lastTransitionTime whose status
    did not change; conditions the agent does not own (PodScheduled, readiness gates,
    DisruptionTarget...) are kept as they were. `make(cond, ltt)` builds one API condition."""
    by_type = {c.type: c for c in old}
    owned = {c.type for c in new}
    out = [c for c in old if c.type not in owned]
    for cond in new:
        prev = by_type.get(cond.type)
        ltt = prev.last_transition_time if prev is not None and prev.status == cond.status else now
        out.append(make(cond, ltt))
    order = {"PodReadyToStartContainers": 0, "Initialized": 1, "Ready": 2, "ContainersReady": 3, "PodScheduled": 4}
    return sorted(out, key=lambda c: order.get(c.type, 5))
