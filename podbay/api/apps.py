"""apps/v1 workloads (ReplicaSet, Deployment), core/v1's ReplicationController and
autoscaling/v1's Scale, mirroring Kubernetes' Go types field for field, with their defaulting,
validation and the label-selector rules the controllers share."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from podbay.api.base import IntOrString, Model, Time
from podbay.api.defaults import apply_pod_defaults
from podbay.api.errors import FieldError
from podbay.api.models import ObjectMeta, OwnerReference, Pod, PodSpec
from podbay.api.validation import validate_metadata, validate_pod

# --- selectors and templates ----------------------------------------------------


class LabelSelectorRequirement(Model):
    key: str = ""
    operator: str = ""
    values: list[str] = Field(default_factory=list)


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)


class PodTemplateSpec(Model):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec = Field(default_factory=PodSpec)


SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def selector_matches(selector: LabelSelector, labels: dict[str, str]) -> bool:
    """metav1.LabelSelectorAsSelector(...).Matches: every matchLabels pair and expression holds.
    An empty selector matches everything (callers refuse empty selectors where Kubernetes does)."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def selector_string(selector: LabelSelector) -> str:
    """The selector in the label-selector query syntax (Scale's status.selector, `-l`)."""
    parts = [f"{k}={v}" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        if req.operator in ("In", "NotIn"):
            parts.append(f"{req.key} {req.operator.lower()} ({','.join(sorted(req.values))})")
        elif req.operator == "Exists":
            parts.append(req.key)
        else:
            parts.append(f"!{req.key}")
    return ",".join(parts)


def controller_of(meta: ObjectMeta) -> OwnerReference | None:
    """metav1.GetControllerOf: the owner reference with controller: true."""
    return next((r for r in meta.owner_references if r.controller), None)


# --- ReplicaSet -------------------------------------------------------------------


class ReplicaSetCondition(Model):
    type: str = ""
    status: str = ""
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class ReplicaSetSpec(Model):
    replicas: int | None = None
    min_ready_seconds: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec = Field(default_factory=PodTemplateSpec)


class ReplicaSetStatus(Model):
    replicas: int = 0
    fully_labeled_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    terminating_replicas: int | None = None
    observed_generation: int | None = None
    conditions: list[ReplicaSetCondition] = Field(default_factory=list)


class ReplicaSet(Model):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["ReplicaSet"] = "ReplicaSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ReplicaSetSpec = Field(default_factory=ReplicaSetSpec)
    status: ReplicaSetStatus = Field(default_factory=ReplicaSetStatus)


# --- ReplicationController (core/v1: the ReplicaSet's predecessor, equality selectors only) ---


class ReplicationControllerSpec(Model):
    replicas: int | None = None
    min_ready_seconds: int | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    template: PodTemplateSpec | None = None


class ReplicationController(Model):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ReplicationController"] = "ReplicationController"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ReplicationControllerSpec = Field(default_factory=ReplicationControllerSpec)
    status: ReplicaSetStatus = Field(default_factory=ReplicaSetStatus)


# --- Deployment -------------------------------------------------------------------


class RollingUpdateDeployment(Model):
    max_unavailable: IntOrString | None = None
    max_surge: IntOrString | None = None


class DeploymentStrategy(Model):
    type: str | None = None
    rolling_update: RollingUpdateDeployment | None = None


class DeploymentSpec(Model):
    replicas: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec = Field(default_factory=PodTemplateSpec)
    strategy: DeploymentStrategy = Field(default_factory=DeploymentStrategy)
    min_ready_seconds: int | None = None
    revision_history_limit: int | None = None
    paused: bool | None = None
    progress_deadline_seconds: int | None = None


class DeploymentCondition(Model):
    type: str = ""
    status: str = ""
    last_update_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class DeploymentStatus(Model):
    observed_generation: int | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    unavailable_replicas: int | None = None
    terminating_replicas: int | None = None
    conditions: list[DeploymentCondition] = Field(default_factory=list)
    collision_count: int | None = None


class Deployment(Model):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DeploymentSpec = Field(default_factory=DeploymentSpec)
    status: DeploymentStatus = Field(default_factory=DeploymentStatus)


# --- autoscaling/v1 Scale ------------------------------------------------------------


class ScaleSpec(Model):
    replicas: int | None = None


class ScaleStatus(Model):
    replicas: int = 0
    selector: str | None = None


class Scale(Model):
    api_version: Literal["autoscaling/v1"] = "autoscaling/v1"
    kind: Literal["Scale"] = "Scale"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ScaleSpec = Field(default_factory=ScaleSpec)
    status: ScaleStatus = Field(default_factory=ScaleStatus)


# --- defaulting (pkg/apis/apps/v1/defaults.go, core/v1 for the RC) -----------------------


def default_template(template: PodTemplateSpec) -> None:
    """SetDefaults_PodSpec on a template: what a pod made from it would be defaulted with."""
    pod = Pod(metadata=template.metadata, spec=template.spec)
    apply_pod_defaults(pod)
    template.metadata.namespace = None  # a template has no namespace; the pod gets its owner's


def default_replica_set(rs: ReplicaSet) -> None:
    if rs.spec.replicas is None:
        rs.spec.replicas = 1
    default_template(rs.spec.template)


def default_replication_controller(rc: ReplicationController) -> None:
    """SetDefaults_ReplicationController: an absent selector (and template labels) come from the other."""
    if rc.spec.template is not None:
        labels = rc.spec.template.metadata.labels
        if not rc.spec.selector:
            rc.spec.selector = dict(labels)
        if not labels and rc.spec.selector:
            rc.spec.template.metadata.labels = dict(rc.spec.selector)
        default_template(rc.spec.template)
    if rc.spec.replicas is None:
        rc.spec.replicas = 1


def default_deployment(d: Deployment) -> None:
    spec = d.spec
    if spec.replicas is None:
        spec.replicas = 1
    strategy = spec.strategy
    if not strategy.type:
        strategy.type = "RollingUpdate"
    if strategy.type == "RollingUpdate":
        strategy.rolling_update = strategy.rolling_update or RollingUpdateDeployment()
        if strategy.rolling_update.max_unavailable is None:
            strategy.rolling_update.max_unavailable = "25%"
        if strategy.rolling_update.max_surge is None:
            strategy.rolling_update.max_surge = "25%"
    if spec.revision_history_limit is None:
        spec.revision_history_limit = 10
    if spec.progress_deadline_seconds is None:
        spec.progress_deadline_seconds = 600
    default_template(spec.template)


# --- validation (pkg/apis/apps/validation) -----------------------------------------------


def non_negative(path: str, value: int | None) -> list[FieldError]:
    if value is not None and value < 0:
        return [FieldError(path, value, "Invalid value: must be greater than or equal to 0")]
    return []


def validate_selector(path: str, selector: LabelSelector | None) -> list[FieldError]:
    if selector is None:
        return [FieldError(path, None, "Required value")]
    errs: list[FieldError] = []
    if not selector.match_labels and not selector.match_expressions:
        errs.append(FieldError(path, None, "Invalid value: empty selector is invalid for deployment"))
    for i, req in enumerate(selector.match_expressions):
        rp = f"{path}.matchExpressions[{i}]"
        if req.operator not in SELECTOR_OPERATORS:
            errs.append(FieldError(f"{rp}.operator", req.operator, "Unsupported value: supported values: "
                                   + ", ".join(f'"{o}"' for o in SELECTOR_OPERATORS)))
        elif req.operator in ("In", "NotIn") and not req.values:
            errs.append(FieldError(f"{rp}.values", None,
                                   "Required value: must be specified when `operator` is 'In' or 'NotIn'"))
        elif req.operator in ("Exists", "DoesNotExist") and req.values:
            errs.append(FieldError(f"{rp}.values", None,
                                   "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    return errs


def validate_template(path: str, template: PodTemplateSpec, restart_policies: tuple[str, ...]) -> list[FieldError]:
    """ValidatePodTemplateSpec: the pod spec's errors under `path`.spec, then the restart policy
    the owning controller allows."""
    probe = Pod(metadata=template.metadata.model_copy(update={"name": "template"}), spec=template.spec)
    errs: list[FieldError] = []
    for e in validate_pod(probe):
        if e.path.startswith("metadata.name"):
            continue  # a template has no name of its own
        errs.append(FieldError(f"{path}.{e.path}", e.value, e.message))
    policy = template.spec.restart_policy
    if policy not in restart_policies:
        errs.append(FieldError(f"{path}.spec.restartPolicy", policy, "Unsupported value: supported values: "
                               + ", ".join(f'"{p}"' for p in restart_policies)))
    return errs


def _selector_and_template(selector: LabelSelector | None, template: PodTemplateSpec) -> list[FieldError]:
    errs = validate_selector("spec.selector", selector)
    if selector is not None and not errs and not selector_matches(selector, template.metadata.labels):
        errs.append(FieldError("spec.template.metadata.labels", template.metadata.labels,
                               "Invalid value: `selector` does not match template `labels`"))
    return errs + validate_template("spec.template", template, ("Always",))


def validate_replica_set(rs: ReplicaSet) -> list[FieldError]:
    errs = validate_metadata(rs.metadata)
    errs += non_negative("spec.replicas", rs.spec.replicas)
    errs += non_negative("spec.minReadySeconds", rs.spec.min_ready_seconds)
    return errs + _selector_and_template(rs.spec.selector, rs.spec.template)


def validate_replication_controller(rc: ReplicationController) -> list[FieldError]:
    errs = validate_metadata(rc.metadata)
    errs += non_negative("spec.replicas", rc.spec.replicas)
    errs += non_negative("spec.minReadySeconds", rc.spec.min_ready_seconds)
    if not rc.spec.selector:
        errs.append(FieldError("spec.selector", None, "Required value"))
    if rc.spec.template is None:
        errs.append(FieldError("spec.template", None, "Required value"))
        return errs
    if rc.spec.selector and any(rc.spec.template.metadata.labels.get(k) != v for k, v in rc.spec.selector.items()):
        errs.append(FieldError("spec.template.metadata.labels", rc.spec.template.metadata.labels,
                               "Invalid value: `selector` does not match template `labels`"))
    return errs + validate_template("spec.template", rc.spec.template, ("Always",))


def _int_or_percent(path: str, value: IntOrString | None) -> list[FieldError]:
    if isinstance(value, str):
        if not value.endswith("%") or not value[:-1].isdigit():
            return [FieldError(path, value, "Invalid value: a valid percent string must be a numeric string "
                                            "followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
                                            "validation is '[0-9]+%')")]
        return []
    return non_negative(path, value)


def _is_zero(value: IntOrString | None) -> bool:
    return value in (0, "0%")


def validate_deployment(d: Deployment) -> list[FieldError]:
    spec = d.spec
    errs = validate_metadata(d.metadata)
    errs += non_negative("spec.replicas", spec.replicas)
    errs += _selector_and_template(spec.selector, spec.template)
    strategy = spec.strategy
    if strategy.type not in ("RollingUpdate", "Recreate"):
        errs.append(FieldError("spec.strategy.type", strategy.type,
                               'Unsupported value: supported values: "Recreate", "RollingUpdate"'))
    elif strategy.type == "Recreate" and strategy.rolling_update is not None:
        errs.append(FieldError("spec.strategy.rollingUpdate", None,
                               "Forbidden: may not be specified when strategy `type` is 'Recreate'"))
    elif strategy.type == "RollingUpdate" and strategy.rolling_update is not None:
        ru = strategy.rolling_update
        path = "spec.strategy.rollingUpdate"
        errs += _int_or_percent(f"{path}.maxUnavailable", ru.max_unavailable)
        errs += _int_or_percent(f"{path}.maxSurge", ru.max_surge)
        if _is_zero(ru.max_unavailable) and _is_zero(ru.max_surge):
            errs.append(FieldError(f"{path}.maxUnavailable", ru.max_unavailable,
                                   "Invalid value: may not be 0 when `maxSurge` is 0"))
        if isinstance(ru.max_unavailable, str) and ru.max_unavailable[:-1].isdigit() \
                and int(ru.max_unavailable[:-1]) > 100:
            errs.append(FieldError(f"{path}.maxUnavailable", ru.max_unavailable,
                                   "Invalid value: must not be greater than 100%"))
    errs += non_negative("spec.minReadySeconds", spec.min_ready_seconds)
    errs += non_negative("spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.progress_deadline_seconds is not None:
        errs += non_negative("spec.progressDeadlineSeconds", spec.progress_deadline_seconds)
        if spec.progress_deadline_seconds <= (spec.min_ready_seconds or 0):
            errs.append(FieldError("spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                                   "Invalid value: must be greater than minReadySeconds"))
    return errs


def validate_scale(scale: Scale) -> list[FieldError]:
    return non_negative("spec.replicas", scale.spec.replicas)
