"""What a sync must do to a pod: the kubelet's computePodActions (kuberuntime_manager.go).

Pure: takes the pod, the runtime's view of it and the probe results, returns
the actions. Back-off is applied afterwards by the caller, per container.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState
from podbay.api import Container, Pod
from podbay.api.models import is_restartable_init


@dataclass
class KillInfo:
    name: str
    message: str
    reason: str = ""  # "" | "LivenessProbe" | "StartupProbe" | "Changed" | "Unknown"


@dataclass
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str | None = None
    attempt: int = 0
    init_containers_to_start: list[int] = field(default_factory=list)
    containers_to_start: list[int] = field(default_factory=list)
    ephemeral_containers_to_start: list[int] = field(default_factory=list)
    containers_to_kill: dict[str, KillInfo] = field(default_factory=dict)


def should_restart_on_failure(pod: Pod) -> bool:
    return pod.spec.restart_policy != "Never"


def _succeeded(container: Container, status: PodRuntimeStatus) -> bool:
    c = status.find(container.name)
    return c is not None and c.state is RunState.EXITED and c.exit_code == 0


def _init_failed(c: ContainerRecord) -> bool:
    if c.state is RunState.EXITED and c.exit_code != 0:
        return True
    return c.state is RunState.UNKNOWN


def _changed(container: Container, c: ContainerRecord) -> bool:
    # Only the image of a container may change in a pod's spec.
    return bool(c.spec_image) and c.spec_image != container.image


def sandbox_changed(pod: Pod, status: PodRuntimeStatus) -> tuple[bool, int, str | None]:
    """(must create a new sandbox, its attempt, the current sandbox id): PodSandboxChanged."""
    if not status.sandboxes:
        return True, 0, None
    newest = status.sandboxes[0]
    ready = sum(1 for s in status.sandboxes if s.ready)
    if ready > 1 or not newest.ready:
        return True, newest.attempt + 1, newest.id
    if not pod.spec.host_network and not newest.ip:
        return True, newest.attempt + 1, newest.id
    return False, newest.attempt, newest.id


def should_container_be_restarted(container: Container, pod: Pod, status: PodRuntimeStatus) -> bool:
    """ShouldContainerBeRestarted for a main container."""
    if pod.metadata.deletion_timestamp is not None:
        return False
    c = status.find(container.name)
    if c is None:
        return True
    if c.state is RunState.RUNNING:
        return False
    if c.state in (RunState.UNKNOWN, RunState.CREATED):
        return True
    if pod.spec.restart_policy == "Never":
        return False
    if pod.spec.restart_policy == "OnFailure" and c.exit_code == 0:
        return False
    return True


def init_done(pod: Pod, status: PodRuntimeStatus) -> bool:
    """Whether initialization needs nothing more: findNextInitContainerToRun's `done`."""
    inits = pod.spec.init_containers
    if not inits:
        return True
    if any((c := status.find(m.name)) is not None and c.state is RunState.RUNNING for m in pod.spec.containers):
        return True
    if any((c := status.find(i.name)) is not None and _init_failed(c) for i in inits):
        return False
    for i in range(len(inits) - 1, -1, -1):
        c = status.find(inits[i].name)
        if c is None:
            continue
        if c.state is RunState.RUNNING:
            return False
        if c.state is RunState.EXITED:
            return i == len(inits) - 1
    return False


def compute_pod_actions(
    pod: Pod,
    status: PodRuntimeStatus,
    liveness: Mapping[str, bool] | None = None,
    startup: Mapping[str, bool] | None = None,
) -> PodActions:
    """`liveness`/`startup` map container id → last probe result (absent: not probed yet)."""
    liveness = liveness or {}
    startup = startup or {}
    create, attempt, sandbox_id = sandbox_changed(pod, status)
    actions = PodActions(kill_pod=create, create_sandbox=create, sandbox_id=sandbox_id, attempt=attempt)
    if create:
        _new_sandbox_actions(pod, status, actions)
        return actions

    initialized = _compute_init_actions(pod, status, actions, liveness, startup)
    if not actions.kill_pod and pod.metadata.deletion_timestamp is None:
        # Ephemeral containers may start before initialization completes, and never restart:
        # only one that never ran is started.
        actions.ephemeral_containers_to_start = [
            i for i, ec in enumerate(pod.spec.ephemeral_containers) if status.find(ec.name) is None]
    if actions.kill_pod or not initialized:
        return actions

    keep = _compute_container_actions(pod, status, actions, liveness, startup)
    if keep == 0 and not actions.containers_to_start:
        actions.kill_pod = True
        # Sidecars must not keep a finished pod alive.
        actions.init_containers_to_start = []
    return actions


def _new_sandbox_actions(pod: Pod, status: PodRuntimeStatus, actions: PodActions) -> None:
    """computePodActions' createPodSandbox branch: what starts first in a new sandbox, if anything."""
    if not should_restart_on_failure(pod) and actions.attempt != 0 and status.containers:
        # Everything already ran once and must not run again: just clean up.
        actions.create_sandbox = False
        return
    to_start = [
        i for i, c in enumerate(pod.spec.containers)
        if not (pod.spec.restart_policy == "OnFailure" and _succeeded(c, status))
    ]
    if not to_start and init_done(pod, status):
        actions.create_sandbox = False
        return
    if pod.spec.init_containers:
        actions.init_containers_to_start = [0]
        return
    actions.containers_to_start = to_start


def _compute_container_actions(
    pod: Pod,
    status: PodRuntimeStatus,
    actions: PodActions,
    liveness: Mapping[str, bool],
    startup: Mapping[str, bool],
) -> int:
    """computePodActions' loop over the main containers: fills starts and kills, returns how
    many running containers are kept."""
    keep = 0
    for i, container in enumerate(pod.spec.containers):
        c = status.find(container.name)
        if c is None or c.state is not RunState.RUNNING:
            if should_container_be_restarted(container, pod, status):
                actions.containers_to_start.append(i)
                if c is not None and c.state is RunState.UNKNOWN:
                    # Unknown may still be running: never risk two instances.
                    actions.containers_to_kill[c.id] = KillInfo(
                        container.name, f"Container {container.name} is in unknown state, will be restarted", "Unknown")
            continue
        restart = should_restart_on_failure(pod)
        if _changed(container, c):
            message, reason, restart = f"Container {container.name} definition changed", "Changed", True
        elif liveness.get(c.id) is False:
            message, reason = f"Container {container.name} failed liveness probe", "LivenessProbe"
        elif startup.get(c.id) is False:
            message, reason = f"Container {container.name} failed startup probe", "StartupProbe"
        else:
            keep += 1
            continue
        if restart:
            message += ", will be restarted"
            actions.containers_to_start.append(i)
        actions.containers_to_kill[c.id] = KillInfo(container.name, message, reason)
    return keep


def _compute_init_actions(
    pod: Pod,
    status: PodRuntimeStatus,
    actions: PodActions,
    liveness: Mapping[str, bool],
    startup: Mapping[str, bool],
) -> bool:
    """computeInitContainerActions: fills init actions, returns whether the pod is initialized."""
    inits = pod.spec.init_containers
    if not inits:
        return True
    initialized = any(
        (c := status.find(m.name)) is not None and c.state in (RunState.CREATED, RunState.RUNNING)
        for m in pod.spec.containers
    )
    walk = _InitWalk(len(inits) - 1, should_restart_on_failure(pod), actions, liveness, startup,
                     initialized=initialized, previously=initialized)
    # Walk backwards: completed init containers may have been removed from the
    # runtime, so the last one seen is the progress marker.
    for i in range(len(inits) - 1, -1, -1):
        container = inits[i]
        sidecar = is_restartable_init(container)
        c = status.find(container.name)
        if c is None:
            if walk.previously and sidecar:
                walk.to_start.append(i)
            continue
        if walk.previously and not sidecar:
            continue
        if not walk.step(i, container, c):
            actions.kill_pod = True
            actions.init_containers_to_start = []
            return False
        walk.previously = True

    if not walk.previously:
        walk.to_start.append(0)
    actions.init_containers_to_start = list(reversed(walk.to_start))
    return walk.initialized


@dataclass
class _InitWalk:
    """computeInitContainerActions' state while it walks the init containers from the last one back."""

    last: int  # the index of the last init container
    restart_on_failure: bool
    actions: PodActions
    liveness: Mapping[str, bool]
    startup: Mapping[str, bool]
    initialized: bool
    previously: bool  # a later init container (or a main one) was seen: this one ran before
    to_start: list[int] = field(default_factory=list)

    def step(self, i: int, container: Container, c: ContainerRecord) -> bool:
        """The actions for init container `i`, which ran; False: it failed and must not run again."""
        sidecar = is_restartable_init(container)
        if c.state is RunState.CREATED:
            self.to_start.append(i)
        elif c.state is RunState.RUNNING:
            if sidecar:
                self._running_sidecar(i, container, c)
        elif c.state is RunState.EXITED:
            if sidecar:
                self.to_start.append(i)
            elif _init_failed(c):
                if not self.restart_on_failure:
                    return False
                self.to_start.append(i)
            elif i == self.last:
                self.initialized = True
            else:
                self.to_start.append(i + 1)
        else:
            if not sidecar and not self.restart_on_failure:
                return False
            self._restart(i, container, c, "is in unknown state, will be restarted", "Unknown")
        return True

    def _running_sidecar(self, i: int, container: Container, c: ContainerRecord) -> None:
        if container.startup_probe is not None:
            result = self.startup.get(c.id)
            if result is False:
                self._restart(i, container, c, "failed startup probe", "StartupProbe")
            if result is not True:
                return
        if i == self.last:
            self.initialized = True
        elif not self.previously:
            self.to_start.append(i + 1)
        if _changed(container, c):
            self._restart(i, container, c, "definition changed", "Changed")
        elif container.liveness_probe is not None and self.liveness.get(c.id) is False:
            self._restart(i, container, c, "failed liveness probe", "LivenessProbe")

    def _restart(self, i: int, container: Container, c: ContainerRecord, what: str, reason: str) -> None:
        self.actions.containers_to_kill[c.id] = KillInfo(container.name, f"Init container {container.name} {what}", reason)
        self.to_start.append(i)
