"""batch/v1 Job, mirroring Kubernetes' Go types, with its defaulting, the selector the API
server generates for it (PrepareForCreate) and validation (pkg/apis/batch/validation)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from podbay.api.apps import LabelSelector, PodTemplateSpec, default_template, non_negative, selector_matches, \
    validate_selector, validate_template
from podbay.api.base import Model, Time
from podbay.api.errors import FieldError
from podbay.api.models import ObjectMeta
from podbay.api.validation import is_qualified_name, is_label, validate_metadata

# The labels generateSelector puts on a Job's template (and its selector): the legacy pair and
# the batch.kubernetes.io pair Kubernetes 1.27+ adds.
CONTROLLER_UID = "controller-uid"
JOB_NAME = "job-name"
BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
BATCH_JOB_NAME = "batch.kubernetes.io/job-name"
JOB_RESTART_POLICIES = ("OnFailure", "Never")
# An Indexed job's pods carry their index in this annotation (read by JOB_COMPLETION_INDEX's
# downward-API reference) and, as Kubernetes 1.28+ does, in a label of the same name.
JOB_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
# With backoffLimitPerIndex, how many pods of its index failed before this one was made.
JOB_INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
MAX_INT32 = 2**31 - 1
MAX_FAILED_INDEXES = 100_000  # maxFailedIndexesForIndexedJob
COMPLETIONS_SOFT_LIMIT = 100_000  # completionsSoftLimit
LIMIT_FOR_HIGH_COMPLETIONS = 10_000  # parallelismLimitForHighCompletions, maxFailedIndexesLimitForHighCompletions
COMPLETION_MODES = ("NonIndexed", "Indexed")
MAX_INDEXED_PARALLELISM = 100_000  # maxParallelismForIndexedJob
POD_FAILURE_POLICY_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")
EXIT_CODE_OPERATORS = ("In", "NotIn")
CONDITION_STATUSES = ("False", "True", "Unknown")
MAX_POD_FAILURE_POLICY_RULES = 20
MAX_EXIT_CODE_VALUES = 255
MAX_CONDITION_PATTERNS = 20


class JobCondition(Model):
    type: str = ""
    status: str = ""
    last_probe_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class PodFailurePolicyOnExitCodesRequirement(Model):
    container_name: str | None = None
    operator: str = ""
    values: list[int] = Field(default_factory=list)


class PodFailurePolicyOnPodConditionsPattern(Model):
    type: str = ""
    status: str = ""


class PodFailurePolicyRule(Model):
    action: str = ""
    on_exit_codes: PodFailurePolicyOnExitCodesRequirement | None = None
    on_pod_conditions: list[PodFailurePolicyOnPodConditionsPattern] = Field(default_factory=list)


class PodFailurePolicy(Model):
    rules: list[PodFailurePolicyRule] = Field(default_factory=list)


class JobSpec(Model):
    parallelism: int | None = None
    completions: int | None = None
    active_deadline_seconds: int | None = None
    backoff_limit: int | None = None
    selector: LabelSelector | None = None
    manual_selector: bool | None = None
    template: PodTemplateSpec = Field(default_factory=PodTemplateSpec)
    ttl_seconds_after_finished: int | None = None
    completion_mode: str | None = None
    suspend: bool | None = None
    pod_replacement_policy: str | None = None
    pod_failure_policy: PodFailurePolicy | None = None
    backoff_limit_per_index: int | None = None
    max_failed_indexes: int | None = None


class JobStatus(Model):
    conditions: list[JobCondition] = Field(default_factory=list)
    start_time: Time | None = None
    completion_time: Time | None = None
    active: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    terminating: int | None = None
    ready: int | None = None
    completed_indexes: str | None = None
    failed_indexes: str | None = None


class Job(Model):
    api_version: Literal["batch/v1"] = "batch/v1"
    kind: Literal["Job"] = "Job"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: JobSpec = Field(default_factory=JobSpec)
    status: JobStatus = Field(default_factory=JobStatus)


def default_job(job: Job) -> None:
    """SetDefaults_Job: both counts 1 when neither is set, else parallelism 1; backoffLimit 6."""
    spec = job.spec
    if spec.completions is None and spec.parallelism is None:
        spec.completions = spec.parallelism = 1
    if spec.parallelism is None:
        spec.parallelism = 1
    if spec.backoff_limit is None:
        # With a limit per index, the job-wide one is out of the way.
        spec.backoff_limit = MAX_INT32 if spec.backoff_limit_per_index is not None else 6
    spec.completion_mode = spec.completion_mode or "NonIndexed"
    if spec.suspend is None:
        spec.suspend = False
    spec.pod_replacement_policy = spec.pod_replacement_policy or \
        ("Failed" if spec.pod_failure_policy is not None else "TerminatingOrFailed")
    for rule in spec.pod_failure_policy.rules if spec.pod_failure_policy else []:
        for pattern in rule.on_pod_conditions:
            pattern.status = pattern.status or "True"
    default_template(spec.template)


def generate_selector(job: Job) -> None:
    """The job strategy's generateSelector: unless manualSelector, the template carries the job's
    uid and name labels and the selector is the uid."""
    if job.spec.manual_selector:
        return
    uid, name = job.metadata.uid or "", job.metadata.name or ""
    labels = job.spec.template.metadata.labels
    for key, value in ((CONTROLLER_UID, uid), (JOB_NAME, name), (BATCH_CONTROLLER_UID, uid), (BATCH_JOB_NAME, name)):
        labels.setdefault(key, value)
    if job.spec.selector is None:
        job.spec.selector = LabelSelector(match_labels={BATCH_CONTROLLER_UID: uid})


def prepare_job(job: Job) -> None:
    """The Job's defaults and, once it has a uid, its generated selector."""
    default_job(job)
    if job.metadata.uid:
        generate_selector(job)
    # SetDefaults_Job gives a job without labels its template's; kube-apiserver defaults every
    # object it reads from storage, so a stored job shows the generated ones (`job-name`, ...).
    if not job.metadata.labels:
        job.metadata.labels = dict(job.spec.template.metadata.labels)


def validate_job_update(new: Job, old: Job) -> list[FieldError]:
    """ValidateJobUpdate: the selector, completions (but an Indexed job's, changed together with
    parallelism), completionMode, podFailurePolicy and (for a job that is not suspended) the
    template stay as they were."""
    errs: list[FieldError] = []
    if new.spec.selector != old.spec.selector:
        errs.append(FieldError("spec.selector", None, "Invalid value: field is immutable"))
    if new.spec.completions != old.spec.completions:
        if new.spec.completion_mode != "Indexed":
            errs.append(FieldError("spec.completions", new.spec.completions, "Invalid value: field is immutable"))
        elif new.spec.completions is not None and new.spec.completions != new.spec.parallelism:
            # Elastic Indexed Jobs (validateCompletions): completions and parallelism change together.
            errs.append(FieldError("spec.completions", new.spec.completions,
                                   "Invalid value: can only be modified in tandem with spec.parallelism"))
    if new.spec.completion_mode != old.spec.completion_mode:
        errs.append(FieldError("spec.completionMode", new.spec.completion_mode, "Invalid value: field is immutable"))
    if new.spec.pod_failure_policy != old.spec.pod_failure_policy:
        errs.append(FieldError("spec.podFailurePolicy", None, "Invalid value: field is immutable"))
    if new.spec.template != old.spec.template and not old.spec.suspend:
        errs.append(FieldError("spec.template", None, "Invalid value: field is immutable"))
    return errs


def validate_job(job: Job) -> list[FieldError]:
    spec = job.spec
    errs = validate_metadata(job.metadata)
    errs += non_negative("spec.parallelism", spec.parallelism)
    errs += non_negative("spec.completions", spec.completions)
    errs += non_negative("spec.backoffLimit", spec.backoff_limit)
    errs += non_negative("spec.ttlSecondsAfterFinished", spec.ttl_seconds_after_finished)
    if spec.active_deadline_seconds is not None and spec.active_deadline_seconds <= 0:
        errs.append(FieldError("spec.activeDeadlineSeconds", spec.active_deadline_seconds,
                               "Invalid value: must be greater than 0"))
    errs += non_negative("spec.backoffLimitPerIndex", spec.backoff_limit_per_index)
    errs += non_negative("spec.maxFailedIndexes", spec.max_failed_indexes)
    if spec.max_failed_indexes is not None and spec.backoff_limit_per_index is None:
        errs.append(FieldError("spec.backoffLimitPerIndex", None, "Required value: when maxFailedIndexes is specified"))
    errs += _validate_completion_mode(job)
    if spec.pod_failure_policy is not None:
        errs += _validate_pod_failure_policy(spec, spec.pod_failure_policy)
        if spec.pod_replacement_policy != "Failed":
            errs.append(FieldError("spec.podReplacementPolicy", spec.pod_replacement_policy,
                                   'Unsupported value: supported values: "Failed"'))
        if spec.template.spec.restart_policy == "OnFailure":
            errs.append(FieldError("spec.template.spec.restartPolicy", "OnFailure",
                                   'Invalid value: only "Never" is supported when podFailurePolicy is specified'))
    errs += validate_selector("spec.selector", spec.selector)
    if spec.selector is not None and not errs:
        if not selector_matches(spec.selector, spec.template.metadata.labels):
            errs.append(FieldError("spec.template.metadata.labels", spec.template.metadata.labels,
                                   "Invalid value: `selector` does not match template `labels`"))
    return errs + validate_template("spec.template", spec.template, JOB_RESTART_POLICIES)


def _validate_completion_mode(job: Job) -> list[FieldError]:
    """validateJobSpec's completionMode rules, and ValidateJob's: an Indexed job's last pod
    hostname, `<name>-<completions - 1>`, must be a DNS label."""
    spec = job.spec
    if spec.completion_mode not in COMPLETION_MODES:
        return [FieldError("spec.completionMode", spec.completion_mode,
                           'Unsupported value: supported values: "NonIndexed", "Indexed"')]
    errs: list[FieldError] = []
    if spec.completion_mode != "Indexed":
        for path, value in (("spec.backoffLimitPerIndex", spec.backoff_limit_per_index),
                            ("spec.maxFailedIndexes", spec.max_failed_indexes)):
            if value is not None:
                errs.append(FieldError(path, value, "Invalid value: requires indexed completion mode"))
        return errs
    if spec.completions is None:
        errs.append(FieldError("spec.completions", None, "Required value: when completion mode is Indexed"))
    elif spec.completions > 0 and not is_label(hostname := f"{job.metadata.name}-{spec.completions - 1}"):
        errs.append(FieldError("metadata.name", job.metadata.name,
                               f"Invalid value: will not able to create pod with invalid DNS label: {hostname}"))
    if spec.parallelism is not None and spec.parallelism > MAX_INDEXED_PARALLELISM:
        errs.append(FieldError("spec.parallelism", spec.parallelism, "Invalid value: must be less than or equal to "
                               f"{MAX_INDEXED_PARALLELISM} when completion mode is Indexed"))
    failed_max = spec.max_failed_indexes
    if spec.completions is not None and failed_max is not None and failed_max > spec.completions:
        errs.append(FieldError("spec.maxFailedIndexes", failed_max,
                               "Invalid value: must be less than or equal to completions"))
    if failed_max is not None and failed_max > MAX_FAILED_INDEXES:
        errs.append(FieldError("spec.maxFailedIndexes", failed_max,
                               f"Invalid value: must be less than or equal to {MAX_FAILED_INDEXES}"))
    if spec.completions is not None and spec.completions > COMPLETIONS_SOFT_LIMIT \
            and spec.backoff_limit_per_index is not None:
        high = f"when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
        if failed_max is None:
            errs.append(FieldError("spec.maxFailedIndexes", None,
                                   f"Required value: must be specified when completions is above "
                                   f"{COMPLETIONS_SOFT_LIMIT}"))
        if spec.parallelism is not None and spec.parallelism > LIMIT_FOR_HIGH_COMPLETIONS:
            errs.append(FieldError("spec.parallelism", spec.parallelism,
                                   f"Invalid value: must be less than or equal to {LIMIT_FOR_HIGH_COMPLETIONS} {high}"))
        if failed_max is not None and failed_max > LIMIT_FOR_HIGH_COMPLETIONS:
            errs.append(FieldError("spec.maxFailedIndexes", failed_max,
                                   f"Invalid value: must be less than or equal to {LIMIT_FOR_HIGH_COMPLETIONS} {high}"))
    return errs


def _supported(allowed: tuple[str, ...]) -> str:
    return ", ".join(f'"{a}"' for a in allowed)


def _validate_pod_failure_policy(spec: JobSpec, policy: PodFailurePolicy) -> list[FieldError]:
    """validatePodFailurePolicy: at most 20 rules, each with a known action (FailIndex only with
    backoffLimitPerIndex) and exactly one of onExitCodes (ordered, unique values; In never 0) or
    onPodConditions."""
    path = "spec.podFailurePolicy.rules"
    if len(policy.rules) > MAX_POD_FAILURE_POLICY_RULES:
        return [FieldError(path, len(policy.rules),
                           f"Too many: must have at most {MAX_POD_FAILURE_POLICY_RULES} items")]
    containers = {c.name for c in spec.template.spec.containers + spec.template.spec.init_containers}
    errs: list[FieldError] = []
    for i, rule in enumerate(policy.rules):
        at = f"{path}[{i}]"
        if not rule.action:
            errs.append(FieldError(f"{at}.action", None,
                                   f"Required value: valid values: {_supported(POD_FAILURE_POLICY_ACTIONS)}"))
        elif rule.action == "FailIndex" and spec.backoff_limit_per_index is None:
            errs.append(FieldError(f"{at}.action", rule.action,
                                   "Invalid value: requires the backoffLimitPerIndex to be set"))
        elif rule.action not in POD_FAILURE_POLICY_ACTIONS:
            errs.append(FieldError(f"{at}.action", rule.action,
                                   f"Unsupported value: supported values: {_supported(POD_FAILURE_POLICY_ACTIONS)}"))
        if rule.on_exit_codes is not None:
            errs += _validate_on_exit_codes(f"{at}.onExitCodes", rule.on_exit_codes, containers)
        errs += _validate_on_pod_conditions(f"{at}.onPodConditions", rule.on_pod_conditions)
        if rule.on_exit_codes is not None and rule.on_pod_conditions:
            errs.append(FieldError(at, None, "Invalid value: specifying both OnExitCodes and OnPodConditions "
                                   "is not supported"))
        if rule.on_exit_codes is None and not rule.on_pod_conditions:
            errs.append(FieldError(at, None, "Invalid value: specifying one of OnExitCodes and OnPodConditions "
                                   "is required"))
    return errs


def _validate_on_exit_codes(path: str, req: PodFailurePolicyOnExitCodesRequirement,
                            containers: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    if not req.operator:
        errs.append(FieldError(f"{path}.operator", None,
                               f"Required value: valid values: {_supported(EXIT_CODE_OPERATORS)}"))
    elif req.operator not in EXIT_CODE_OPERATORS:
        errs.append(FieldError(f"{path}.operator", req.operator,
                               f"Unsupported value: supported values: {_supported(EXIT_CODE_OPERATORS)}"))
    if req.container_name is not None and req.container_name not in containers:
        errs.append(FieldError(f"{path}.containerName", req.container_name,
                               "Invalid value: must be one of the container or initContainer names in the pod "
                               "template"))
    if not req.values:
        return errs + [FieldError(f"{path}.values", None, "Invalid value: at least one value is required")]
    if len(req.values) > MAX_EXIT_CODE_VALUES:
        return errs + [FieldError(f"{path}.values", len(req.values),
                                  f"Too many: must have at most {MAX_EXIT_CODE_VALUES} items")]
    seen: set[int] = set()
    for j, value in enumerate(req.values):
        if req.operator == "In" and value == 0:
            errs.append(FieldError(f"{path}.values[{j}]", value, "Invalid value: must not be 0 for the In operator"))
        if value in seen:
            errs.append(FieldError(f"{path}.values[{j}]", value, "Duplicate value"))
        seen.add(value)
    if req.values != sorted(req.values):
        errs.append(FieldError(f"{path}.values", None, "Invalid value: must be ordered"))
    return errs


def _validate_on_pod_conditions(path: str, patterns: list[PodFailurePolicyOnPodConditionsPattern]) -> list[FieldError]:
    if len(patterns) > MAX_CONDITION_PATTERNS:
        return [FieldError(path, len(patterns), f"Too many: must have at most {MAX_CONDITION_PATTERNS} items")]
    errs: list[FieldError] = []
    for j, pattern in enumerate(patterns):
        if not is_qualified_name(pattern.type):
            errs.append(FieldError(f"{path}[{j}].type", pattern.type,
                                   "Invalid value: name part must consist of alphanumeric characters, '-', '_' or "
                                   "'.', and must start and end with an alphanumeric character"))
        if not pattern.status:
            errs.append(FieldError(f"{path}[{j}].status", None,
                                   f"Required value: valid values: {_supported(CONDITION_STATUSES)}"))
        elif pattern.status not in CONDITION_STATUSES:
            errs.append(FieldError(f"{path}[{j}].status", pattern.status,
                                   f"Unsupported value: supported values: {_supported(CONDITION_STATUSES)}"))
    return errs
