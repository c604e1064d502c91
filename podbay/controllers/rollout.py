"""The Deployment controller's pure rules (pkg/controller/deployment/util): the pod-template-hash,
maxSurge/maxUnavailable arithmetic of a rolling update, and the status and conditions."""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta

from podbay.api.apps import Deployment, DeploymentCondition, DeploymentStatus, PodTemplateSpec
from podbay.api.base import IntOrString
from podbay.api.serialize import to_dict

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Annotations of a Deployment that its ReplicaSets do not copy (skipCopyAnnotation).
SKIPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", REVISION, "deployment.kubernetes.io/revision-history",
                       DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to")
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString

# Progressing reasons (deploymentutil) and Available's.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def _pruned(value: object) -> object:
    """Empty maps and lists dropped: Go's semantic equality sees `resources: {}` and no
    resources as the same zero value."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def canonical_template(template: PodTemplateSpec, without_hash: bool = False) -> object:
    """The template as compared (EqualIgnoreHash) and hashed: pruned, optionally without the
    pod-template-hash label."""
    data = to_dict(template)
    if without_hash:
        data.get("metadata", {}).get("labels", {}).pop(POD_TEMPLATE_HASH, None)
    return _pruned(data)


def compute_hash(template: PodTemplateSpec, collision_count: int | None) -> str:
    """controller.ComputeHash: fnv32a of the template, then (when there was a collision) the
    count as 8 little-endian bytes, printed in decimal and safe-encoded. Kubernetes feeds the
    hash go-spew's dump of the v1 struct, whose bytes follow the struct layout of its own
    release (docs/support.md); podbay feeds it the template's canonical JSON (sorted keys, as the
    API stores it), so a hash is stable across podbay but not equal to a real cluster's."""
    data = json.dumps(canonical_template(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0" * 4
    return safe_encode(str(fnv32a(data)))


def scaled_value(value: IntOrString | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: IntOrString | None, max_unavailable: IntOrString | None,
                       replicas: int) -> tuple[int, int]:
    """ResolveFenceposts: surge rounds up, unavailability down; both 0 would stall, so
    unavailability becomes 1."""
    surge = scaled_value(max_surge, replicas, True)
    unavailable = scaled_value(max_unavailable, replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def surge_and_unavailable(d: Deployment) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; Recreate allows neither."""
    replicas = d.spec.replicas or 0
    ru = d.spec.strategy.rolling_update
    if d.spec.strategy.type != "RollingUpdate" or ru is None:
        return 0, 0
    surge, unavailable = resolve_fenceposts(ru.max_surge, ru.max_unavailable, replicas)
    return surge, min(unavailable, replicas)


def new_rs_new_replicas(replicas: int, max_surge: int, all_spec_replicas: int, new_rs_replicas: int) -> int:
    """NewRSNewReplicas (rolling): scale the new set up as far as replicas + maxSurge allows."""
    max_total = replicas + max_surge
    if all_spec_replicas >= max_total:
        return new_rs_replicas
    return new_rs_replicas + max(0, min(max_total - all_spec_replicas, replicas - new_rs_replicas))


@dataclass(frozen=True)
class OldSet:
    """An old ReplicaSet as the rolling update counts it: wanted and available pods."""
    name: str
    replicas: int
    available: int


def old_sets_scale_down(replicas: int, max_unavailable: int, new_spec: int, new_available: int,
                        old: list[OldSet]) -> dict[str, int]:
    """reconcileOldReplicaSets: the new replica counts of the old sets (oldest first in `old`).
    First their unhealthy pods go (cleanupUnhealthyReplicas), then available ones while at
    least replicas - maxUnavailable stay available (scaleDownOldReplicaSetsForRollingUpdate)."""
    all_pods = new_spec + sum(o.replicas for o in old)
    if sum(o.replicas for o in old) == 0:
        return {}
    min_available = replicas - max_unavailable
    new_unavailable = new_spec - new_available
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    counts = {o.name: o.replicas for o in old}
    cleaned = 0
    for o in old:
        if cleaned >= max_scaled_down:
            break
        if o.replicas == 0 or o.replicas == o.available:
            continue
        down = min(max_scaled_down - cleaned, o.replicas - o.available)
        counts[o.name] = o.replicas - down
        cleaned += down
    available = new_available + sum(min(o.available, counts[o.name]) for o in old)
    total_down = available - min_available
    done = 0
    if total_down > 0:
        for o in old:
            if done >= total_down:
                break
            if counts[o.name] == 0:
                continue
            down = min(counts[o.name], total_down - done)
            counts[o.name] -= down
            done += down
    original = {o.name: o.replicas for o in old}
    return {name: n for name, n in counts.items() if n != original[name]}


def deployment_complete(d: Deployment, status: DeploymentStatus) -> bool:
    replicas = d.spec.replicas or 0
    return (status.updated_replicas or 0) == replicas and (status.replicas or 0) == replicas \
        and (status.available_replicas or 0) == replicas and (status.observed_generation or 0) >= (d.metadata.generation or 0)


def set_condition(status: DeploymentStatus, cond: DeploymentCondition) -> None:
    """SetDeploymentCondition: the same status and reason is no change; the same status keeps
    its transition time."""
    current = next((c for c in status.conditions if c.type == cond.type), None)
    if current is not None and current.status == cond.status and current.reason == cond.reason:
        return
    if current is not None and current.status == cond.status:
        cond.last_transition_time = current.last_transition_time
    status.conditions = [c for c in status.conditions if c.type != cond.type] + [cond]


def condition(type_: str, status: str, reason: str, message: str, at: datetime) -> DeploymentCondition:
    return DeploymentCondition(type=type_, status=status, reason=reason, message=message, last_update_time=at,
                               last_transition_time=at)


def progress_status(d: Deployment, status: DeploymentStatus, new_rs_name: str | None, at: datetime) -> None:
    """syncRolloutStatus's Progressing condition on the freshly counted `status` (which carries
    the old conditions)."""
    if d.spec.progress_deadline_seconds is None:
        return
    current = next((c for c in status.conditions if c.type == "Progressing"), None)
    if status.replicas == status.updated_replicas and current is not None and current.reason == NEW_RS_AVAILABLE:
        return
    old = d.status
    if deployment_complete(d, status):
        set_condition(status, condition("Progressing", "True", NEW_RS_AVAILABLE,
                                        f'ReplicaSet "{new_rs_name}" has successfully progressed.', at))
    elif (status.updated_replicas or 0) > (old.updated_replicas or 0) \
            or (status.replicas or 0) - (status.updated_replicas or 0) < (old.replicas or 0) - (old.updated_replicas or 0) \
            or (status.ready_replicas or 0) > (old.ready_replicas or 0) \
            or (status.available_replicas or 0) > (old.available_replicas or 0):
        message = f'ReplicaSet "{new_rs_name}" is progressing.' if new_rs_name else f'Deployment "{d.metadata.name}" is progressing.'
        cond = condition("Progressing", "True", RS_UPDATED, message, at)
        if current is not None and current.status == "True":
            cond.last_transition_time = current.last_transition_time
        status.conditions = [c for c in status.conditions if c.type != "Progressing"] + [cond]
    elif current is not None and current.reason != TIMED_OUT and current.last_update_time is not None \
            and current.last_update_time + timedelta(seconds=d.spec.progress_deadline_seconds) < at:
        set_condition(status, condition("Progressing", "False", TIMED_OUT,
                                        f'ReplicaSet "{new_rs_name}" has timed out progressing.', at))


@dataclass(frozen=True)
class ActiveSet:
    """A ReplicaSet with pods, as proportional scaling weighs it."""
    name: str
    replicas: int
    max_replicas: int | None  # its deployment.kubernetes.io/max-replicas annotation
    created: datetime


def _round(x: float) -> int:
    """integer.RoundToInt32: halves away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def proportional_sizes(replicas: int, surge: int, sets: list[ActiveSet], status_replicas: int) -> dict[str, int]:
    """dc.scale for a rolling update caught with several active sets: the replicas added (or
    removed) are shared in proportion to each set's size against the size the deployment had
    (its max-replicas annotation), larger sets first (newer first when adding, older first when
    removing); the rounding leftover goes to the first."""
    allowed = replicas + surge if replicas > 0 else 0
    to_add = allowed - sum(s.replicas for s in sets)
    if to_add > 0:
        order = sorted(sets, key=lambda s: (-s.replicas, -s.created.timestamp()))
    elif to_add < 0:
        order = sorted(sets, key=lambda s: (-s.replicas, s.created.timestamp()))
    else:
        return {s.name: s.replicas for s in sets}
    sizes: dict[str, int] = {}
    added = 0
    for s in order:
        proportion = 0
        if s.replicas != 0 and to_add != added:
            if replicas == 0:
                fraction = -s.replicas
            else:
                before = s.max_replicas or status_replicas
                fraction = _round(s.replicas * allowed / before) - s.replicas if before else 0
            proportion = min(fraction, to_add - added) if to_add > 0 else max(fraction, to_add - added)
        sizes[s.name] = s.replicas + proportion
        added += proportion
    first = order[0].name
    sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes
