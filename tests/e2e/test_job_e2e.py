"""Jobs run real pods to completion: completions 3 with parallelism 2 completes; a job whose
pods fail stops at its backoffLimit (BackoffLimitExceeded); one past its activeDeadlineSeconds
fails with DeadlineExceeded and its pods go; the pods carry the labels Kubernetes sets. An
Indexed job's pods each see their own index and hostname; a podFailurePolicy fails a job at an
exit code at once, and an ignored exit code does not count towards backoffLimit."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from podbay.api import Pod
from podbay.api.batch import Job
from tests.e2e.conftest import Cluster
from tests.e2e.workloads import SLEEPER, kube_cluster, kubectl, live, manifest, template, wait_objects, \
    workload_cluster  # noqa: F401 - fixtures among them

pytestmark = pytest.mark.e2e


def run(command: str) -> dict[str, object]:
    return {**SLEEPER, "command": ["sh", "-c", command]}


def condition(job: Job, type_: str) -> tuple[str | None, str | None] | None:
    return next(((c.status, c.reason) for c in job.status.conditions if c.type == type_), None)


async def wait_job(cluster: Cluster, name: str, type_: str) -> Job:
    """The job once it has the condition `type_`."""
    jobs = await wait_objects(cluster.client, Job, lambda js: any(j.metadata.name == name and condition(j, type_)
                                                                 for j in js), what=f"job {name}", timeout=120)
    return next(j for j in jobs if j.metadata.name == name)


async def test_job_completes_with_parallelism(kube_cluster: Cluster) -> None:  # noqa: F811
    client = kube_cluster.client
    most = 0

    async def count_running() -> None:
        nonlocal most
        seen: dict[str, Pod] = {}
        async for _, pod in client.watch(Pod, "default", label_selector="batch.kubernetes.io/job-name=work"):
            seen[pod.metadata.uid] = pod
            most = max(most, sum(1 for p in seen.values() if p.status.phase in ("Pending", "Running")))

    counter = asyncio.create_task(count_running())
    try:
        job = await client.create(manifest(Job, "work", {
            "completions": 3, "parallelism": 2, "template": template({}, run("sleep 1"), restart="Never")}))
        uid = job.metadata.uid
        assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
        job = await wait_job(kube_cluster, "work", "Complete")
    finally:
        counter.cancel()
    assert condition(job, "Complete") == ("True", "CompletionsReached")
    assert (job.status.succeeded, job.status.active or 0, job.status.failed or 0) == (3, 0, 0)
    assert job.status.completion_time is not None and job.status.start_time is not None
    assert most <= 2, f"{most} pods ran at once with parallelism 2"
    pods, _ = await client.list(Pod, "default", label_selector=f"controller-uid={uid}")
    assert len(pods) == 3 and all(p.status.phase == "Succeeded" for p in pods)
    for p in pods:
        assert p.metadata.name.startswith("work-")
        assert p.metadata.labels["job-name"] == "work" and p.metadata.labels["batch.kubernetes.io/job-name"] == "work"
        assert p.metadata.owner_references[0].kind == "Job"
    assert "condition met" in await kubectl(kube_cluster, "wait", "--for=condition=complete", "job/work",
                                            "--timeout=30s")
    got = await kubectl(kube_cluster, "get", "jobs")
    assert got.split("\n")[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert got.split("\n")[1].split()[:3] == ["work", "Complete", "3/3"]
    # kubectl's default cascade (background) takes the pods with the job.
    await kubectl(kube_cluster, "delete", "job/work")
    await wait_objects(client, Pod, lambda ps: not ps, label_selector=f"controller-uid={uid}", what="the job's pods")


async def test_failing_job_hits_backoff_limit(workload_cluster: Cluster) -> None:  # noqa: F811
    client = workload_cluster.client
    await client.create(manifest(Job, "fails", {
        "backoffLimit": 1, "template": template({}, run("exit 3"), restart="Never")}))
    job = await wait_job(workload_cluster, "fails", "Failed")
    assert condition(job, "Failed") == ("True", "BackoffLimitExceeded")
    assert job.status.failed == 2 and (job.status.succeeded or 0) == 0


async def test_job_past_its_deadline_fails_and_its_pods_go(workload_cluster: Cluster) -> None:  # noqa: F811
    client = workload_cluster.client
    job = await client.create(manifest(Job, "slow", {
        "activeDeadlineSeconds": 2, "template": template({}, run("sleep 600"), restart="OnFailure")}))
    job = await wait_job(workload_cluster, "slow", "Failed")
    assert condition(job, "Failed") == ("True", "DeadlineExceeded")
    await wait_objects(client, Pod, lambda ps: all(p.metadata.deletion_timestamp or p.status.phase == "Failed"
                                                   for p in ps),
                       label_selector=f"controller-uid={job.metadata.uid}", what="the job's pods")


async def test_finished_job_goes_after_its_ttl(workload_cluster: Cluster) -> None:  # noqa: F811
    client = workload_cluster.client
    job = await client.create(manifest(Job, "brief", {
        "ttlSecondsAfterFinished": 1, "template": template({}, run("true"), restart="Never")}))
    await wait_job(workload_cluster, "brief", "Complete")
    await wait_objects(client, Job, lambda js: "brief" not in {j.metadata.name for j in js}, what="the expiry")
    await wait_objects(client, Pod, lambda ps: not ps, label_selector=f"controller-uid={job.metadata.uid}",
                       what="the expired job's pod")


async def pod_log(cluster: Cluster, name: str) -> str:
    return b"".join([chunk async for chunk in cluster.client.logs(name, "default")]).decode()


async def test_indexed_job_gives_each_pod_its_own_index(kube_cluster: Cluster) -> None:  # noqa: F811
    client = kube_cluster.client
    await client.create(manifest(Job, "idx", {
        "completions": 3, "parallelism": 2, "completionMode": "Indexed",
        "template": template({}, run('echo "index=$JOB_COMPLETION_INDEX host=$(hostname)"'), restart="Never")}))
    job = await wait_job(kube_cluster, "idx", "Complete")
    assert (job.status.succeeded, job.status.completed_indexes) == (3, "0-2")
    pods, _ = await client.list(Pod, "default", label_selector=f"controller-uid={job.metadata.uid}")
    assert len(pods) == 3
    seen = set()
    for pod in pods:
        index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert pod.metadata.labels["batch.kubernetes.io/job-completion-index"] == index
        assert pod.metadata.name.startswith(f"idx-{index}-")
        assert (await pod_log(kube_cluster, pod.metadata.name)).strip() == f"index={index} host=idx-{index}"
        assert await kubectl(kube_cluster, "logs", pod.metadata.name) == f"index={index} host=idx-{index}\n"
        seen.add(index)
    assert seen == {"0", "1", "2"}
    assert await kubectl(kube_cluster, "get", "job", "idx", "-o", "jsonpath={.status.completedIndexes}") == "0-2"
    described = await kubectl(kube_cluster, "describe", "job", "idx")
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in described.split("\n"))}
    assert (fields["Completion Mode"], fields["Completed Indexes"]) == ("Indexed", "0-2"), described
    assert fields["Pods Statuses"] == "0 Active (0 Ready) / 3 Succeeded / 0 Failed"


async def test_pod_failure_policy_fails_the_job_at_a_matching_exit_code(workload_cluster: Cluster) -> None:  # noqa: F811
    client = workload_cluster.client
    await client.create(manifest(Job, "fatal", {
        "backoffLimit": 6, "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]},
        "template": template({}, run("exit 42"), restart="Never")}))
    job = await wait_job(workload_cluster, "fatal", "Failed")
    assert condition(job, "Failed") == ("True", "PodFailurePolicy")
    pods, _ = await client.list(Pod, "default", label_selector=f"controller-uid={job.metadata.uid}")
    assert len(pods) == 1, "a FailJob rule fails the job at the first such pod, not after backoffLimit"
    message = next(c.message for c in job.status.conditions if c.type == "Failed")
    assert message == (f"Container c for pod default/{pods[0].metadata.name} failed with exit code 42 "
                       "matching FailJob rule at index 0")
    assert job.status.failed == 1


async def test_an_ignored_exit_code_does_not_count_towards_backoff_limit(workload_cluster: Cluster,  # noqa: F811
                                                                         tmp_path: Path) -> None:
    client = workload_cluster.client
    # The first pod leaves a mark and exits 3; its replacement finds the mark and succeeds. With
    # backoffLimit 0 a counted failure would have failed the job.
    once = {**run("[ -e /mark/once ] && exit 0; touch /mark/once; exit 3"),
            "volumeMounts": [{"name": "mark", "mountPath": "/mark"}]}
    spec = template({}, once, restart="Never")
    spec["spec"]["volumes"] = [{"name": "mark", "hostPath": {"path": str(tmp_path), "type": "Directory"}}]
    await client.create(manifest(Job, "retried", {
        "backoffLimit": 0, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}, "template": spec}))
    job = await wait_job(workload_cluster, "retried", "Complete")
    assert (job.status.succeeded, job.status.failed or 0) == (1, 0)
    pods, _ = await client.list(Pod, "default", label_selector=f"controller-uid={job.metadata.uid}")
    assert sorted(p.status.phase for p in pods) == ["Failed", "Succeeded"]


async def test_an_indexed_job_scaled_down_completes_with_the_indexes_left(workload_cluster: Cluster) -> None:  # noqa: F811
    client = workload_cluster.client
    job = await client.create(manifest(Job, "elastic", {
        "completions": 3, "parallelism": 3, "completionMode": "Indexed",
        "template": template({}, run('[ "$JOB_COMPLETION_INDEX" = 0 ] || exec sleep 600'), restart="Never")}))
    selector = f"controller-uid={job.metadata.uid}"
    await wait_objects(client, Pod, lambda ps: sorted(p.status.phase for p in ps) == ["Running", "Running", "Succeeded"],
                       label_selector=selector, what="index 0 done, 1 and 2 running")
    await client.patch(Job, "elastic", {"spec": {"completions": 1, "parallelism": 1}}, "default", patch_type="merge")
    job = await wait_job(workload_cluster, "elastic", "Complete")
    assert (job.status.succeeded, job.status.completed_indexes, job.status.active or 0) == (1, "0", 0)
    await wait_objects(client, Pod, lambda ps: [p.status.phase for p in live(ps)] == ["Succeeded"],
                       label_selector=selector, what="the pods of indexes 1 and 2 gone")


async def test_a_limit_per_index_retries_and_gives_up_index_by_index(workload_cluster: Cluster,  # noqa: F811
                                                                     tmp_path: Path) -> None:
    client = workload_cluster.client
    # Index 1 exits 42, which a FailIndex rule gives up on at once; index 2 fails once and then
    # succeeds on its retry; index 0 succeeds. The job fails for its one failed index.
    script = ('case "$JOB_COMPLETION_INDEX" in 1) exit 42;; '
              '2) [ -e /mark/two ] || { touch /mark/two; exit 1; };; esac')
    spec = template({}, {**run(script), "volumeMounts": [{"name": "mark", "mountPath": "/mark"}]}, restart="Never")
    spec["spec"]["volumes"] = [{"name": "mark", "hostPath": {"path": str(tmp_path), "type": "Directory"}}]
    await client.create(manifest(Job, "perindex", {
        "completions": 3, "parallelism": 3, "completionMode": "Indexed", "backoffLimitPerIndex": 1,
        "podFailurePolicy": {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}}]},
        "template": spec}))
    job = await wait_job(workload_cluster, "perindex", "Failed")
    assert condition(job, "Failed") == ("True", "FailedIndexes")
    assert (job.status.completed_indexes, job.status.failed_indexes) == ("0,2", "1")
    assert (job.status.succeeded, job.status.failed) == (2, 2)
    pods, _ = await client.list(Pod, "default", label_selector=f"controller-uid={job.metadata.uid}")
    by_index: dict[str, list[Pod]] = {}
    for p in pods:
        by_index.setdefault(p.metadata.annotations["batch.kubernetes.io/job-completion-index"], []).append(p)
    assert {i: sorted(p.status.phase for p in ps) for i, ps in by_index.items()} == {
        "0": ["Succeeded"], "1": ["Failed"], "2": ["Failed", "Succeeded"]}
    assert sorted(p.metadata.annotations["batch.kubernetes.io/job-index-failure-count"] for p in by_index["2"]) == \
        ["0", "1"]
