"""The workloads and Services through the official `kubernetes` Python client, with the
Configuration it builds from the admin kubeconfig `podbay up` writes (its CA, its client
certificate): a Deployment rolls out, scales and rolls a new image; a ReplicaSet replaces a
deleted pod; a ReplicationController keeps and scales its pods; Indexed and podFailurePolicy Jobs finish; a Service gets a ClusterIP and an
EndpointSlice of its ready pods. Every object is read back into the client's own models, so a
field the client requires and podbay left out fails here."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from tests.e2e.conftest import Cluster
from tests.e2e.test_services_e2e import svc_cluster  # noqa: F401 - a fixture
from tests.e2e.workloads import remove_workloads

pytestmark = pytest.mark.e2e
NS = "default"
IMAGE = "busybox:1.35"


@pytest.fixture
async def cluster_client(svc_cluster: Cluster) -> AsyncIterator[tuple[Cluster, k8s.ApiClient]]:  # noqa: F811
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(svc_cluster.settings.kubeconfig),
                                client_configuration=configuration)
    assert configuration.ssl_ca_cert and configuration.cert_file and configuration.verify_ssl
    api = k8s.ApiClient(configuration)
    try:
        yield svc_cluster, api
    finally:
        api.close()
        await remove_workloads(svc_cluster)


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # The official client blocks; the server runs on the test's loop.
    return asyncio.to_thread(fn, *args, **kwargs)


def _watch_until(list_fn: Callable[..., Any], check: Callable[[list[Any]], bool], timeout: int,
                 **kwargs: Any) -> list[Any]:
    """The objects from the client's list and watch, as soon as `check` holds of them all."""
    listed = list_fn(NS, **kwargs)
    seen = {o.metadata.uid: o for o in listed.items}
    if check(list(seen.values())):
        return list(seen.values())
    watch = k8s_watch.Watch()
    stream: Iterator[dict[str, Any]] = watch.stream(list_fn, NS, resource_version=listed.metadata.resource_version,
                                                    timeout_seconds=timeout, **kwargs)
    for event in stream:
        obj = event["object"]
        if event["type"] == "DELETED":
            seen.pop(obj.metadata.uid, None)
        elif event["type"] in ("ADDED", "MODIFIED"):
            seen[obj.metadata.uid] = obj
        if check(list(seen.values())):
            watch.stop()
            return list(seen.values())
    raise AssertionError(f"never reached the state; last: {[(o.metadata.name, o.status) for o in seen.values()]}")


async def watch_until(list_fn: Callable[..., Any], check: Callable[[list[Any]], bool], timeout: int = 120,
                      **kwargs: Any) -> list[Any]:
    return await asyncio.to_thread(_watch_until, list_fn, check, timeout, **kwargs)


def pod_template(labels: dict[str, str], command: str = "sleep 600", restart: str = "Always",
                 annotations: dict[str, str] | None = None) -> k8s.V1PodTemplateSpec:
    return k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=labels, annotations=annotations),
        spec=k8s.V1PodSpec(restart_policy=restart, termination_grace_period_seconds=1, containers=[
            k8s.V1Container(name="c", image=IMAGE, image_pull_policy="IfNotPresent", command=["sh", "-c", command])]))


def ready(pods: list[k8s.V1Pod]) -> list[k8s.V1Pod]:
    return [p for p in pods if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]


async def test_deployment_rolls_out_scales_and_rolls_a_new_image(
        cluster_client: tuple[Cluster, k8s.ApiClient]) -> None:
    _, api = cluster_client
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    labels = {"app": "offweb"}
    made = await call(apps.create_namespaced_deployment, NS, k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="offweb"),
        spec=k8s.V1DeploymentSpec(replicas=2, selector=k8s.V1LabelSelector(match_labels=labels),
                                  template=pod_template(labels))))
    assert made.spec.strategy.type == "RollingUpdate" and made.spec.revision_history_limit == 10
    assert made.spec.strategy.rolling_update.max_surge == "25%"

    def rolled(d: k8s.V1Deployment, image: str) -> bool:
        return d.status.updated_replicas == d.spec.replicas == d.status.available_replicas \
            and d.status.observed_generation == d.metadata.generation \
            and d.spec.template.spec.containers[0].image == image \
            and any(c.type == "Available" and c.status == "True" for c in d.status.conditions or [])
    await watch_until(apps.list_namespaced_deployment, lambda ds: any(rolled(d, IMAGE) for d in ds))
    scale = await call(apps.patch_namespaced_deployment_scale, "offweb", NS, {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    await watch_until(core.list_namespaced_pod, lambda ps: len(ready(ps)) == 3, label_selector="app=offweb")
    await call(apps.patch_namespaced_deployment, "offweb", NS,
               {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:latest"}]}}}})
    [d] = await watch_until(apps.list_namespaced_deployment,
                            lambda ds: any(rolled(d, "busybox:latest") and d.status.replicas == 3 for d in ds))
    progressing = next(c for c in d.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "NewReplicaSetAvailable")
    sets = await call(apps.list_namespaced_replica_set, NS, label_selector="app=offweb")
    revisions = {rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs for rs in sets.items}
    assert sorted(revisions) == ["1", "2"] and revisions["1"].spec.replicas == 0 and revisions["2"].spec.replicas == 3
    assert revisions["2"].metadata.owner_references[0].kind == "Deployment"
    assert revisions["2"].metadata.name == f"offweb-{revisions['2'].metadata.labels['pod-template-hash']}"


async def test_replica_set_replaces_a_deleted_pod(cluster_client: tuple[Cluster, k8s.ApiClient]) -> None:
    _, api = cluster_client
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    labels = {"app": "offrs"}
    await call(apps.create_namespaced_replica_set, NS, k8s.V1ReplicaSet(
        metadata=k8s.V1ObjectMeta(name="offrs"),
        spec=k8s.V1ReplicaSetSpec(replicas=2, selector=k8s.V1LabelSelector(match_labels=labels),
                                  template=pod_template(labels))))
    pods = await watch_until(core.list_namespaced_pod, lambda ps: len(ready(ps)) == 2, label_selector="app=offrs")
    victim = ready(pods)[0].metadata.name
    await call(core.delete_namespaced_pod, victim, NS, grace_period_seconds=0)
    await watch_until(core.list_namespaced_pod, lambda ps: len(ready(ps)) == 2 and victim not in
                      {p.metadata.name for p in ps}, label_selector="app=offrs")
    # The set's status follows its pods a moment later.
    await watch_until(apps.list_namespaced_replica_set, lambda rss: [
        (rs.status.replicas, rs.status.ready_replicas, rs.status.available_replicas) for rs in rss] == [(2, 2, 2)])
    rs = await call(apps.read_namespaced_replica_set_status, "offrs", NS)
    assert rs.status.observed_generation == rs.metadata.generation == 1
    await call(apps.replace_namespaced_replica_set_scale, "offrs", NS,
               k8s.V1Scale(metadata=k8s.V1ObjectMeta(name="offrs", namespace=NS), spec=k8s.V1ScaleSpec(replicas=1)))
    await watch_until(core.list_namespaced_pod, lambda ps: len([p for p in ps if p.metadata.deletion_timestamp is None])
                      == 1, label_selector="app=offrs")


async def test_replication_controller_keeps_and_scales_its_pods(
        cluster_client: tuple[Cluster, k8s.ApiClient]) -> None:
    _, api = cluster_client
    core = k8s.CoreV1Api(api)
    labels = {"app": "offrc"}
    made = await call(core.create_namespaced_replication_controller, NS, k8s.V1ReplicationController(
        metadata=k8s.V1ObjectMeta(name="offrc"),
        spec=k8s.V1ReplicationControllerSpec(replicas=2, selector=labels, template=pod_template(labels))))
    assert made.spec.selector == labels
    await watch_until(core.list_namespaced_replication_controller,
                      lambda rcs: [(rc.status.replicas, rc.status.ready_replicas) for rc in rcs] == [(2, 2)])
    scale = await call(core.patch_namespaced_replication_controller_scale, "offrc", NS, {"spec": {"replicas": 1}})
    assert scale.spec.replicas == 1
    await watch_until(core.list_namespaced_pod, lambda ps: len([p for p in ps if p.metadata.deletion_timestamp is None])
                      == 1, label_selector="app=offrc")
    await call(core.delete_namespaced_replication_controller, "offrc", NS, propagation_policy="Foreground")
    await watch_until(core.list_namespaced_pod, lambda ps: not ps, label_selector="app=offrc")


async def test_indexed_and_failure_policy_jobs(cluster_client: tuple[Cluster, k8s.ApiClient]) -> None:
    _, api = cluster_client
    batch, core = k8s.BatchV1Api(api), k8s.CoreV1Api(api)
    await call(batch.create_namespaced_job, NS, k8s.V1Job(
        metadata=k8s.V1ObjectMeta(name="offidx"),
        spec=k8s.V1JobSpec(completions=2, parallelism=2, completion_mode="Indexed",
                           template=pod_template({}, 'echo "$JOB_COMPLETION_INDEX"', restart="Never"))))
    policy = k8s.V1PodFailurePolicy(rules=[
        k8s.V1PodFailurePolicyRule(action="Ignore", on_pod_conditions=[
            k8s.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")]),
        k8s.V1PodFailurePolicyRule(action="FailJob", on_exit_codes=k8s.V1PodFailurePolicyOnExitCodesRequirement(
            operator="In", values=[42]))])
    await call(batch.create_namespaced_job, NS, k8s.V1Job(
        metadata=k8s.V1ObjectMeta(name="offfatal"),
        spec=k8s.V1JobSpec(backoff_limit=3, pod_failure_policy=policy,
                           template=pod_template({}, "exit 42", restart="Never"))))

    def finished(jobs: list[k8s.V1Job]) -> bool:
        return len([j for j in jobs if any(c.type in ("Complete", "Failed") for c in j.status.conditions or [])]) == 2
    jobs = {j.metadata.name: j for j in await watch_until(batch.list_namespaced_job, finished)}
    done = jobs["offidx"]
    assert [(c.type, c.status, c.reason) for c in done.status.conditions] == [("Complete", "True", "CompletionsReached")]
    assert (done.status.succeeded, done.status.completed_indexes) == (2, "0-1")
    assert done.spec.pod_replacement_policy == "TerminatingOrFailed"
    failed = jobs["offfatal"]
    [cond] = failed.status.conditions
    assert (cond.type, cond.reason, failed.status.failed) == ("Failed", "PodFailurePolicy", 1)
    assert "failed with exit code 42 matching FailJob rule at index 1" in cond.message
    assert failed.spec.pod_replacement_policy == "Failed"
    assert failed.spec.pod_failure_policy.rules[1].on_exit_codes.values == [42]
    pods = await call(core.list_namespaced_pod, NS, label_selector="batch.kubernetes.io/job-name=offidx")
    logs = {p.metadata.annotations["batch.kubernetes.io/job-completion-index"]:
            await call(core.read_namespaced_pod_log, p.metadata.name, NS) for p in pods.items}
    assert logs == {"0": "0\n", "1": "1\n"}
    await call(batch.delete_namespaced_job, "offidx", NS, propagation_policy="Background")
    await watch_until(core.list_namespaced_pod, lambda ps: not ps, label_selector="batch.kubernetes.io/job-name=offidx")


async def test_service_gets_a_cluster_ip_and_an_endpoint_slice(cluster_client: tuple[Cluster, k8s.ApiClient]) -> None:
    _, api = cluster_client
    apps, core, discovery = k8s.AppsV1Api(api), k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    labels = {"app": "offsvc"}
    template = pod_template(labels, "mkdir /www && echo hi > /www/index.html && httpd -f -p 8080 -h /www")
    template.spec.containers[0].ports = [k8s.V1ContainerPort(name="http", container_port=8080)]
    await call(apps.create_namespaced_deployment, NS, k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="offsvc"),
        spec=k8s.V1DeploymentSpec(replicas=2, selector=k8s.V1LabelSelector(match_labels=labels), template=template)))
    svc = await call(core.create_namespaced_service, NS, k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="offsvc"),
        spec=k8s.V1ServiceSpec(selector=labels, ports=[k8s.V1ServicePort(name="web", port=80, target_port="http")])))
    assert svc.spec.cluster_ip and svc.spec.type == "ClusterIP" and svc.spec.ports[0].protocol == "TCP"
    pods = await watch_until(core.list_namespaced_pod, lambda ps: len(ready(ps)) == 2, label_selector="app=offsvc")
    ips = {p.status.pod_ip for p in ready(pods)}

    def all_ready(slices: list[k8s.V1EndpointSlice]) -> bool:
        return {a for s in slices for e in s.endpoints or [] if e.conditions.ready for a in e.addresses} == ips
    [slice_] = await watch_until(discovery.list_namespaced_endpoint_slice, all_ready,
                                 label_selector="kubernetes.io/service-name=offsvc")
    assert slice_.address_type == "IPv4"
    assert [(p.name, p.port, p.protocol) for p in slice_.ports] == [("web", 8080, "TCP")]
    assert slice_.metadata.owner_references[0].kind == "Service"
    assert {e.target_ref.name for e in slice_.endpoints} == {p.metadata.name for p in ready(pods)}
    await call(core.delete_namespaced_service, "offsvc", NS)
    await watch_until(discovery.list_namespaced_endpoint_slice, lambda ss: not ss,
                      label_selector="kubernetes.io/service-name=offsvc")
