"""A Job's podFailurePolicy applied to one failed pod (pkg/controller/job/pod_failure_policy.go):
the first rule whose exit codes or pod conditions match decides whether the failure counts
towards backoffLimit and whether it fails the whole job."""
from __future__ import annotations

from dataclasses import dataclass

from podbay.api import Pod
from podbay.api.batch import PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, \
    PodFailurePolicyOnPodConditionsPattern
from podbay.api.models import ContainerStatus, PodCondition


@dataclass(frozen=True)
class FailureVerdict:
    counts: bool  # towards status.failed and backoffLimit
    fail_job_message: str | None = None  # set when a FailJob rule matched
    fail_index: bool = False  # a FailIndex rule matched: the pod's index is not tried again


COUNTED = FailureVerdict(counts=True)


def _matching_container(statuses: list[ContainerStatus],
                        req: PodFailurePolicyOnExitCodesRequirement) -> ContainerStatus | None:
    """getMatchingContainerFromList: a terminated container (of the rule's name, if it names
    one) whose non-zero exit code the operator accepts."""
    for status in statuses:
        terminated = status.state.terminated if status.state else None
        if terminated is None or terminated.exit_code == 0:
            continue
        if req.container_name is not None and req.container_name != status.name:
            continue
        if (terminated.exit_code in req.values) == (req.operator == "In"):
            return status
    return None


def _matching_condition(conditions: list[PodCondition],
                        patterns: list[PodFailurePolicyOnPodConditionsPattern]) -> PodCondition | None:
    for condition in conditions:
        if any(condition.type == p.type and condition.status == p.status for p in patterns):
            return condition
    return None


def judge_failed_pod(policy: PodFailurePolicy | None, pod: Pod) -> FailureVerdict:
    """matchPodFailurePolicy. A pod no rule matches counts, as without a policy."""
    if policy is None:
        return COUNTED
    where = f"{pod.metadata.namespace}/{pod.metadata.name}"
    for index, rule in enumerate(policy.rules):
        if rule.on_exit_codes is not None:
            container = _matching_container(pod.status.container_statuses, rule.on_exit_codes) \
                or _matching_container(pod.status.init_container_statuses, rule.on_exit_codes)
            if container is None:
                continue
            code = container.state.terminated.exit_code if container.state and container.state.terminated else 0
            message = (f"Container {container.name} for pod {where} failed with exit code {code} "
                       f"matching {rule.action} rule at index {index}")
        elif rule.on_pod_conditions:
            condition = _matching_condition(pod.status.conditions, rule.on_pod_conditions)
            if condition is None:
                continue
            message = f"Pod {where} has condition {condition.type} matching {rule.action} rule at index {index}"
        else:
            continue
        if rule.action == "Ignore":
            return FailureVerdict(counts=False)
        if rule.action == "FailJob":
            return FailureVerdict(counts=True, fail_job_message=message)
        if rule.action == "FailIndex":
            return FailureVerdict(counts=True, fail_index=True)
        return COUNTED
    return COUNTED
