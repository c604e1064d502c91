"""The agent's bookkeeping in the runtime: labels it puts on sandboxes and containers
(the kubelet's own keys) and the PodRuntimeStatus read back from them. Because
everything needed lives in the runtime's state, a restarted agent re-adopts its pods.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState, SandboxRecord

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
RESTART_COUNT = "io.kubernetes.container.restartCount"
SANDBOX_ATTEMPT = "podbay.io/sandbox.attempt"
SPEC_IMAGE = "podbay.io/container.image"
CONTAINER_KIND = "podbay.io/container.kind"  # init | sidecar | main | ephemeral


def _enum_name(value: Any) -> str:
    name = getattr(value, "name", None) or getattr(value, "value", None) or str(value)
    return str(name).upper()


def _time(value: Any) -> datetime | None:
    if value in (None, 0, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        seconds = value / 1e9 if value > 1e12 else value
        return datetime.fromtimestamp(seconds, timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _run_state(value: Any) -> RunState:
    name = _enum_name(value)
    for state in (RunState.CREATED, RunState.RUNNING, RunState.EXITED):
        if state.value.upper() in name:
            return state
    return RunState.UNKNOWN


def container_record(status: Any) -> ContainerRecord:
    labels = dict(getattr(status, "labels", None) or {})
    image = getattr(status, "image", "")
    image = getattr(image, "image", image) or ""
    started = _time(getattr(status, "started_at", None))
    return ContainerRecord(
        id=status.id,
        name=labels.get(CONTAINER_NAME) or status.metadata.name,
        state=_run_state(status.state),
        attempt=int(labels.get(RESTART_COUNT, getattr(getattr(status, "metadata", None), "attempt", 0) or 0)),
        spec_image=labels.get(SPEC_IMAGE, ""),
        image=str(image),
        image_id=str(getattr(status, "image_ref", "") or getattr(status, "image_id", "") or ""),
        created_at=_time(getattr(status, "created_at", None)),
        started_at=started,
        finished_at=_time(getattr(status, "finished_at", None)),
        exit_code=getattr(status, "exit_code", None),
        signal=getattr(status, "signal", None) or None,
        reason=getattr(status, "reason", "") or "",
        message=getattr(status, "message", "") or "",
        pid=getattr(status, "pid", None),
        init=labels.get(CONTAINER_KIND, "main") in ("init", "sidecar"),
    )


def sandbox_record(status: Any) -> SandboxRecord:
    labels = dict(getattr(status, "labels", None) or {})
    network = getattr(status, "network", None)
    ip = getattr(network, "ip", None) if network is not None else getattr(status, "ip", None)
    return SandboxRecord(id=status.id, ready="NOTREADY" not in _enum_name(status.state),
                         ip=ip or None, attempt=int(labels.get(SANDBOX_ATTEMPT, 0)),
                         created_at=_time(getattr(status, "created_at", None)))


def _newest_first(items: list[Any]) -> list[Any]:
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(items, key=lambda r: (r.attempt, r.created_at or epoch), reverse=True)


async def runtime_pods(runtime: Any, uid: str | None = None) -> dict[str, PodRuntimeStatus]:
    """Every pod the runtime holds for this agent (or only pod `uid`), by pod uid."""
    selector = {POD_UID: uid} if uid else None
    pods: dict[str, PodRuntimeStatus] = {}
    sandboxes: dict[str, list[SandboxRecord]] = defaultdict(list)
    for sb in await runtime.list_pod_sandboxes(label_selector=selector):
        owner = (getattr(sb, "labels", None) or {}).get(POD_UID)
        if owner:
            sandboxes[owner].append(sandbox_record(sb))
    containers: dict[str, list[ContainerRecord]] = defaultdict(list)
    for c in await runtime.list_containers(label_selector=selector):
        owner = (getattr(c, "labels", None) or {}).get(POD_UID)
        if owner:
            containers[owner].append(container_record(c))
    for owner in set(sandboxes) | set(containers):
        pods[owner] = PodRuntimeStatus(uid=owner, sandboxes=_newest_first(sandboxes[owner]),
                                       containers=_newest_first(containers[owner]))
    return pods
