"""The agent's bookkeeping in the runtime: labels it puts on sandboxes and containers
(the kubelet's own keys) and the PodRuntimeStatus read back from them. Because
everything needed lives in the runtime's state, a restarted agent re-adopts its pods.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import TypeVar

from podbay.agent.cri import ContainerRuntime
from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState, SandboxRecord
from podbay.runtime.types import ContainerState, ContainerStatus, PodSandboxStatus, SandboxState

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
RESTART_COUNT = "io.kubernetes.container.restartCount"
SANDBOX_ATTEMPT = "podbay.io/sandbox.attempt"
SPEC_IMAGE = "podbay.io/container.image"
CONTAINER_KIND = "podbay.io/container.kind"  # init | sidecar | main | ephemeral


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


_RUN_STATES = {ContainerState.CREATED: RunState.CREATED, ContainerState.RUNNING: RunState.RUNNING,
               ContainerState.EXITED: RunState.EXITED, ContainerState.UNKNOWN: RunState.UNKNOWN}


def container_record(status: ContainerStatus) -> ContainerRecord:
    labels = status.labels
    return ContainerRecord(
        id=status.id,
        name=labels.get(CONTAINER_NAME) or status.metadata.name,
        state=_RUN_STATES[status.state],
        attempt=int(labels.get(RESTART_COUNT, status.metadata.attempt)),
        spec_image=labels.get(SPEC_IMAGE, ""),
        image=status.image,
        image_id=status.image_ref,
        created_at=_utc(status.created_at),
        started_at=_utc(status.started_at),
        finished_at=_utc(status.finished_at),
        exit_code=status.exit_code,
        signal=status.signal or None,
        reason=status.reason,
        message=status.message,
        pid=status.pid,
        init=labels.get(CONTAINER_KIND, "main") in ("init", "sidecar"),
    )


def sandbox_record(status: PodSandboxStatus) -> SandboxRecord:
    return SandboxRecord(id=status.id, ready=status.state is SandboxState.READY, ip=status.ip or None,
                         attempt=int(status.labels.get(SANDBOX_ATTEMPT, 0)), created_at=_utc(status.created_at))


_Record = TypeVar("_Record", ContainerRecord, SandboxRecord)


def _newest_first(items: list[_Record]) -> list[_Record]:
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(items, key=lambda r: (r.attempt, r.created_at or epoch), reverse=True)


async def runtime_pods(runtime: ContainerRuntime, uid: str | None = None) -> dict[str, PodRuntimeStatus]:
    """Every pod the runtime holds for this agent (or only pod `uid`), by pod uid."""
    selector = {POD_UID: uid} if uid else None
    pods: dict[str, PodRuntimeStatus] = {}
    sandboxes: dict[str, list[SandboxRecord]] = defaultdict(list)
    for sb in await runtime.list_pod_sandboxes(label_selector=selector):
        owner = sb.labels.get(POD_UID)
        if owner:
            sandboxes[owner].append(sandbox_record(sb))
    containers: dict[str, list[ContainerRecord]] = defaultdict(list)
    for c in await runtime.list_containers(label_selector=selector):
        owner = c.labels.get(POD_UID)
        if owner:
            containers[owner].append(container_record(c))
    for owner in set(sandboxes) | set(containers):
        pods[owner] = PodRuntimeStatus(uid=owner, sandboxes=_newest_first(sandboxes[owner]),
                                       containers=_newest_first(containers[owner]))
    return pods
