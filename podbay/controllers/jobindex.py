"""Indexed Jobs (pkg/controller/job/indexed_job_utils.go): each pod carries its completion
index; the job is complete once every index in [0, completions) has a succeeded pod."""
from __future__ import annotations

from typing import Iterable

from podbay.api import EnvVar, EnvVarSource, ObjectFieldSelector, OwnerReference, Pod
from podbay.api.batch import JOB_COMPLETION_INDEX, Job
from podbay.controllers.workqueue import pod_from_template

COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
MAX_GENERATED_NAME = 58  # names.MaxGeneratedNameLength: 63 less the 5 random characters


def completion_index(pod: Pod, completions: int) -> int | None:
    """getCompletionIndex: the annotation (else the label) when it is an index of the job."""
    value = pod.metadata.annotations.get(JOB_COMPLETION_INDEX) or pod.metadata.labels.get(JOB_COMPLETION_INDEX)
    if value is None or not value.isdigit():
        return None
    index = int(value)
    return index if index < completions else None


def format_indexes(indexes: Iterable[int]) -> str:
    """status.completedIndexes: sorted intervals, `1,3-5,7`."""
    ranges: list[list[int]] = []
    for i in sorted(set(indexes)):
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def pending_indexes(completions: int, taken: set[int], count: int) -> list[int]:
    """firstPendingIndexes: the `count` lowest indexes with neither a success nor an active pod."""
    out: list[int] = []
    for i in range(completions):
        if len(out) == count:
            break
        if i not in taken:
            out.append(i)
    return out


def generate_name(job_name: str, index: int) -> str:
    """podGenerateNameWithIndex: `<job>-<index>-`, the job name cut so the whole fits."""
    suffix = f"-{index}-"
    if len(job_name) + len(suffix) > MAX_GENERATED_NAME:
        job_name = job_name[:MAX_GENERATED_NAME - len(suffix)]
    return job_name + suffix


def indexed_pod(job: Job, index: int, ref: OwnerReference) -> Pod:
    """The pod of one index: its index in an annotation and a label, hostname `<job>-<index>`,
    and JOB_COMPLETION_INDEX in every container read from the annotation (the downward API)."""
    pod = pod_from_template(job.spec.template, job.metadata.namespace or "", job.metadata.name or "", ref)
    pod.metadata.generate_name = generate_name(job.metadata.name or "", index)
    pod.metadata.annotations[JOB_COMPLETION_INDEX] = str(index)
    pod.metadata.labels[JOB_COMPLETION_INDEX] = str(index)
    pod.spec.hostname = f"{job.metadata.name}-{index}"
    source = EnvVarSource(field_ref=ObjectFieldSelector(field_path=f"metadata.annotations['{JOB_COMPLETION_INDEX}']"))
    for container in pod.spec.init_containers + pod.spec.containers:
        if not any(e.name == COMPLETION_INDEX_ENV for e in container.env):
            container.env.append(EnvVar(name=COMPLETION_INDEX_ENV, value_from=source))
    return pod
