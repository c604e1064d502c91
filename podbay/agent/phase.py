"""Pod phase and conditions, as the kubelet computes them (kubelet_pods.go getPhase,
status/generate.go). Pure: works on the pod spec and API container statuses.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from podbay.api.models import is_restartable_init


TERMINAL_PHASES = ("Succeeded", "Failed")


def _status_of(statuses: Sequence[Any], name: str) -> Any | None:
    for s in statuses:
        if s.name == name:
            return s
    return None


def _last_terminated(s: Any) -> Any | None:
    return s.last_state.terminated if s.last_state is not None else None


def get_phase(pod: Any, init_statuses: Sequence[Any], statuses: Sequence[Any], pod_is_terminal: bool) -> str:
    """getPhase: `pod_is_terminal` is true once the pod will run nothing more."""
    spec = pod.spec
    pending_regular_init = pending_sidecars = failed_init = 0
    unknown = running = waiting = stopped = succeeded = 0

    for c in spec.init_containers:
        if is_restartable_init(c):
            continue
        s = _status_of(init_statuses, c.name)
        if s is None or s.state is None:
            pending_regular_init += 1
        elif s.state.running is not None:
            pending_regular_init += 1
        elif s.state.terminated is not None:
            if s.state.terminated.exit_code != 0:
                failed_init += 1
        elif s.state.waiting is not None:
            last = _last_terminated(s)
            if last is not None:
                if last.exit_code != 0:
                    failed_init += 1
            else:
                pending_regular_init += 1
        else:
            pending_regular_init += 1

    for c in spec.init_containers:
        if not is_restartable_init(c):
            continue
        s = _status_of(init_statuses, c.name)
        if s is None or s.state is None:
            pending_sidecars += 1
            unknown += 1
        elif s.state.running is not None:
            if not s.started:
                pending_sidecars += 1
            running += 1
        elif s.state.terminated is not None:
            pass  # a stopped sidecar never decides the phase
        elif s.state.waiting is not None:
            if _last_terminated(s) is None:
                pending_sidecars += 1
                waiting += 1
        else:
            pending_sidecars += 1
            unknown += 1

    for c in spec.containers:
        s = _status_of(statuses, c.name)
        if s is None or s.state is None:
            unknown += 1
        elif s.state.running is not None:
            running += 1
        elif s.state.terminated is not None:
            stopped += 1
            if s.state.terminated.exit_code == 0:
                succeeded += 1
        elif s.state.waiting is not None:
            if _last_terminated(s) is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if failed_init > 0 and spec.restart_policy == "Never":
        return "Failed"
    if pending_regular_init > 0 or pending_sidecars > 0 or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if spec.restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if spec.restart_policy == "Never":
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


def initialized_condition(pod: Any, init_statuses: Sequence[Any], statuses: Sequence[Any], phase: str) -> Condition:
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


def containers_ready_condition(pod: Any, init_statuses: Sequence[Any], statuses: Sequence[Any], phase: str) -> Condition:
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


def ready_condition(pod: Any, containers_ready: Condition, phase: str) -> Condition:
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


def merge_conditions(old: Sequence[Any], new: Sequence[Condition], now: datetime, make: Any) -> list[Any]:
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
