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
from podbay.api.validation import validate_metadata

# The labels generateSelector puts on a Job's template (and its selector): the legacy pair and
# the batch.kubernetes.io pair Kubernetes 1.27+ adds.
CONTROLLER_UID = "controller-uid"
JOB_NAME = "job-name"
BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
BATCH_JOB_NAME = "batch.kubernetes.io/job-name"
JOB_RESTART_POLICIES = ("OnFailure", "Never")


class JobCondition(Model):
    type: str = ""
    status: str = ""
    last_probe_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


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


class JobStatus(Model):
    conditions: list[JobCondition] = Field(default_factory=list)
    start_time: Time | None = None
    completion_time: Time | None = None
    active: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    terminating: int | None = None
    ready: int | None = None


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
        spec.backoff_limit = 6
    spec.completion_mode = spec.completion_mode or "NonIndexed"
    if spec.suspend is None:
        spec.suspend = False
    spec.pod_replacement_policy = spec.pod_replacement_policy or "TerminatingOrFailed"
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


def validate_job_update(new: Job, old: Job) -> list[FieldError]:
    """ValidateJobUpdate: the selector, completions and (for a job that is not suspended) the
    template stay as they were."""
    errs: list[FieldError] = []
    if new.spec.selector != old.spec.selector:
        errs.append(FieldError("spec.selector", None, "Invalid value: field is immutable"))
    if new.spec.completions != old.spec.completions:
        errs.append(FieldError("spec.completions", new.spec.completions, "Invalid value: field is immutable"))
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
    if spec.completion_mode not in ("NonIndexed",):
        errs.append(FieldError("spec.completionMode", spec.completion_mode,
                               'Unsupported value: supported values: "NonIndexed"'))
    errs += validate_selector("spec.selector", spec.selector)
    if spec.selector is not None and not errs:
        if not selector_matches(spec.selector, spec.template.metadata.labels):
            errs.append(FieldError("spec.template.metadata.labels", spec.template.metadata.labels,
                                   "Invalid value: `selector` does not match template `labels`"))
    return errs + validate_template("spec.template", spec.template, JOB_RESTART_POLICIES)
