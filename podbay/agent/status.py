"""A pod's API status from the runtime's view (the kubelet's generateAPIPodStatus and
convertToAPIContainerStatuses). Pure: the caller passes probe results, start-failure
reasons and the clock.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from podbay.agent.actions import should_container_be_restarted
from podbay.agent.phase import (
    TERMINAL_PHASES, Condition, containers_ready_condition, get_phase, initialized_condition, merge_conditions,
    ready_condition,
)
from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState
from podbay.api import (
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
)
from podbay.api.models import is_restartable_init
from podbay.api.resources import qos_class

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


def terminated_state(c: ContainerRecord) -> ContainerStateTerminated:
    if c.state is RunState.UNKNOWN:
        return ContainerStateTerminated(exit_code=137, reason="ContainerStatusUnknown",
                                        message="The container could not be located when the pod was terminated",
                                        containerID=container_id(c.id))
    code = c.exit_code if c.exit_code is not None else 0
    return ContainerStateTerminated(exit_code=code, signal=c.signal or None,
                                    reason=c.reason or ("Completed" if code == 0 else "Error"),
                                    message=c.message or None, started_at=c.started_at, finished_at=c.finished_at,
                                    containerID=container_id(c.id))


def _state(c: ContainerRecord) -> ContainerState:
    if c.state is RunState.RUNNING:
        return ContainerState(running=ContainerStateRunning(started_at=c.started_at))
    if c.state is RunState.CREATED:
        return ContainerState(waiting=ContainerStateWaiting(reason="ContainerCreating"))
    return ContainerState(terminated=terminated_state(c))


def _waiting_state(reason: str, message: str | None) -> ContainerState:
    return ContainerState(waiting=ContainerStateWaiting(reason=reason or None, message=message or None))


def _created() -> ContainerState:
    return _waiting_state("Created", CREATED_MESSAGE)


def container_statuses(pod: Pod, containers: Sequence[Container], rt: PodRuntimeStatus, inputs: StatusInputs,
                       init: bool) -> list[ContainerStatus]:
    """One ContainerStatus per container of the spec, in its order."""
    default_reason = "PodInitializing" if pod.spec.init_containers else "ContainerCreating"
    out = []
    for spec in containers:
        history = [c for c in rt.history(spec.name) if c.init == init]
        if not history:
            waiting = _created() if inputs.created_state else _waiting(spec.name, inputs, default_reason)
            out.append(ContainerStatus(name=spec.name, image=spec.image or "", imageID="", ready=False,
                                       restart_count=0, started=False, state=waiting))
            continue
        out.append(_container_status(pod, spec, history, rt, inputs, init))
    return out


def _container_status(pod: Pod, spec: Container, history: list[ContainerRecord], rt: PodRuntimeStatus,
                      inputs: StatusInputs, init: bool) -> ContainerStatus:
    """convertToAPIContainerStatus for a container that ran: `history` is newest first."""
    latest = history[0]
    status = ContainerStatus(name=spec.name, image=spec.image or "", imageID=latest.image_id,
                             containerID=container_id(latest.id), restart_count=latest.attempt,
                             state=_state(latest), ready=False, started=False)
    if len(history) > 1:
        status.last_state = ContainerState(terminated=terminated_state(history[1]))
    running = latest.state is RunState.RUNNING
    if running:
        started = spec.startup_probe is None or inputs.started.get(latest.id) is True
        status.started = started
        if init and not is_restartable_init(spec):
            status.ready = False
        elif spec.readiness_probe is not None:
            status.ready = started and inputs.ready.get(latest.id) is True
        else:
            status.ready = started
    elif init and latest.state is RunState.EXITED and not is_restartable_init(spec):
        status.ready = latest.exit_code == 0
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
        status.state = _waiting_state(reason, message)
        status.last_state = ContainerState(terminated=terminated_state(latest))
    if inputs.created_state and not running:
        # HyperContainer's Created: prepared, waiting for `start`; what ran before is the last state.
        status.state = _created()
        if latest.state is RunState.EXITED:
            status.last_state = ContainerState(terminated=terminated_state(latest))
    return status


def ephemeral_container_statuses(pod: Pod, rt: PodRuntimeStatus, inputs: StatusInputs) -> list[ContainerStatus]:
    """One per ephemeral container: never restarted, never ready; waiting until it first starts."""
    out = []
    for spec in pod.spec.ephemeral_containers:
        history = rt.history(spec.name)
        status = ContainerStatus(name=spec.name, image=spec.image or "", imageID="", ready=False, restart_count=0)
        if not history:
            status.state = _waiting(spec.name, inputs, "ContainerCreating")
        else:
            latest = history[0]
            status.image_id, status.container_id = latest.image_id, container_id(latest.id)
            status.state, status.started = _state(latest), latest.state is RunState.RUNNING
        out.append(status)
    return out


def _waiting(name: str, inputs: StatusInputs, default: str) -> ContainerState:
    reason, message = inputs.reasons.get(name, (default, ""))
    return _waiting_state(reason, message)


def _phase(pod: Pod, init_statuses: list[ContainerStatus], statuses: list[ContainerStatus],
           inputs: StatusInputs) -> tuple[str, str | None, str | None]:
    """(phase, reason, message): a terminal phase stays; otherwise the node's verdicts, then getPhase."""
    old = pod.status
    if old.phase in TERMINAL_PHASES:
        return old.phase, old.reason, old.message
    if inputs.eviction_message:
        return "Failed", "Evicted", inputs.eviction_message
    if inputs.rejection_message:
        # The kubelet's rejectPod: the admit handler's reason, its message prefixed.
        return "Failed", "Evicted", f"Pod was rejected: {inputs.rejection_message}"
    if inputs.deadline_exceeded:
        return "Failed", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
    if inputs.created_state:
        return "Pending", "Created", None
    return get_phase(pod, init_statuses, statuses, inputs.pod_is_terminal), None, None


def _conditions(pod: Pod, init_statuses: list[ContainerStatus], statuses: list[ContainerStatus], phase: str,
                sandbox_ready: bool, inputs: StatusInputs) -> list[PodCondition]:
    initialized = initialized_condition(pod, init_statuses, statuses, phase)
    containers_ready = containers_ready_condition(pod, init_statuses, statuses, phase)
    new = [
        Condition("PodReadyToStartContainers", "True" if sandbox_ready else "False"),
        initialized,
        ready_condition(pod, containers_ready, phase),
        containers_ready,
    ]
    if not any(c.type == "PodScheduled" for c in pod.status.conditions):
        new.append(Condition("PodScheduled", "True"))
    if inputs.eviction_message:
        # The kubelet marks a pod it evicts (PodDisruptionConditions, on by default since 1.26).
        new.append(Condition("DisruptionTarget", "True", "TerminationByKubelet", inputs.eviction_message))

    def make(cond: Condition, ltt: datetime | None) -> PodCondition:
        return PodCondition(type=cond.type, status=cond.status, reason=cond.reason or None,
                            message=cond.message or None, last_transition_time=ltt)

    return merge_conditions(pod.status.conditions, new, inputs.now, make)


def pod_status(pod: Pod, rt: PodRuntimeStatus, inputs: StatusInputs) -> PodStatus:
    """generateAPIPodStatus."""
    old = pod.status
    init_statuses = container_statuses(pod, pod.spec.init_containers, rt, inputs, init=True)
    statuses = container_statuses(pod, pod.spec.containers, rt, inputs, init=False)
    phase, reason, message = _phase(pod, init_statuses, statuses, inputs)
    sandbox = rt.sandboxes[0] if rt.sandboxes else None
    sandbox_ready = sandbox is not None and sandbox.ready and (bool(sandbox.ip) or bool(pod.spec.host_network))
    pod_ip = sandbox.ip if sandbox is not None and sandbox.ready and sandbox.ip else None
    if pod_ip is None and phase in TERMINAL_PHASES:
        pod_ip = old.pod_ip
    if pod.spec.host_network:
        pod_ip = inputs.host_ip or None
    return PodStatus(
        phase=phase, reason=reason or None, message=message or None,
        conditions=_conditions(pod, init_statuses, statuses, phase, sandbox_ready, inputs),
        hostIP=inputs.host_ip or None, hostIPs=[HostIP(ip=inputs.host_ip)] if inputs.host_ip else [],
        podIP=pod_ip, podIPs=[PodIP(ip=pod_ip)] if pod_ip else [],
        start_time=old.start_time or inputs.now,
        init_container_statuses=init_statuses, container_statuses=statuses,
        ephemeral_container_statuses=ephemeral_container_statuses(pod, rt, inputs),
        qosClass=qos_class(pod),
    )
