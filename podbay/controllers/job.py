"""The Job controller (kube-controller-manager's job) and the TTL-after-finished controller:
pods made from the template up to `parallelism` at a time until `completions` have succeeded
(Complete), or, for an Indexed job, until every index has a succeeded pod; failed pods
replaced after an exponential back-off until more than `backoffLimit` have failed (Failed,
BackoffLimitExceeded), or, with `backoffLimitPerIndex`, until each index has failed more than
that (Failed, FailedIndexes or MaxFailedIndexesExceeded); a job running longer than
`activeDeadlineSeconds` fails (DeadlineExceeded) and its pods go. A finished job with
`ttlSecondsAfterFinished` is deleted (in the foreground) that long after it finished. A
podFailurePolicy may fail the job at a pod's failure (PodFailurePolicy) or ignore the failure.

The counts are those of the job's pods the API holds (Kubernetes before pod tracking
finalizers): a finished pod deleted by hand no longer counts."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from podbay.api import Pod, now
from podbay.api.apps import controller_of, selector_matches
from podbay.api.batch import JOB_INDEX_FAILURE_COUNT, Job, JobCondition, JobSpec, JobStatus
from podbay.api.errors import APIError, Conflict, NotFound
from podbay.client import Client
from podbay.client.informer import Key, SharedInformerFactory, WatchEvents, key_of
from podbay.client.record import EventRecorder
from podbay.controllers.jobindex import completion_index, format_indexes, indexed_pod, pending_indexes
from podbay.controllers.podfailurepolicy import COUNTED, judge_failed_pod
from podbay.controllers.workqueue import WorkQueue, controller_ref, is_pod_ready, pod_from_template

log = logging.getLogger(__name__)

BACKOFF_BASE = 10.0  # DefaultJobPodFailureBackOff
BACKOFF_MAX = 360.0  # MaxJobPodFailureBackOff (6 minutes)


# --- pure rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexView:
    completions: int
    succeeded: set[int]
    surplus: list[Pod]
    failed: set[int]  # given up on: past backoffLimitPerIndex, or a FailIndex rule matched
    by_index: dict[int, list[Pod]]  # the counted pods of each index


@dataclass(frozen=True)
class Counts:
    active: int
    succeeded: int
    failed: int
    restarts: int = 0  # container restarts of running/pending pods (restartPolicy OnFailure)


def wanted_active(spec: JobSpec, counts: Counts) -> int:
    """manageJob's wantActive: parallelism, but never more than the completions still missing;
    a job without completions stops adding pods after its first success."""
    parallelism = spec.parallelism or 0
    if spec.suspend:
        return 0
    if spec.completions is None:
        return counts.active if counts.succeeded > 0 else parallelism
    return max(0, min(spec.completions - counts.succeeded, parallelism))


def finished(spec: JobSpec, restart_policy: str | None, counts: Counts, started: datetime | None,
             at: datetime) -> tuple[str, str, str] | None:
    """(condition, reason, message) once the job is over: failed past its back-off limit (or,
    with OnFailure, restarts reaching it) or its deadline; complete when enough pods succeeded
    and none is running."""
    limit = spec.backoff_limit if spec.backoff_limit is not None else 6
    past_on_failure = restart_policy == "OnFailure" and (counts.restarts > 0 if limit == 0
                                                         else counts.restarts >= limit)
    if counts.failed > limit or past_on_failure:
        return ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    if spec.active_deadline_seconds is not None and started is not None \
            and (at - started).total_seconds() >= spec.active_deadline_seconds:
        return ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
    done = counts.succeeded > 0 if spec.completions is None else counts.succeeded >= spec.completions
    if done and counts.active == 0:
        return ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
    return None


def indexes_failed(spec: JobSpec, view: IndexView) -> tuple[str, str, str] | None:
    """With backoffLimitPerIndex: more failed indexes than maxFailedIndexes fail the job at once;
    otherwise it fails once every index has succeeded or failed and some failed."""
    if spec.backoff_limit_per_index is None:
        return None
    if spec.max_failed_indexes is not None and len(view.failed) > spec.max_failed_indexes:
        return ("Failed", "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes")
    if view.failed and len(view.failed) + len(view.succeeded) >= view.completions:
        return ("Failed", "FailedIndexes", "Job has failed indexes")
    return None


def indexes_to_start(view: IndexView, active: list[Pod], count: int, at: datetime) -> tuple[list[int], float | None]:
    """With backoffLimitPerIndex, each index backs off on its own failures: up to `count` of the
    lowest indexes neither done, failed, running nor backing off, and the seconds until the
    next back-off ends (None: none is waiting)."""
    running = {i for p in active if (i := completion_index(p, view.completions)) is not None}
    taken = view.succeeded | view.failed | running
    start: list[int] = []
    waits: list[float] = []
    for i in pending_indexes(view.completions, taken, view.completions):
        wait = backoff_remaining(*failure_record(view.by_index.get(i, [])), at)
        if wait > 0:
            waits.append(wait)
        elif len(start) < count:
            start.append(i)
    return start, min(waits) if waits else None


def backoff_remaining(failures_since_success: int, last_failure: datetime | None, at: datetime) -> float:
    """backoffRecord.getRemainingTime: 10s doubled per failure since the last success, at most
    6 minutes, counted from the last failure."""
    if failures_since_success == 0 or last_failure is None:
        return 0.0
    delay: float = min(BACKOFF_BASE * 2 ** (failures_since_success - 1), BACKOFF_MAX)
    return max(0.0, delay - (at - last_failure).total_seconds())


def _finished_at(pod: Pod) -> datetime | None:
    times = [s.state.terminated.finished_at for s in pod.status.container_statuses
             if s.state and s.state.terminated and s.state.terminated.finished_at]
    return max(times) if times else None


def failure_record(pods: list[Pod]) -> tuple[int, datetime | None]:
    """How many pods failed after the last success, and when the last of them finished."""
    succeeded = [t for p in pods if p.status.phase == "Succeeded" and (t := _finished_at(p))]
    last_success = max(succeeded) if succeeded else None
    failures = [_finished_at(p) for p in pods if p.status.phase == "Failed"]
    after = [t for t in failures if last_success is None or t is None or t > last_success]
    known = [t for t in after if t is not None]
    return len(after), max(known) if known else None


@dataclass(frozen=True)
class JobPods:
    counted: list[Pod]  # all but the failed pods an Ignore rule matched: those are as if they never ran
    active: list[Pod]
    fail_job: str | None  # the message of a FailJob rule that matched
    fail_index: set[str | None]  # uids of failed pods a FailIndex rule matched


def _classify(job: Job, pods: list[Pod]) -> JobPods:
    """The job's pods judged by its podFailurePolicy."""
    verdicts = {p.metadata.uid: judge_failed_pod(job.spec.pod_failure_policy, p)
                for p in pods if p.status.phase == "Failed"}
    counted = [p for p in pods if verdicts.get(p.metadata.uid, COUNTED).counts]
    active = [p for p in counted if p.status.phase not in ("Succeeded", "Failed")
              and p.metadata.deletion_timestamp is None]
    return JobPods(counted, active, next((v.fail_job_message for v in verdicts.values() if v.fail_job_message), None),
                   {uid for uid, v in verdicts.items() if v.fail_index})


def _counts(pods: list[Pod], active: list[Pod], indexes: IndexView | None) -> Counts:
    return Counts(
        active=len(active),
        succeeded=len(indexes.succeeded) if indexes is not None
        else sum(1 for p in pods if p.status.phase == "Succeeded"),
        failed=sum(1 for p in pods if p.status.phase == "Failed"),
        restarts=sum(s.restart_count or 0 for p in pods if p.status.phase in ("Running", "Pending")
                     for s in p.status.container_statuses + p.status.init_container_statuses))


def _outcome(job: Job, fail_job: str | None, counts: Counts, started: datetime | None, indexes: IndexView | None,
             at: datetime) -> tuple[str, str, str] | None:
    """(condition, reason, message) once the job is over: a FailJob rule first, then the
    limits and completions, then the failed indexes."""
    if fail_job is not None:
        return ("Failed", "PodFailurePolicy", fail_job)
    return finished(job.spec, job.spec.template.spec.restart_policy, counts, started, at) \
        or (indexes_failed(job.spec, indexes) if indexes is not None else None)


def _set_counts(status: JobStatus, job: Job, pods: list[Pod], active: list[Pod], counts: Counts,
                indexes: IndexView | None) -> None:
    status.active = len(active)
    status.succeeded = counts.succeeded
    status.failed = counts.failed
    status.ready = sum(1 for p in active if is_pod_ready(p))
    status.terminating = sum(1 for p in pods if p.metadata.deletion_timestamp is not None
                             and p.status.phase not in ("Succeeded", "Failed"))
    if indexes is not None:
        status.completed_indexes = format_indexes(indexes.succeeded) or None  # omitempty
        if job.spec.backoff_limit_per_index is not None:
            status.failed_indexes = format_indexes(indexes.failed)


# --- the controller ------------------------------------------------------------------------


class JobController:
    def __init__(self, client: Client, informers: SharedInformerFactory) -> None:
        self.client = client
        self.queue: WorkQueue[Key] = WorkQueue()
        self.recorder = EventRecorder(client, "job-controller")
        self.jobs = informers.informer(Job)
        self.pods = informers.informer(Pod)

    def _on_job(self, type_: str, job: Job) -> None:
        if type_ != "DELETED":
            self.queue.add(key_of(job))

    def _on_pod(self, type_: str, pod: Pod) -> None:
        ref = controller_of(pod.metadata)
        if ref is not None and ref.kind == "Job" and ref.api_version.startswith("batch/"):
            self.queue.add((pod.metadata.namespace or "", ref.name))

    async def sync(self, key: Key) -> None:
        """syncJob: count the job's pods, then either finish the job or manage its pods, and
        write the status."""
        ns, name = key
        try:
            job = await self.client.get(Job, name, ns)
        except NotFound:
            return
        if job.metadata.deletion_timestamp is not None:
            return
        if _condition(job, "Complete") or _condition(job, "Failed"):
            await self._expire(job)
            return
        at = now()
        pods = _classify(job, await self._pods_of(job))
        indexes = self._index_view(job, pods.counted, pods.active, pods.fail_index)
        active = pods.active
        if indexes is not None and indexes.surplus:
            await self._delete_pods(job, indexes.surplus)
            active = [p for p in active if p not in indexes.surplus]
        counts = _counts(pods.counted, active, indexes)
        status = job.status.model_copy(deep=True)
        if status.start_time is None and not job.spec.suspend:
            status.start_time = at
        outcome = _outcome(job, pods.fail_job, counts, status.start_time, indexes, at)
        if outcome is not None:
            active = await self._finish(job, status, outcome, active, at)
        else:
            active = await self._manage(job, pods.counted, active, indexes, counts, at)
            if job.spec.active_deadline_seconds is not None and status.start_time is not None:
                deadline = status.start_time + timedelta(seconds=job.spec.active_deadline_seconds)
                self.queue.add_after(key, (deadline - at).total_seconds())
        _set_counts(status, job, pods.counted, active, counts, indexes)
        if status != job.status:
            job.status = status
            try:
                job = await self.client.update_status(job)
            except Conflict:
                self.queue.add(key)
                return
        if outcome is not None:
            await self._expire(job)

    async def _pods_of(self, job: Job) -> list[Pod]:
        """getPodsForJob: the pods the job controls that its selector matches."""
        selector = job.spec.selector
        return [p for p in (await self.client.list(Pod, job.metadata.namespace))[0]
                if (ref := controller_of(p.metadata)) is not None and ref.uid == job.metadata.uid
                and selector is not None and selector_matches(selector, p.metadata.labels)]

    async def _finish(self, job: Job, status: JobStatus, outcome: tuple[str, str, str], active: list[Pod],
                      at: datetime) -> list[Pod]:
        """The job's finished condition; a failed job's pods go. Returns the pods still active."""
        type_, reason, message = outcome
        if type_ == "Failed":
            await self._delete_pods(job, active)
            active = []
        status.conditions.append(JobCondition(type=type_, status="True", reason=reason, message=message,
                                              last_probe_time=at, last_transition_time=at))
        if type_ == "Complete":
            status.completion_time = at
        await self.recorder.record(job, reason if type_ == "Failed" else "Completed",
                                   message if type_ == "Failed" else "Job completed", warning=type_ == "Failed")
        return active

    async def _manage(self, job: Job, pods: list[Pod], active: list[Pod], indexes: IndexView | None,
                      counts: Counts, at: datetime) -> list[Pod]:
        """manageJob: deletes pods past the wanted count, or creates those missing once the
        back-off allows. Returns the pods now active."""
        key = key_of(job)
        want = wanted_active(job.spec, counts)
        if len(active) > want:
            await self._delete_pods(job, active[:len(active) - want])
            return active[len(active) - want:]
        if len(active) == want:
            return active
        if indexes is not None and job.spec.backoff_limit_per_index is not None:
            start, wait = indexes_to_start(indexes, active, want - len(active), at)
            if wait is not None:
                self.queue.add_after(key, wait)
            return active + await self._create_pods(job, start, indexes)
        wait = backoff_remaining(*failure_record(pods), at)
        if wait > 0:
            self.queue.add_after(key, wait)
            return active
        if indexes is not None:
            taken = indexes.succeeded | {i for p in active if (i := completion_index(p, indexes.completions))
                                         is not None}
            return active + await self._create_pods(job, pending_indexes(indexes.completions, taken,
                                                                         want - len(active)), indexes)
        return active + await self._create_pods(job, [None] * (want - len(active)))

    @staticmethod
    def _index_view(job: Job, pods: list[Pod], active: list[Pod], fail_index: set[str | None]) -> IndexView | None:
        """For an Indexed job: the indexes that succeeded or failed, and the active pods to
        remove (those without a valid index, of an index already done or failed, or a second
        pod of one index)."""
        if job.spec.completion_mode != "Indexed" or job.spec.completions is None:
            return None
        completions = job.spec.completions
        by_index: dict[int, list[Pod]] = {}
        for pod in pods:
            if (i := completion_index(pod, completions)) is not None:
                by_index.setdefault(i, []).append(pod)
        succeeded = {i for i, ps in by_index.items() if any(p.status.phase == "Succeeded" for p in ps)}
        failed: set[int] = set()
        if job.spec.backoff_limit_per_index is not None:
            for i, ps in by_index.items():
                failures = [p for p in ps if p.status.phase == "Failed"]
                if i not in succeeded and (len(failures) > job.spec.backoff_limit_per_index
                                           or any(p.metadata.uid in fail_index for p in failures)):
                    failed.add(i)
        surplus: list[Pod] = []
        running: set[int] = set()
        for pod in active:
            i = completion_index(pod, completions)
            if i is None or i in succeeded or i in failed or i in running:
                surplus.append(pod)
            else:
                running.add(i)
        return IndexView(completions, succeeded, surplus, failed, by_index)

    async def _create_pods(self, job: Job, indexes: Sequence[int | None], view: IndexView | None = None) -> list[Pod]:
        """A pod per entry: of that completion index, or (None) a NonIndexed job's."""
        ref = controller_ref(job, "batch/v1", "Job")
        made: list[Pod] = []
        for index in indexes:
            if index is None:
                pod = pod_from_template(job.spec.template, job.metadata.namespace or "", job.metadata.name or "", ref)
            else:
                pod = indexed_pod(job, index, ref)
                if job.spec.backoff_limit_per_index is not None and view is not None:
                    failures = sum(1 for p in view.by_index.get(index, []) if p.status.phase == "Failed")
                    pod.metadata.annotations[JOB_INDEX_FAILURE_COUNT] = str(failures)
            try:
                made.append(await self.client.create(pod))
            except APIError as exc:
                await self.recorder.record(job, "FailedCreate", f"Error creating: {exc}", warning=True)
                raise
            await self.recorder.record(job, "SuccessfulCreate", f"Created pod: {made[-1].metadata.name}")
        return made

    async def _delete_pods(self, job: Job, pods: list[Pod]) -> None:
        for pod in pods:
            with contextlib.suppress(NotFound):
                await self.client.delete(Pod, pod.metadata.name or "", pod.metadata.namespace, uid=pod.metadata.uid)
                await self.recorder.record(job, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

    async def _expire(self, job: Job) -> None:
        """The TTL-after-finished controller: a finished job goes ttlSecondsAfterFinished later."""
        ttl = job.spec.ttl_seconds_after_finished
        done = next((c.last_transition_time for c in job.status.conditions
                     if c.type in ("Complete", "Failed") and c.status == "True"), None)
        if ttl is None or done is None:
            return
        remaining = (done + timedelta(seconds=ttl) - now()).total_seconds()
        if remaining > 0:
            self.queue.add_after(key_of(job), remaining)
            return
        with contextlib.suppress(NotFound, Conflict):
            await self.client.delete(Job, job.metadata.name or "", job.metadata.namespace, uid=job.metadata.uid,
                                     propagation_policy="Foreground")
            log.info("job %s/%s: deleted %ss after it finished", job.metadata.namespace, job.metadata.name, ttl)

    async def run(self) -> None:
        try:
            await asyncio.gather(
                self.jobs.serve(WatchEvents(self._on_job)),
                self.pods.serve(WatchEvents(self._on_pod)),
                self.queue.work(self.sync, "job"))
        finally:
            await self.recorder.close()


def _condition(job: Job, type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in job.status.conditions)
