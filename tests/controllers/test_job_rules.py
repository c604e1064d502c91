"""The Job controller's pure rules for Indexed jobs and podFailurePolicy, on hand-made pods."""
from __future__ import annotations

import pytest

from podbay.api import Pod
from podbay.api.batch import Job, PodFailurePolicy
from podbay.api.serialize import from_dict
from podbay.controllers.jobindex import completion_index, format_indexes, generate_name, indexed_pod, \
    pending_indexes
from podbay.controllers.podfailurepolicy import judge_failed_pod
from podbay.controllers.workqueue import controller_ref


def failed_pod(exit_codes: dict[str, int], conditions: dict[str, str] | None = None,
               init_exit_codes: dict[str, int] | None = None) -> Pod:
    def statuses(codes: dict[str, int]) -> list[dict[str, object]]:
        return [{"name": n, "state": {"terminated": {"exitCode": c}}} for n, c in codes.items()]
    return from_dict(Pod, {"metadata": {"name": "p", "namespace": "ns"}, "status": {
        "phase": "Failed", "containerStatuses": statuses(exit_codes),
        "initContainerStatuses": statuses(init_exit_codes or {}),
        "conditions": [{"type": t, "status": s} for t, s in (conditions or {}).items()]}})


def policy(*rules: dict[str, object]) -> PodFailurePolicy:
    return from_dict(PodFailurePolicy, {"rules": list(rules)})


@pytest.mark.parametrize("indexes, text", [
    ([], ""), ([0], "0"), ([0, 1], "0-1"), ([1, 3, 4, 5, 7], "1,3-5,7"), ([5, 0, 2, 1, 2], "0-2,5")])
def test_completed_indexes_are_written_as_intervals(indexes: list[int], text: str) -> None:
    assert format_indexes(indexes) == text


def test_an_index_comes_from_the_annotation_and_must_be_below_completions() -> None:
    def pod(annotations: dict[str, str], labels: dict[str, str]) -> Pod:
        return from_dict(Pod, {"metadata": {"annotations": annotations, "labels": labels}})
    key = "batch.kubernetes.io/job-completion-index"
    assert completion_index(pod({key: "2"}, {key: "1"}), 3) == 2
    assert completion_index(pod({}, {key: "1"}), 3) == 1
    assert completion_index(pod({key: "3"}, {}), 3) is None
    assert completion_index(pod({key: "-1"}, {}), 3) is None
    assert completion_index(pod({}, {}), 3) is None


def test_pending_indexes_are_the_lowest_untaken() -> None:
    assert pending_indexes(5, {0, 2}, 2) == [1, 3]
    assert pending_indexes(3, {0, 1, 2}, 2) == []


def test_an_indexed_pod_has_its_index_hostname_and_env() -> None:
    job = from_dict(Job, {"metadata": {"name": "work", "namespace": "ns", "uid": "u"}, "spec": {
        "template": {"spec": {"initContainers": [{"name": "i", "image": "x"}],
                              "containers": [{"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}]}]}}}})
    pod = indexed_pod(job, 4, controller_ref(job, "batch/v1", "Job"))
    assert pod.metadata.generate_name == "work-4-" and pod.spec.hostname == "work-4"
    assert pod.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "4"
    assert pod.metadata.labels["batch.kubernetes.io/job-completion-index"] == "4"
    for container in pod.spec.init_containers + pod.spec.containers:
        env = container.env[-1]
        assert env.name == "JOB_COMPLETION_INDEX"
        assert env.value_from.field_ref.field_path == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert [e.name for e in pod.spec.containers[0].env] == ["A", "JOB_COMPLETION_INDEX"]
    assert not job.spec.template.spec.containers[0].env[1:], "the job's own template is left alone"
    assert generate_name("x" * 60, 12) == "x" * 54 + "-12-"


def test_no_policy_or_no_matching_rule_counts_the_failure() -> None:
    pod = failed_pod({"c": 1})
    assert judge_failed_pod(None, pod).counts
    verdict = judge_failed_pod(policy({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}), pod)
    assert verdict.counts and verdict.fail_job_message is None


def test_the_first_matching_rule_decides() -> None:
    rules = policy({"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3, 4]}},
                   {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [0, 3]}})
    assert not judge_failed_pod(rules, failed_pod({"c": 4})).counts
    verdict = judge_failed_pod(rules, failed_pod({"c": 0, "d": 42}))
    assert verdict.counts and verdict.fail_job_message == \
        "Container d for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
    assert judge_failed_pod(rules, failed_pod({"c": 3})).fail_job_message is None  # NotIn [0, 3]: no


def test_a_rule_naming_a_container_reads_only_it_and_init_containers_count() -> None:
    named = policy({"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}})
    assert judge_failed_pod(named, failed_pod({"side": 42, "main": 1})).fail_job_message is None
    assert judge_failed_pod(named, failed_pod({}, init_exit_codes={"main": 42})).fail_job_message is not None


def test_a_pod_condition_rule_matches_type_and_status() -> None:
    rules = policy({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                   {"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue", "status": "True"}]})
    assert not judge_failed_pod(rules, failed_pod({"c": 137}, {"DisruptionTarget": "True"})).counts
    assert judge_failed_pod(rules, failed_pod({"c": 137}, {"DisruptionTarget": "False"})).counts
    assert judge_failed_pod(rules, failed_pod({"c": 1}, {"ConfigIssue": "True"})).fail_job_message == \
        "Pod ns/p has condition ConfigIssue matching FailJob rule at index 1"


def test_an_indexed_job_keeps_one_active_pod_per_index_not_yet_done() -> None:
    from podbay.controllers.job import JobController

    def pod(name: str, index: str | None, phase: str) -> Pod:
        annotations = {} if index is None else {"batch.kubernetes.io/job-completion-index": index}
        return from_dict(Pod, {"metadata": {"name": name, "annotations": annotations}, "status": {"phase": phase}})
    job = from_dict(Job, {"metadata": {"name": "j"}, "spec": {"completionMode": "Indexed", "completions": 3}})
    pods = [pod("done0", "0", "Succeeded"), pod("again0", "0", "Running"), pod("one", "1", "Running"),
            pod("one-twin", "1", "Pending"), pod("stray", None, "Running"), pod("past", "7", "Running")]
    active = [p for p in pods if p.status.phase != "Succeeded"]
    view = JobController._index_view(job, pods, active, set())
    assert view is not None and view.succeeded == {0}
    assert [p.metadata.name for p in view.surplus] == ["again0", "one-twin", "stray", "past"]
    nonindexed = from_dict(Job, {"metadata": {"name": "j"}, "spec": {"completions": 3}})
    assert JobController._index_view(nonindexed, pods, active, set()) is None


def test_per_index_limits_fail_indexes_and_then_the_job() -> None:
    from datetime import datetime, timedelta, timezone

    from podbay.controllers.job import JobController, indexes_failed, indexes_to_start

    at = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def pod(uid: str, index: int, phase: str, ago: float = 100.0) -> Pod:
        finished = (at - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return from_dict(Pod, {"metadata": {"name": uid, "uid": uid, "annotations": {
            "batch.kubernetes.io/job-completion-index": str(index)}}, "status": {
            "phase": phase, "containerStatuses": [{"name": "c", "state": {"terminated": {
                "exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": finished}}}]}})
    job = from_dict(Job, {"metadata": {"name": "j"}, "spec": {
        "completionMode": "Indexed", "completions": 4, "backoffLimitPerIndex": 1, "maxFailedIndexes": 1}})
    pods = [pod("a", 0, "Succeeded"), pod("b", 1, "Failed"), pod("c", 1, "Failed"),  # 1: past its limit
            pod("d", 2, "Failed", ago=3), pod("e", 3, "Failed")]  # 3: FailIndex
    view = JobController._index_view(job, pods, [], {"e"})
    assert view is not None and (view.succeeded, view.failed) == ({0}, {1, 3})
    assert indexes_failed(job.spec, view) == (
        "Failed", "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes")
    # Index 2 failed 3 s ago: it backs off 10 s, so nothing starts and the controller comes back in 7 s.
    assert indexes_to_start(view, [], 4, at) == ([], 7.0)
    job.spec.max_failed_indexes = None
    assert indexes_failed(job.spec, view) is None  # index 2 may still succeed
    view = JobController._index_view(job, pods + [pod("f", 2, "Succeeded")], [], {"e"})
    assert view is not None and indexes_failed(job.spec, view) == ("Failed", "FailedIndexes", "Job has failed indexes")
