"""How kubectl prints a pod's READY, STATUS and RESTARTS columns and ages
(kubectl's printPod and duration.HumanDuration), as pure functions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from podbay.api.models import ContainerStatus, Pod


@dataclass(frozen=True)
class PodRow:
    ready: str
    status: str
    restarts: str


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rem = minutes % 60
        return f"{hours}h{rem}m" if rem else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rem = hours % 24
        return f"{days}d{rem}h" if rem else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        rem = days % 365
        return f"{years}y{rem}d" if rem else f"{years}y"
    return f"{years}y"


def age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "<unknown>"
    now = now or datetime.now(timezone.utc)
    return human_duration((now - when).total_seconds())


def _restartable(pod: Pod, name: str) -> bool:
    from podbay.api.models import is_restartable_init
    return any(c.name == name and is_restartable_init(c) for c in pod.spec.init_containers)


def pod_row(pod: Pod, now: datetime | None = None) -> PodRow:
    # Imported here: ages (human_duration) serve the command line, which must not load the models.
    from podbay.api.models import is_restartable_init
    spec, status = pod.spec, pod.status
    restarts = 0
    total = len(spec.containers) + sum(1 for c in spec.init_containers if is_restartable_init(c))
    ready = 0
    last_restart: datetime | None = None
    reason = status.reason or status.phase or ""

    def note_restart(cs: ContainerStatus) -> None:
        nonlocal last_restart
        t = cs.last_state.terminated if cs.last_state else None
        if t is not None and t.finished_at is not None and (last_restart is None or t.finished_at > last_restart):
            last_restart = t.finished_at

    initializing = False
    for i, cs in enumerate(status.init_container_statuses):
        restarts += cs.restart_count
        if cs.restart_count:
            note_restart(cs)
        state = cs.state
        term = state.terminated if state else None
        wait = state.waiting if state else None
        if term is not None and term.exit_code == 0:
            continue
        if _restartable(pod, cs.name) and cs.started:
            if cs.ready:
                ready += 1
            continue
        if term is not None:
            if not term.reason:
                reason = f"Init:Signal:{term.signal}" if term.signal else f"Init:ExitCode:{term.exit_code}"
            else:
                reason = "Init:" + term.reason
        elif wait is not None and wait.reason and wait.reason != "PodInitializing":
            reason = "Init:" + wait.reason
        else:
            reason = f"Init:{i}/{len(spec.init_containers)}"
        initializing = True
        break

    initialized = any(c.type == "Initialized" and c.status == "True" for c in status.conditions)
    if not initializing or initialized:
        has_running = False
        for cs in reversed(status.container_statuses):
            restarts += cs.restart_count
            if cs.restart_count:
                note_restart(cs)
            state = cs.state
            term = state.terminated if state else None
            wait = state.waiting if state else None
            if wait is not None and wait.reason:
                reason = wait.reason
            elif term is not None and term.reason:
                reason = term.reason
            elif term is not None:
                reason = f"Signal:{term.signal}" if term.signal else f"ExitCode:{term.exit_code}"
            elif cs.ready and state is not None and state.running is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions)
            reason = "Running" if pod_ready else "NotReady"

    if pod.metadata.deletion_timestamp is not None:
        reason = "Unknown" if status.reason == "NodeLost" else "Terminating"

    shown = str(restarts)
    if restarts and last_restart is not None:
        shown = f"{restarts} ({age(last_restart, now)} ago)"
    return PodRow(ready=f"{ready}/{total}", status=reason, restarts=shown)
