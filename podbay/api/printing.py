"""How kubectl prints a pod's READY, STATUS and RESTARTS columns and ages
(kubectl's printPod and duration.HumanDuration), as pure functions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from podbay.api.models import ContainerStatus, Pod, PodStatus


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


@dataclass
class _Tally:
    """What printPod sums over the container statuses: restarts, when the newest one was, and
    ready containers."""
    restarts: int = 0
    ready: int = 0
    last_restart: datetime | None = None

    def count_restarts(self, cs: ContainerStatus) -> None:
        self.restarts += cs.restart_count
        if not cs.restart_count:
            return
        t = cs.last_state.terminated if cs.last_state else None
        finished = t.finished_at if t is not None else None
        if finished is not None and (self.last_restart is None or finished > self.last_restart):
            self.last_restart = finished


def pod_row(pod: Pod, now: datetime | None = None) -> PodRow:
    # Imported here: ages (human_duration) serve the command line, which must not load the models.
    from podbay.api.models import is_restartable_init
    spec, status = pod.spec, pod.status
    total = len(spec.containers) + sum(1 for c in spec.init_containers if is_restartable_init(c))
    tally = _Tally()
    init_reason = _init_containers_reason(pod, tally)
    reason = init_reason or status.reason or status.phase or ""
    initialized = any(c.type == "Initialized" and c.status == "True" for c in status.conditions)
    if init_reason is None or initialized:
        reason = _containers_reason(status, tally, reason)
    if pod.metadata.deletion_timestamp is not None:
        reason = "Unknown" if status.reason == "NodeLost" else "Terminating"
    shown = str(tally.restarts)
    if tally.restarts and tally.last_restart is not None:
        shown = f"{tally.restarts} ({age(tally.last_restart, now)} ago)"
    return PodRow(ready=f"{tally.ready}/{total}", status=reason, restarts=shown)


def _init_containers_reason(pod: Pod, tally: _Tally) -> str | None:
    """printPod's walk of the init containers: the STATUS of the first one that holds the pod
    back (Init:<reason> or Init:<n>/<count>), or None when none does."""
    for i, cs in enumerate(pod.status.init_container_statuses):
        tally.count_restarts(cs)
        state = cs.state
        term = state.terminated if state else None
        wait = state.waiting if state else None
        if term is not None and term.exit_code == 0:
            continue
        if _restartable(pod, cs.name) and cs.started:
            if cs.ready:
                tally.ready += 1
            continue
        if term is not None:
            if not term.reason:
                return f"Init:Signal:{term.signal}" if term.signal else f"Init:ExitCode:{term.exit_code}"
            return "Init:" + term.reason
        if wait is not None and wait.reason and wait.reason != "PodInitializing":
            return "Init:" + wait.reason
        return f"Init:{i}/{len(pod.spec.init_containers)}"
    return None


def _containers_reason(status: PodStatus, tally: _Tally, reason: str) -> str:
    """printPod's walk of the app containers, last first: the STATUS the first listed waiting or
    terminated one gives, else `reason`; a Completed pod with a container still running is
    Running or NotReady."""
    has_running = False
    for cs in reversed(status.container_statuses):
        tally.count_restarts(cs)
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
            tally.ready += 1
    if reason == "Completed" and has_running:
        pod_ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions)
        reason = "Running" if pod_ready else "NotReady"
    return reason
