"""Small builders for unit tests of the agent's pure rules: real podbay.api models, so the
rules are tested on the shapes they meet in production."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState, SandboxRecord
from podbay.api import (
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, EphemeralContainer, ObjectMeta, Pod, PodCondition, PodReadinessGate, PodSpec, PodStatus,
)


def container(name: str, image: str = "busybox", **kw: Any) -> Container:
    return Container(name=name, image=image, **kw)


def sidecar(name: str, **kw: Any) -> Container:
    return container(name, restart_policy="Always", **kw)


def pod(containers: list[Container], init: list[Container] | None = None, restart_policy: str = "Always",
        deleting: bool = False, gates: list[str] | None = None, conditions: list[PodCondition] | None = None,
        ephemeral: list[Container] | None = None) -> Pod:
    return Pod(
        metadata=ObjectMeta(deletion_timestamp=datetime.now(timezone.utc) if deleting else None, uid="u1", name="p",
                            namespace="default"),
        spec=PodSpec(containers=containers, init_containers=init or [], restart_policy=restart_policy,
                     ephemeral_containers=[EphemeralContainer(name=c.name, image=c.image) for c in ephemeral or []],
                     readiness_gates=[PodReadinessGate(condition_type=g) for g in gates or []]),
        status=PodStatus(conditions=conditions or []),
    )


def rec(name: str, state: str, exit_code: int | None = None, image: str = "busybox", cid: str | None = None) -> ContainerRecord:
    return ContainerRecord(id=cid or f"id-{name}", name=name, state=RunState(state), spec_image=image,
                           exit_code=exit_code)


def runtime(*records: ContainerRecord, sandbox: bool = True, ready: bool = True, ip: str | None = "10.0.0.2") -> PodRuntimeStatus:
    boxes = [SandboxRecord(id="sb1", ready=ready, ip=ip)] if sandbox else []
    return PodRuntimeStatus(uid="u1", sandboxes=boxes, containers=list(records))


def running() -> ContainerState:
    return ContainerState(running=ContainerStateRunning())


def terminated(code: int) -> ContainerState:
    return ContainerState(terminated=ContainerStateTerminated(exit_code=code))


def waiting(reason: str = "ContainerCreating") -> ContainerState:
    return ContainerState(waiting=ContainerStateWaiting(reason=reason))


def cstatus(name: str, state: ContainerState, last_exit: int | None = None, ready: bool = False,
            started: bool | None = None) -> ContainerStatus:
    last = ContainerState(terminated=ContainerStateTerminated(exit_code=last_exit)) if last_exit is not None \
        else ContainerState()
    return ContainerStatus(name=name, state=state, last_state=last, ready=ready, started=started)
