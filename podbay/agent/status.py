"""A pod's API status from the runtime's view (the kubelet's generateAPIPodStatus and
convertToAPIContainerStatuses). Pure: the caller passes probe results, start-failure
reasons and the clock.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podbay.agent.actions import should_container_be_restarted
from podbay.agent.phase import (
    TERMINAL_PHASES, Condition, containers_ready_condition, get_phase, initialized_condition, merge_conditions,
    ready_condition,
)
from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState
from podbay.api import ContainerStatus, PodCondition, PodStatus
from podbay.api.models import is_restartable_init
from podbay.api.resources import qos_class
from podbay.api.serialize import from_dict, to_dict

CONTAINER_ID_SCHEME = "crun"
CREATED_MESSAGE = "the pod is created and prepared; `podbay start` runs it"


def container_id(runtime_id: str) -> str:
    return f"{CONTAINER_ID_SCHEME}://{runtime_id}"


@dataclass
class StatusInputs:
    """Everything besides the pod and the runtime that the status depends on."""

    now: datetime
    host_ip: str = ""
    ready: Mapping[str, bool] = field(default_factory=dict)  # container id → readiness result
    started: Mapping[str, bool] = field(default_factory=dict)  # container id → startup result
    reasons: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # name → (Waiting reason, message)
    pod_is_terminal: bool = False
    deadline_exceeded: bool = False
    created_state: bool = False  # HyperContainer's Created: pulled and prepared, nothing runs
    eviction_message: str | None = None  # set when the eviction manager evicts the pod
    rejection_message: str | None = None  # set when the node's pressure refused the pod before it started


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != ""}


def terminated_state(c: ContainerRecord) -> dict[str, Any]:
    """A ContainerStateTerminated in API JSON."""
    if c.state is RunState.UNKNOWN:
        return {"exitCode": 137, "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
                "containerID": container_id(c.id)}
    code = c.exit_code if c.exit_code is not None else 0
    return _clean({"exitCode": code, "signal": c.signal or None,
                   "reason": c.reason or ("Completed" if code == 0 else "Error"), "message": c.message,
                   "startedAt": c.started_at, "finishedAt": c.finished_at, "containerID": container_id(c.id)})


def _state(c: ContainerRecord) -> dict[str, Any]:
    if c.state is RunState.RUNNING:
        return {"running": _clean({"startedAt": c.started_at})}
    if c.state is RunState.CREATED:
        return {"waiting": {"reason": "ContainerCreating"}}
    return {"terminated": terminated_state(c)}


def container_statuses(pod: Any, containers: Sequence[Any], rt: PodRuntimeStatus, inputs: StatusInputs,
                       init: bool) -> list[dict[str, Any]]:
    """ContainerStatus objects in API JSON, one per container of the spec, in its order."""
    default_reason = "PodInitializing" if pod.spec.init_containers else "ContainerCreating"
    out = []
    for spec in containers:
        history = [c for c in rt.history(spec.name) if c.init == init]
        if not history:
            waiting = ({"reason": "Created", "message": CREATED_MESSAGE} if inputs.created_state
                       else _waiting(spec.name, inputs, default_reason))
            out.append({"name": spec.name, "image": spec.image, "imageID": "", "ready": False, "restartCount": 0,
                        "started": False, "state": {"waiting": waiting}})
            continue
        latest = history[0]
        status: dict[str, Any] = {
            "name": spec.name, "image": spec.image, "imageID": latest.image_id,
            "containerID": container_id(latest.id), "restartCount": latest.attempt,
            "state": _state(latest), "ready": False, "started": False}
        if len(history) > 1:
            status["lastState"] = {"terminated": terminated_state(history[1])}
        running = latest.state is RunState.RUNNING
        if running:
            started = spec.startup_probe is None or inputs.started.get(latest.id) is True
            status["started"] = started
            if init and not is_restartable_init(spec):
                status["ready"] = False
            elif spec.readiness_probe is not None:
                status["ready"] = started and inputs.ready.get(latest.id) is True
            else:
                status["ready"] = started
        elif init and latest.state is RunState.EXITED and not is_restartable_init(spec):
            status["ready"] = latest.exit_code == 0
        # A Waiting reason (back-off, a failed hook...) only while the container will run again;
        # one that will not stays Terminated, as the kubelet reports it.
        if not init:
            will_restart = should_container_be_restarted(spec, pod, rt)
        elif is_restartable_init(spec):
            will_restart = True
        else:
            will_restart = pod.spec.restart_policy != "Never" and latest.exit_code != 0
        if not running and spec.name in inputs.reasons and latest.state is not RunState.CREATED and will_restart:
            reason, message = inputs.reasons[spec.name]
            status["state"] = {"waiting": _clean({"reason": reason, "message": message})}
            status["lastState"] = {"terminated": terminated_state(latest)}
        if inputs.created_state and not running:
            # HyperContainer's Created: prepared, waiting for `start`; what ran before is the last state.
            status["state"] = {"waiting": {"reason": "Created", "message": CREATED_MESSAGE}}
            if latest.state is RunState.EXITED:
                status["lastState"] = {"terminated": terminated_state(latest)}
        out.append(status)
    return out


def ephemeral_container_statuses(pod: Any, rt: PodRuntimeStatus, inputs: StatusInputs) -> list[dict[str, Any]]:
    """One per ephemeral container: never restarted, never ready; waiting until it first starts."""
    out = []
    for spec in pod.spec.ephemeral_containers:
        history = rt.history(spec.name)
        status: dict[str, Any] = {"name": spec.name, "image": spec.image, "imageID": "", "ready": False,
                                  "restartCount": 0}
        if not history:
            status["state"] = {"waiting": _waiting(spec.name, inputs, "ContainerCreating")}
        else:
            latest = history[0]
            status.update(imageID=latest.image_id, containerID=container_id(latest.id), state=_state(latest),
                          started=latest.state is RunState.RUNNING)
        out.append(status)
    return out


def _waiting(name: str, inputs: StatusInputs, default: str) -> dict[str, Any]:
    reason, message = inputs.reasons.get(name, (default, ""))
    return _clean({"reason": reason, "message": message})


def pod_status(pod: Any, rt: PodRuntimeStatus, inputs: StatusInputs) -> PodStatus:
    old = pod.status or PodStatus()
    init_statuses = [from_dict(ContainerStatus, d) for d in
                     container_statuses(pod, pod.spec.init_containers, rt, inputs, init=True)]
    statuses = [from_dict(ContainerStatus, d) for d in container_statuses(pod, pod.spec.containers, rt, inputs, init=False)]
    reason = message = None
    if old.phase in TERMINAL_PHASES:
        phase, reason, message = old.phase, old.reason, old.message
    elif inputs.eviction_message:
        phase, reason, message = "Failed", "Evicted", inputs.eviction_message
    elif inputs.rejection_message:
        # The kubelet's rejectPod: the admit handler's reason, its message prefixed.
        phase, reason, message = "Failed", "Evicted", f"Pod was rejected: {inputs.rejection_message}"
    elif inputs.deadline_exceeded:
        phase, reason = "Failed", "DeadlineExceeded"
        message = "Pod was active on the node longer than the specified deadline"
    elif inputs.created_state:
        phase, reason = "Pending", "Created"
    else:
        phase = get_phase(pod, init_statuses, statuses, inputs.pod_is_terminal)

    sandbox = rt.sandboxes[0] if rt.sandboxes else None
    sandbox_ready = sandbox is not None and sandbox.ready and (bool(sandbox.ip) or bool(pod.spec.host_network))
    initialized = initialized_condition(pod, init_statuses, statuses, phase)
    containers_ready = containers_ready_condition(pod, init_statuses, statuses, phase)
    new = [
        Condition("PodReadyToStartContainers", "True" if sandbox_ready else "False"),
        initialized,
        ready_condition(pod, containers_ready, phase),
        containers_ready,
    ]
    if not any(c.type == "PodScheduled" for c in old.conditions):
        new.append(Condition("PodScheduled", "True"))
    if inputs.eviction_message:
        # The kubelet marks a pod it evicts (PodDisruptionConditions, on by default since 1.26).
        new.append(Condition("DisruptionTarget", "True", "TerminationByKubelet", inputs.eviction_message))

    def make(cond: Condition, ltt: datetime | None) -> PodCondition:
        return from_dict(PodCondition, _clean({"type": cond.type, "status": cond.status, "reason": cond.reason,
                                               "message": cond.message, "lastTransitionTime": ltt}))

    pod_ip = sandbox.ip if sandbox is not None and sandbox.ready and sandbox.ip else None
    if pod_ip is None and phase in TERMINAL_PHASES:
        pod_ip = old.pod_ip
    if pod.spec.host_network:
        pod_ip = inputs.host_ip or None
    return from_dict(PodStatus, _clean({
        "phase": phase, "reason": reason, "message": message,
        "conditions": [to_dict(c) for c in merge_conditions(old.conditions, new, inputs.now, make)],
        "hostIP": inputs.host_ip or None,
        "hostIPs": [{"ip": inputs.host_ip}] if inputs.host_ip else None,
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}] if pod_ip else None,
        "startTime": old.start_time or inputs.now,
        "initContainerStatuses": [to_dict(c) for c in init_statuses] or None,
        "containerStatuses": [to_dict(c) for c in statuses] or None,
        "ephemeralContainerStatuses": ephemeral_container_statuses(pod, rt, inputs) or None,
        "qosClass": qos_class(pod),
    }))
