"""apps/v1, batch/v1 and ReplicationControllers over HTTP as kube-apiserver serves them:
discovery (short names, the `all` category, scale subresources), defaulting, 422s naming the
field, the scale subresource, finalizers held by any object, and delete propagation."""
from __future__ import annotations

import json
from typing import Any

from podbay.apiserver.embedded import EmbeddedServer
from tests.apiserver.conftest import admin_session

RS = "/apis/apps/v1/namespaces/default/replicasets"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
CONTAINER = {"name": "c", "image": "busybox:1.35"}


async def call(server: EmbeddedServer, method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with admin_session(server) as http:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        async with http.request(method, server.https_url + path, data=data, headers=hdrs) as response:
            return response.status, json.loads(await response.read())


def replica_set(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [CONTAINER]}}, **spec}}


def causes(body: dict[str, Any]) -> list[str]:
    return [c["field"] for c in body["details"]["causes"]]


async def test_discovery_lists_the_workload_groups(api_server: EmbeddedServer) -> None:
    _, groups = await call(api_server, "GET", "/apis")
    names = {g["name"]: g["preferredVersion"]["groupVersion"] for g in groups["groups"]}
    assert names["apps"] == "apps/v1" and names["batch"] == "batch/v1"
    _, apps = await call(api_server, "GET", "/apis/apps/v1")
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["replicasets"]["shortNames"] == ["rs"] and by_name["deployments"]["shortNames"] == ["deploy"]
    assert by_name["deployments"]["categories"] == ["all"]
    assert by_name["deployments/scale"]["kind"] == "Scale" and by_name["deployments/scale"]["group"] == "autoscaling"
    _, core = await call(api_server, "GET", "/api/v1")
    rc = {r["name"]: r for r in core["resources"]}["replicationcontrollers"]
    assert rc["shortNames"] == ["rc"] and rc["categories"] == ["all"]
    _, batch = await call(api_server, "GET", "/apis/batch/v1")
    assert {r["name"] for r in batch["resources"]} == {"jobs", "jobs/status", "cronjobs", "cronjobs/status"}


async def test_defaults_and_generation(api_server: EmbeddedServer) -> None:
    code, rs = await call(api_server, "POST", RS, replica_set("web"))
    assert code == 201, rs
    assert rs["spec"]["replicas"] == 1 and rs["metadata"]["generation"] == 1 and rs["status"] == {"replicas": 0}
    assert rs["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    code, rs = await call(api_server, "PATCH", f"{RS}/web", {"spec": {"minReadySeconds": 5}},
                          {"Content-Type": "application/merge-patch+json"})
    assert code == 200 and rs["metadata"]["generation"] == 2
    code, d = await call(api_server, "POST", DEPLOY, {**replica_set("d"), "kind": "Deployment"})
    assert code == 201, d
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%",
                                                                                "maxSurge": "25%"}}
    assert d["spec"]["revisionHistoryLimit"] == 10 and d["spec"]["progressDeadlineSeconds"] == 600


async def test_malformed_workloads_are_422_naming_the_field(api_server: EmbeddedServer) -> None:
    code, body = await call(api_server, "POST", RS, replica_set("x", labels={"app": "other"}))
    assert code == 422 and causes(body) == ["spec.template.metadata.labels"]
    bad = replica_set("y")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    code, body = await call(api_server, "POST", RS, bad)
    assert code == 422 and causes(body) == ["spec.template.spec.restartPolicy"]
    code, body = await call(api_server, "POST", RS, {**replica_set("z"), "spec": {**replica_set("z")["spec"],
                                                                                   "replicas": -1}})
    assert code == 422 and causes(body) == ["spec.replicas"]
    deploy = {**replica_set("d"), "kind": "Deployment"}
    deploy["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    code, body = await call(api_server, "POST", DEPLOY, deploy)
    assert code == 422 and causes(body) == ["spec.strategy.rollingUpdate.maxUnavailable"]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"containers": [CONTAINER]}}}}
    code, body = await call(api_server, "POST", JOBS, job)
    assert code == 422 and causes(body) == ["spec.template.spec.restartPolicy"]
    assert 'supported values: "OnFailure", "Never"' in body["message"]
    pod = {"metadata": {"name": "p", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": True},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}]}, "spec": {"containers": [CONTAINER]}}
    code, body = await call(api_server, "POST", "/api/v1/namespaces/default/pods", pod)
    assert code == 422 and causes(body) == ["metadata.ownerReferences.uid", "metadata.ownerReferences"]


async def test_the_job_gets_its_selector_and_labels(api_server: EmbeddedServer) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"containers": [CONTAINER], "restartPolicy": "Never"}}}}
    code, made = await call(api_server, "POST", JOBS, job)
    assert code == 201, made
    uid = made["metadata"]["uid"]
    assert made["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert made["spec"]["template"]["metadata"]["labels"] == {
        "controller-uid": uid, "job-name": "j", "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "j"}
    # A job without labels of its own shows its template's, as a stored Kubernetes job does.
    assert made["metadata"]["labels"] == made["spec"]["template"]["metadata"]["labels"]
    assert (made["spec"]["completions"], made["spec"]["parallelism"], made["spec"]["backoffLimit"]) == (1, 1, 6)
    code, body = await call(api_server, "PATCH", f"{JOBS}/j", {"spec": {"completions": 5}},
                            {"Content-Type": "application/merge-patch+json"})
    assert code == 422 and causes(body) == ["spec.completions"]
    # batch/v1 orphans a job's pods unless told otherwise: the collector's finalizer says so.
    code, gone = await call(api_server, "DELETE", f"{JOBS}/j")
    assert code == 200 and gone["metadata"]["finalizers"] == ["orphan"] and gone["metadata"]["deletionTimestamp"]


async def test_the_scale_subresource(api_server: EmbeddedServer) -> None:
    await call(api_server, "POST", RS, replica_set("s", replicas=2))
    code, scale = await call(api_server, "GET", f"{RS}/s/scale")
    assert code == 200 and scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2} and scale["status"] == {"replicas": 0, "selector": "app=s"}
    code, scale = await call(api_server, "PATCH", f"{RS}/s/scale", {"spec": {"replicas": 4}},
                             {"Content-Type": "application/merge-patch+json"})
    assert code == 200 and scale["spec"]["replicas"] == 4
    code, scale = await call(api_server, "PUT", f"{RS}/s/scale", {**scale, "spec": {"replicas": 1}})
    assert code == 200 and scale["spec"]["replicas"] == 1
    code, rs = await call(api_server, "GET", f"{RS}/s")
    assert rs["spec"]["replicas"] == 1 and rs["metadata"]["generation"] == 3
    code, body = await call(api_server, "PUT", f"{RS}/s/scale", {**scale, "spec": {"replicas": -1}})
    assert code == 422 and causes(body) == ["spec.replicas"]


async def test_finalizers_hold_any_object_until_removed(api_server: EmbeddedServer) -> None:
    cm = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "b"}}
    await call(api_server, "POST", "/api/v1/namespaces/default/configmaps", cm)
    code, marked = await call(api_server, "DELETE", "/api/v1/namespaces/default/configmaps/held")
    assert code == 200 and marked["metadata"]["deletionTimestamp"]
    code, still = await call(api_server, "GET", "/api/v1/namespaces/default/configmaps/held")
    assert code == 200 and still["metadata"]["finalizers"] == ["example.com/hold"]
    code, _ = await call(api_server, "PATCH", "/api/v1/namespaces/default/configmaps/held",
                         {"metadata": {"finalizers": None}}, {"Content-Type": "application/merge-patch+json"})
    assert code == 200
    code, _ = await call(api_server, "GET", "/api/v1/namespaces/default/configmaps/held")
    assert code == 404


async def test_delete_propagation_options(api_server: EmbeddedServer) -> None:
    await call(api_server, "POST", RS, replica_set("fg"))
    code, marked = await call(api_server, "DELETE", f"{RS}/fg", {"propagationPolicy": "Foreground"})
    assert code == 200 and marked["metadata"]["finalizers"] == ["foregroundDeletion"]
    await call(api_server, "POST", RS, replica_set("orphan"))
    code, marked = await call(api_server, "DELETE", f"{RS}/orphan?propagationPolicy=Orphan")
    assert code == 200 and marked["metadata"]["finalizers"] == ["orphan"]
    await call(api_server, "POST", RS, replica_set("bg"))
    code, body = await call(api_server, "DELETE", f"{RS}/bg", {"propagationPolicy": "Sideways"})
    assert code == 422 and causes(body) == ["propagationPolicy"]
    code, body = await call(api_server, "DELETE", f"{RS}/bg", {"propagationPolicy": "Orphan",
                                                               "orphanDependents": True})
    assert code == 422 and causes(body) == ["propagationPolicy"]
    code, body = await call(api_server, "DELETE", f"{RS}/bg")
    assert code == 200 and body["kind"] == "Status" and body["status"] == "Success"


async def test_tables_show_kubectls_columns(api_server: EmbeddedServer) -> None:
    await call(api_server, "POST", RS, replica_set("t", replicas=3))
    _, table = await call(api_server, "GET", RS, headers={"Accept": TABLE})
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Desired", "Current", "Ready", "Age",
                                                              "Containers", "Images", "Selector"]
    assert table["rows"][0]["cells"][:4] == ["t", 3, 0, 0]
    assert table["rows"][0]["cells"][5:] == ["c", "busybox:1.35", "app=t"]


async def test_replication_controllers_default_their_selector_and_scale(api_server: EmbeddedServer) -> None:
    rcs = "/api/v1/namespaces/default/replicationcontrollers"
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
          "spec": {"template": {"metadata": {"labels": {"app": "legacy"}}, "spec": {"containers": [CONTAINER]}}}}
    code, made = await call(api_server, "POST", rcs, rc)
    assert code == 201 and made["spec"]["selector"] == {"app": "legacy"} and made["spec"]["replicas"] == 1
    code, scale = await call(api_server, "PATCH", f"{rcs}/legacy/scale", {"spec": {"replicas": 3}},
                             {"Content-Type": "application/merge-patch+json"})
    assert code == 200 and scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "app=legacy"
    code, body = await call(api_server, "POST", rcs, {**rc, "metadata": {"name": "bad"},
                                                      "spec": {"selector": {"app": "other"}, **{
                                                          k: v for k, v in rc["spec"].items() if k != "selector"}}})
    assert code == 422 and causes(body) == ["spec.template.metadata.labels"]


def job(name: str, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [CONTAINER], "restartPolicy": restart}}, **spec}}


async def test_indexed_and_pod_failure_policy_jobs_are_validated_as_kubernetes_does(
        api_server: EmbeddedServer) -> None:
    cases: list[tuple[dict[str, Any], list[str]]] = [
        # Without parallelism too, completions is defaulted to 1, as SetDefaults_Job does.
        (job("a", completionMode="Indexed", parallelism=2), ["spec.completions"]),
        (job("b", completionMode="Sometimes"), ["spec.completionMode"]),
        (job("c", completionMode="Indexed", completions=2, parallelism=100_001), ["spec.parallelism"]),
        (job("d" * 62, completionMode="Indexed", completions=10), ["metadata.name"]),  # hostname d...d-9: 64
        (job("e", "OnFailure", podFailurePolicy={"rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}}]}),
         ["spec.template.spec.restartPolicy"]),
        (job("f", podFailurePolicy={"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 5, 3, 3]}}]}),
         ["spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
          "spec.podFailurePolicy.rules[0].onExitCodes.values[3]",
          "spec.podFailurePolicy.rules[0].onExitCodes.values"]),
        (job("g", podFailurePolicy={"rules": [{"action": "Explode", "onPodConditions": [{"type": "X"}]},
                                              {"action": "Count"}]}),
         ["spec.podFailurePolicy.rules[0].action", "spec.podFailurePolicy.rules[1]"]),
        (job("h", podFailurePolicy={"rules": [
            {"action": "FailIndex", "onExitCodes": {"containerName": "nope", "operator": "Is", "values": [1]}}]}),
         ["spec.podFailurePolicy.rules[0].action", "spec.podFailurePolicy.rules[0].onExitCodes.operator",
          "spec.podFailurePolicy.rules[0].onExitCodes.containerName"]),
        (job("i", podFailurePolicy={"rules": [{"action": "Count", "onPodConditions": [{"type": "X"}]}] * 21}),
         ["spec.podFailurePolicy.rules"]),
        (job("k", backoffLimitPerIndex=1, maxFailedIndexes=1), ["spec.backoffLimitPerIndex", "spec.maxFailedIndexes"]),
        (job("l", completionMode="Indexed", completions=2, maxFailedIndexes=3),
         ["spec.backoffLimitPerIndex", "spec.maxFailedIndexes"]),
        (job("m", completionMode="Indexed", completions=100_001, parallelism=10_001, backoffLimitPerIndex=0),
         ["spec.maxFailedIndexes", "spec.parallelism"]),
        (job("j", podReplacementPolicy="TerminatingOrFailed", podFailurePolicy={"rules": [
            {"action": "Count", "onPodConditions": [{"type": "X"}]}]}), ["spec.podReplacementPolicy"]),
    ]
    for body, fields in cases:
        code, status = await call(api_server, "POST", JOBS, body)
        assert code == 422 and status["reason"] == "Invalid", (body, status)
        assert causes(status) == fields, status["message"]
    code, made = await call(api_server, "POST", JOBS, job("perindex", completionMode="Indexed", completions=3,
                                                          backoffLimitPerIndex=1, podFailurePolicy={"rules": [
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}}]}))
    assert code == 201 and made["spec"]["backoffLimit"] == 2147483647, made
    code, made = await call(api_server, "POST", JOBS, job("ok", completionMode="Indexed", completions=3,
                                                          podFailurePolicy={"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}))
    assert code == 201, made
    assert made["spec"]["podReplacementPolicy"] == "Failed"
    assert made["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}]
    # Elastic Indexed Jobs: completions change only together with parallelism.
    code, status = await call(api_server, "PATCH", f"{JOBS}/ok", {"spec": {"completions": 5}},
                              {"Content-Type": "application/merge-patch+json"})
    assert code == 422 and causes(status) == ["spec.completions"], status
    assert "can only be modified in tandem with spec.parallelism" in status["message"]
    code, scaled = await call(api_server, "PATCH", f"{JOBS}/ok", {"spec": {"completions": 5, "parallelism": 5}},
                              {"Content-Type": "application/merge-patch+json"})
    assert code == 200 and (scaled["spec"]["completions"], scaled["spec"]["parallelism"]) == (5, 5), scaled
    for change in ({"completionMode": "NonIndexed"}, {"podFailurePolicy": None}):
        code, status = await call(api_server, "PATCH", f"{JOBS}/ok", {"spec": change},
                                  {"Content-Type": "application/merge-patch+json"})
        assert code == 422 and causes(status) == [f"spec.{next(iter(change))}"], status
