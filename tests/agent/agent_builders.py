"""Small builders for unit tests of the agent's pure rules.

The rules read pods and container statuses by attribute (the podbay.api model
shape), so plain namespaces stand in for them here.
"""
from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState, SandboxRecord


def container(name: str, image: str = "busybox", **kw: Any) -> NS:
    base = dict(name=name, image=image, restart_policy=None, startup_probe=None, liveness_probe=None,
                readiness_probe=None)
    base.update(kw)
    return NS(**base)


def sidecar(name: str, **kw: Any) -> NS:
    return container(name, restart_policy="Always", **kw)


def pod(containers: list[NS], init: list[NS] | None = None, restart_policy: str = "Always",
        deleting: bool = False, gates: list[str] | None = None, conditions: list[NS] | None = None,
        ephemeral: list[NS] | None = None) -> NS:
    return NS(
        metadata=NS(deletion_timestamp="now" if deleting else None, uid="u1", name="p", namespace="default"),
        spec=NS(containers=containers, init_containers=init or [], ephemeral_containers=ephemeral or [],
                restart_policy=restart_policy, host_network=False,
                readiness_gates=[NS(condition_type=g) for g in gates or []]),
        status=NS(conditions=conditions or []),
    )


def rec(name: str, state: str, exit_code: int | None = None, image: str = "busybox", cid: str | None = None) -> ContainerRecord:
    return ContainerRecord(id=cid or f"id-{name}", name=name, state=RunState(state), spec_image=image,
                           exit_code=exit_code)


def runtime(*records: ContainerRecord, sandbox: bool = True, ready: bool = True, ip: str | None = "10.0.0.2") -> PodRuntimeStatus:
    boxes = [SandboxRecord(id="sb1", ready=ready, ip=ip)] if sandbox else []
    return PodRuntimeStatus(uid="u1", sandboxes=boxes, containers=list(records))


def running() -> NS:
    return NS(running=NS(started_at=None), terminated=None, waiting=None)


def terminated(code: int) -> NS:
    return NS(running=None, terminated=NS(exit_code=code), waiting=None)


def waiting(reason: str = "ContainerCreating") -> NS:
    return NS(running=None, terminated=None, waiting=NS(reason=reason))


def cstatus(name: str, state: NS, last_exit: int | None = None, ready: bool = False, started: bool | None = None) -> NS:
    last = NS(terminated=NS(exit_code=last_exit), running=None, waiting=None) if last_exit is not None else NS(
        terminated=None, running=None, waiting=None)
    return NS(name=name, state=state, last_state=last, ready=ready, started=started)
