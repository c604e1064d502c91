"""The workload controllers' pure rules: which pods go on scale-down, rolling-update arithmetic,
the pod-template-hash, job completion and back-off, deletion propagation finalizers and owner
reference validation."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from podbay.api import ObjectMeta, OwnerReference, Pod
from podbay.api.apps import Deployment, DeploymentStatus, LabelSelector, LabelSelectorRequirement, \
    PodTemplateSpec, ReplicaSetStatus, selector_matches, selector_string
from podbay.api.batch import JobSpec
from podbay.api.owners import deletion_finalizers, validate_owner_references
from podbay.api.serialize import from_dict
from podbay.controllers.job import Counts, backoff_remaining, failure_record, finished, wanted_active
from podbay.controllers.replicaset import calculate_status, pods_to_delete
from podbay.controllers.rollout import ActiveSet, OldSet, compute_hash, condition, deployment_complete, fnv32a, \
    new_rs_new_replicas, old_sets_scale_down, progress_status, proportional_sizes, resolve_fenceposts, safe_encode, \
    scaled_value

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool = True, ready_for: float = 3600,
        age: float = 3600, restarts: int = 0, cost: int | None = None) -> Pod:
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": (NOW - timedelta(seconds=ready_for)).isoformat()}]
    annotations = {"controller.kubernetes.io/pod-deletion-cost": str(cost)} if cost is not None else {}
    return from_dict(Pod, {
        "metadata": {"name": name, "uid": name, "annotations": annotations,
                     "creationTimestamp": (NOW - timedelta(seconds=age)).isoformat()},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": phase, "conditions": conditions,
                   "containerStatuses": [{"name": "c", "restartCount": restarts, "ready": ready, "image": "i",
                                          "imageID": ""}] if restarts else []},
    }, strict=False)


def names(pods: list[Pod]) -> list[str]:
    return [p.metadata.name for p in pods]


@pytest.mark.parametrize("first, second", [
    (pod("unassigned", node=""), pod("assigned")),
    (pod("pending", phase="Pending", ready=False), pod("running", ready=False)),
    (pod("unknown", phase="Unknown", ready=False), pod("running", ready=False)),
    (pod("unready", ready=False), pod("ready")),
    (pod("cheap", cost=-5), pod("dear", cost=5)),
    (pod("newly-ready", ready_for=10), pod("long-ready", ready_for=100000)),
    (pod("restarts", restarts=3), pod("steady")),
    (pod("young", age=10, ready_for=100000), pod("old", age=100000, ready_for=100000)),
])
def test_scale_down_removes_the_pod_kubernetes_ranks_first(first: Pod, second: Pod) -> None:
    assert names(pods_to_delete([second, first], [second, first], 1, NOW)) == [first.metadata.name]
    assert names(pods_to_delete([first, second], [first, second], 1, NOW)) == [first.metadata.name]


def test_a_pod_doubled_up_on_a_node_goes_before_one_alone() -> None:
    alone, crowded, other = pod("alone", node="a"), pod("crowded", node="b"), pod("other", node="b")
    assert names(pods_to_delete([alone, crowded], [alone, crowded, other], 1, NOW)) == ["crowded"]


def test_ready_times_in_the_same_log_bucket_do_not_decide() -> None:
    # 1000s and 1100s ago share a power of two in nanoseconds: the older creation then decides.
    a = pod("a", ready_for=1000, age=50)
    b = pod("b", ready_for=1100, age=100000)
    assert names(pods_to_delete([b, a], [a, b], 1, NOW)) == ["a"]


def test_scale_down_of_everything_takes_all() -> None:
    pods = [pod("a"), pod("b")]
    assert names(pods_to_delete(pods, pods, 5, NOW)) == ["a", "b"]


@pytest.mark.parametrize("value, total, up, expected", [
    ("25%", 3, True, 1), ("25%", 3, False, 0), ("25%", 10, True, 3), ("25%", 10, False, 2), (2, 10, True, 2),
    ("100%", 4, False, 4), ("0%", 4, True, 0)])
def test_percentages_scale_as_intstr_does(value: int | str, total: int, up: bool, expected: int) -> None:
    assert scaled_value(value, total, up) == expected


def test_fenceposts_never_stall_a_rollout() -> None:
    assert resolve_fenceposts("25%", "25%", 3) == (1, 0)
    assert resolve_fenceposts("0%", "0%", 3) == (0, 1)
    assert resolve_fenceposts(2, "50%", 5) == (2, 2)


def test_the_new_set_grows_only_within_max_surge() -> None:
    assert new_rs_new_replicas(replicas=3, max_surge=1, all_spec_replicas=3, new_rs_replicas=0) == 1
    assert new_rs_new_replicas(replicas=3, max_surge=1, all_spec_replicas=4, new_rs_replicas=1) == 1
    assert new_rs_new_replicas(replicas=10, max_surge=3, all_spec_replicas=10, new_rs_replicas=0) == 3
    assert new_rs_new_replicas(replicas=3, max_surge=1, all_spec_replicas=3, new_rs_replicas=2) == 3


def test_old_sets_shrink_only_while_enough_pods_stay_available() -> None:
    old = [OldSet("old", replicas=3, available=3)]
    # The new pod is not available yet: no old pod may go (maxUnavailable 0).
    assert old_sets_scale_down(3, 0, new_spec=1, new_available=0, old=old) == {}
    # Once it is, one old pod goes.
    assert old_sets_scale_down(3, 0, new_spec=1, new_available=1, old=old) == {"old": 2}
    # Unavailable old pods go first, within what the total may shrink by (4 - 2 - 1 here).
    assert old_sets_scale_down(3, 1, new_spec=1, new_available=0, old=[OldSet("old", 3, 1)]) == {"old": 2}
    # The oldest set shrinks first.
    both = [OldSet("older", 1, 1), OldSet("newer", 2, 2)]
    assert old_sets_scale_down(3, 1, new_spec=1, new_available=1, old=both) == {"older": 0, "newer": 1}


def test_the_template_hash_is_fnv32a_safe_encoded() -> None:
    # FNV-1a's published test vectors.
    assert fnv32a(b"") == 0x811C9DC5 and fnv32a(b"a") == 0xE40C292C and fnv32a(b"foobar") == 0xBF9CF968
    # Each byte picks alphabet[byte % 27]: '0' (48) is '4', as in hashes like "5d4b8c7f9".
    assert safe_encode("0123456789") == "456789bcdf"
    template = from_dict(PodTemplateSpec, {"metadata": {"labels": {"app": "x"}},
                                           "spec": {"containers": [{"name": "c", "image": "a"}]}})
    h = compute_hash(template, None)
    assert h == compute_hash(template.model_copy(deep=True), None)
    assert h != compute_hash(template, 1) and compute_hash(template, 1) != compute_hash(template, 2)
    other = template.model_copy(deep=True)
    other.spec.containers[0].image = "b"
    assert h != compute_hash(other, None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10


def test_selectors_match_as_label_selectors_do() -> None:
    selector = LabelSelector(match_labels={"app": "x"}, match_expressions=[
        LabelSelectorRequirement(key="tier", operator="In", values=["a", "b"]),
        LabelSelectorRequirement(key="canary", operator="DoesNotExist")])
    assert selector_matches(selector, {"app": "x", "tier": "a"})
    assert not selector_matches(selector, {"app": "x", "tier": "c"})
    assert not selector_matches(selector, {"app": "x", "tier": "a", "canary": "1"})
    assert selector_string(selector) == "app=x,tier in (a,b),!canary"


def test_job_wants_parallelism_but_no_more_than_the_completions_missing() -> None:
    spec = JobSpec(completions=3, parallelism=2)
    assert wanted_active(spec, Counts(active=0, succeeded=0, failed=0)) == 2
    assert wanted_active(spec, Counts(active=1, succeeded=2, failed=0)) == 1
    assert wanted_active(spec, Counts(active=0, succeeded=3, failed=0)) == 0
    assert wanted_active(JobSpec(parallelism=2), Counts(active=1, succeeded=1, failed=0)) == 1
    assert wanted_active(JobSpec(completions=3, parallelism=2, suspend=True), Counts(0, 0, 0)) == 0


def test_job_completion_and_failure() -> None:
    spec = JobSpec(completions=3, parallelism=2, backoff_limit=1)
    assert finished(spec, "Never", Counts(active=1, succeeded=3, failed=0), NOW, NOW) is None
    assert finished(spec, "Never", Counts(active=0, succeeded=3, failed=1), NOW, NOW)[:2] == \
        ("Complete", "CompletionsReached")
    assert finished(spec, "Never", Counts(active=0, succeeded=1, failed=2), NOW, NOW)[:2] == \
        ("Failed", "BackoffLimitExceeded")
    assert finished(spec, "OnFailure", Counts(active=1, succeeded=0, failed=0, restarts=1), NOW, NOW)[:2] == \
        ("Failed", "BackoffLimitExceeded")
    deadline = JobSpec(completions=1, parallelism=1, backoff_limit=6, active_deadline_seconds=5)
    assert finished(deadline, "Never", Counts(1, 0, 0), NOW - timedelta(seconds=4), NOW) is None
    assert finished(deadline, "Never", Counts(1, 0, 0), NOW - timedelta(seconds=5), NOW)[:2] == \
        ("Failed", "DeadlineExceeded")
    assert finished(JobSpec(parallelism=2, backoff_limit=6), "Never", Counts(0, 1, 0), NOW, NOW)[0] == "Complete"


def test_failed_pods_are_replaced_after_a_doubling_back_off() -> None:
    assert backoff_remaining(0, None, NOW) == 0
    assert backoff_remaining(1, NOW, NOW) == 10
    assert backoff_remaining(3, NOW - timedelta(seconds=15), NOW) == 25
    assert backoff_remaining(20, NOW, NOW) == 360

    def finished_pod(phase: str, at: datetime) -> Pod:
        return from_dict(Pod, {"metadata": {"name": phase}, "status": {"phase": phase, "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 0, "finishedAt": at.isoformat()}}}]}}, strict=False)
    pods = [finished_pod("Failed", NOW - timedelta(seconds=30)), finished_pod("Succeeded", NOW - timedelta(seconds=20)),
            finished_pod("Failed", NOW - timedelta(seconds=10))]
    assert failure_record(pods) == (1, NOW - timedelta(seconds=10))


def test_deletion_propagation_sets_the_collectors_finalizers() -> None:
    assert deletion_finalizers([], "Background", None, None) == []
    assert deletion_finalizers([], "Background", "Foreground", None) == ["foregroundDeletion"]
    assert deletion_finalizers(["x"], "Background", "Orphan", None) == ["x", "orphan"]
    assert deletion_finalizers([], "Orphan", None, None) == ["orphan"]  # batch/v1 Jobs' default
    assert deletion_finalizers([], "Orphan", "Background", None) == []
    assert deletion_finalizers(["orphan"], "Background", None, None) == ["orphan"]  # already asked for
    assert deletion_finalizers(["foregroundDeletion"], "Background", "Orphan", None) == ["orphan"]
    assert deletion_finalizers([], "Background", None, True) == ["orphan"]


def test_owner_references_need_their_fields_and_one_controller() -> None:
    good = OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="a", uid="1", controller=True)
    assert validate_owner_references(ObjectMeta(owner_references=[good])) == []
    errors = validate_owner_references(ObjectMeta(owner_references=[OwnerReference()]))
    assert [e.path for e in errors] == ["metadata.ownerReferences.apiVersion", "metadata.ownerReferences.kind",
                                        "metadata.ownerReferences.name", "metadata.ownerReferences.uid"]
    two = good.model_copy(update={"name": "b", "uid": "2"})
    [error] = validate_owner_references(ObjectMeta(owner_references=[good, two]))
    assert error.path == "metadata.ownerReferences" and "Only one reference can have Controller set to true" \
        in error.message


def test_replica_set_status_counts_ready_and_available_after_min_ready_seconds() -> None:
    labels = {"app": "x"}
    fresh, settled, unready = pod("fresh", ready_for=5), pod("settled", ready_for=60), pod("unready", ready=False)
    for p in (fresh, settled, unready):
        p.metadata.labels = dict(labels)
    unready.metadata.labels = {}
    status = calculate_status(ReplicaSetStatus(), 4, labels, [fresh, settled, unready], 30, NOW, None)
    assert (status.replicas, status.fully_labeled_replicas, status.ready_replicas, status.available_replicas,
            status.observed_generation) == (3, 2, 2, 1, 4)
    assert status.conditions == []
    failing = calculate_status(status, 4, labels, [], 0, NOW, ("FailedCreate", "quota exceeded"))
    [condition] = failing.conditions
    assert (condition.type, condition.status, condition.reason) == ("ReplicaFailure", "True", "FailedCreate")
    assert calculate_status(failing, 4, labels, [], 0, NOW, None).conditions == []


def deployment(replicas: int, generation: int = 1, deadline: int = 600) -> Deployment:
    return from_dict(Deployment, {"metadata": {"name": "d", "generation": generation},
                                  "spec": {"replicas": replicas, "progressDeadlineSeconds": deadline}})


def test_progressing_condition_follows_the_rollout() -> None:
    d = deployment(3)
    status = DeploymentStatus(observed_generation=1, replicas=4, updated_replicas=1, ready_replicas=3,
                              available_replicas=3)
    progress_status(d, status, "d-abc", NOW)
    [cond] = status.conditions
    assert (cond.type, cond.status, cond.reason, cond.message) == \
        ("Progressing", "True", "ReplicaSetUpdated", 'ReplicaSet "d-abc" is progressing.')
    d.status = status.model_copy(deep=True)
    done = DeploymentStatus(observed_generation=1, replicas=3, updated_replicas=3, ready_replicas=3,
                            available_replicas=3, conditions=list(status.conditions))
    assert deployment_complete(d, done)
    progress_status(d, done, "d-abc", NOW)
    assert (done.conditions[0].reason, done.conditions[0].message) == \
        ("NewReplicaSetAvailable", 'ReplicaSet "d-abc" has successfully progressed.')
    assert not deployment_complete(deployment(3, generation=2), done)  # a newer spec is not yet observed


def test_a_rollout_without_progress_times_out() -> None:
    d = deployment(3, deadline=60)
    stalled = condition("Progressing", "True", "ReplicaSetUpdated", "", NOW - timedelta(seconds=61))
    d.status = DeploymentStatus(replicas=3, updated_replicas=1, conditions=[stalled])
    status = DeploymentStatus(observed_generation=1, replicas=3, updated_replicas=1, conditions=[stalled])
    progress_status(d, status, "d-abc", NOW)
    assert (status.conditions[0].status, status.conditions[0].reason) == ("False", "ProgressDeadlineExceeded")


def test_a_deployment_scaled_mid_rollout_shares_the_change_in_proportion() -> None:
    # Kubernetes' documented example: 10 replicas, maxSurge 3, old set 8 and new set 5 (both
    # sized for 13); scaled to 15 (18 allowed), the old set gets 3 more and the new one 2.
    old = ActiveSet("old", 8, 13, NOW - timedelta(hours=1))
    new = ActiveSet("new", 5, 13, NOW)
    assert proportional_sizes(15, 3, [new, old], 13) == {"old": 11, "new": 7}
    # Back down to 10 (13 allowed): the same shares come off.
    assert proportional_sizes(10, 3, [ActiveSet("old", 11, 18, old.created), ActiveSet("new", 7, 18, NOW)], 18) \
        == {"old": 8, "new": 5}
    # To zero, everything goes.
    assert proportional_sizes(0, 3, [old, new], 13) == {"old": 0, "new": 0}
