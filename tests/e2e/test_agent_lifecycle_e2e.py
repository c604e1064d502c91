"""The node agent's Kubernetes lifecycle on real containers: init containers in order,
restart policies and back-off, probes, phases and container states."""
from __future__ import annotations

import pytest

from podbay.api import Event, Pod
from podbay.api.formats import load_pods
from podbay.api.printing import pod_row
from podbay.runtime.gvisor import GVISOR_MEMORY_OVERHEAD
from tests.e2e.conftest import Cluster, in_class

pytestmark = pytest.mark.e2e


def phase(*phases: str):
    return lambda p: p.status.phase in phases


def cond(kind: str, status: str = "True"):
    return lambda p: any(c.type == kind and c.status == status for c in p.status.conditions)


async def test_init_containers_run_in_order_before_the_main_containers(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  restartPolicy: Never
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: first, image: busybox:1.35, command: [sh, -c, "echo one > /work/log"],
     volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: busybox:1.35, command: [sh, -c, "echo two >> /work/log"],
     volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - {name: main, image: busybox:1.35, command: [sh, -c, "cat /work/log; test $(wc -l < /work/log) = 2"],
     volumeMounts: [{name: work, mountPath: /work}]}
""")[0])
    pod = await cluster.wait_for("inits", phase("Succeeded", "Failed"))
    assert pod.status.phase == "Succeeded"
    assert [s.state.terminated.reason for s in pod.status.init_container_statuses] == ["Completed", "Completed"]
    main = pod.status.container_statuses[0]
    assert main.state.terminated.exit_code == 0
    assert pod_row(pod).status == "Completed"
    log = b"".join([c async for c in cluster.client.logs("inits", "default", container="main")])
    assert log == b"one\ntwo\n"


async def test_failing_init_container_fails_the_pod_under_never(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: badinit}
spec:
  restartPolicy: Never
  initContainers: [{name: setup, image: busybox:1.35, command: [sh, -c, "exit 3"]}]
  containers: [{name: main, image: busybox:1.35, command: [sh, -c, "echo never runs"]}]
""")[0])
    pod = await cluster.wait_for("badinit", phase("Failed"))
    init = pod.status.init_container_statuses[0]
    assert init.state.terminated.exit_code == 3 and init.state.terminated.reason == "Error"
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    assert pod_row(pod).status == "Init:Error"


async def test_restart_always_backs_off_and_counts_restarts(cluster: Cluster, runtime_class: str | None) -> None:
    await cluster.client.create(in_class(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers: [{name: c, image: busybox:1.35, command: [sh, -c, "echo attempt; exit 1"]}]
"""), runtime_class)[0])
    delays: list[str] = []

    def backing_off(p) -> bool:
        waiting = p.status.container_statuses and p.status.container_statuses[0].state.waiting
        if waiting and waiting.reason == "CrashLoopBackOff":
            delay = waiting.message.split()[1]
            if not delays or delays[-1] != delay:
                delays.append(delay)
        return p.status.container_statuses and p.status.container_statuses[0].restart_count >= 4 and waiting

    pod = await cluster.wait_for("crasher", backing_off)
    # The test server's back-off: 0.5 s doubling to a 2 s cap (the kubelet's 10 s to 300 s).
    assert delays == ["0.5s", "1s", "2s"]
    status = pod.status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 1
    assert pod.status.phase == "Running"
    assert pod_row(pod).status == "CrashLoopBackOff"
    assert "Back-off restarting failed container c" in (await cluster.wait_event("crasher", "BackOff")).message


async def test_restart_on_failure_stops_after_success(cluster: Cluster, runtime_class: str | None) -> None:
    await cluster.client.create(in_class(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: retry}
spec:
  restartPolicy: OnFailure
  volumes: [{name: state, emptyDir: {}}]
  containers:
  - name: c
    image: busybox:1.35
    command: [sh, -c, "if [ -e /state/ran ]; then exit 0; fi; touch /state/ran; exit 7"]
    volumeMounts: [{name: state, mountPath: /state}]
"""), runtime_class)[0])
    pod = await cluster.wait_for("retry", phase("Succeeded", "Failed"))
    assert pod.status.phase == "Succeeded"
    status = pod.status.container_statuses[0]
    assert status.restart_count == 1 and status.last_state.terminated.exit_code == 7


async def test_liveness_probe_restarts_and_readiness_flips_ready(cluster: Cluster, runtime_class: str | None) -> None:
    # `sick` is the Kubernetes documentation's liveness-exec pod with shorter times.
    await cluster.client.create(in_class(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:1.35
    command: [sh, -c, "sleep 1; touch /tmp/ready; sleep 600"]
    readinessProbe: {exec: {command: [test, -e, /tmp/ready]}, periodSeconds: 1}
  - name: sick
    image: busybox:1.35
    args: [/bin/sh, -c, "touch /tmp/healthy; sleep 2; rm -f /tmp/healthy; sleep 600"]
    livenessProbe: {exec: {command: [cat, /tmp/healthy]}, initialDelaySeconds: 1, periodSeconds: 1}
"""), runtime_class)[0])
    await cluster.wait_for("probed", cond("Ready", "False"))
    await cluster.wait_for("probed", lambda p: next(s for s in p.status.container_statuses if s.name == "app").ready)
    await cluster.client.exec("probed", "default", ["rm", "/tmp/ready"], container="app")
    pod = await cluster.wait_for("probed", lambda p: not next(
        s for s in p.status.container_statuses if s.name == "app").ready)
    assert cond("Ready", "False")(pod) and cond("ContainersReady", "False")(pod)
    await cluster.client.exec("probed", "default", ["touch", "/tmp/ready"], container="app")
    await cluster.wait_for("probed", lambda p: next(s for s in p.status.container_statuses if s.name == "app").ready)

    pod = await cluster.wait_for("probed", lambda p: any(
        s.name == "sick" and s.restart_count >= 2 for s in p.status.container_statuses), timeout=60)
    assert next(s for s in pod.status.container_statuses if s.name == "app").restart_count == 0
    unhealthy = await cluster.wait_event("probed", "Unhealthy", prefix="Liveness probe failed")
    assert unhealthy.involved_object.field_path == "spec.containers{sick}"
    killing = await cluster.wait_event("probed", "Killing")
    assert killing.message == "Container sick failed liveness probe, will be restarted"


async def test_changed_image_kills_and_recreates_the_container(cluster: Cluster) -> None:
    from podbay.runtime.images import ImageStore

    ImageStore(cluster.settings.runtime_config().images_root).tag("busybox:1.35", "busybox:1.36")
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: swap}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:1.35, command: [sleep, "600"]}]
""")[0])
    def running(image: str):
        return lambda p: any(s.image == image and s.state.running for s in p.status.container_statuses)

    pod = await cluster.wait_for("swap", running("busybox:1.35"))
    first = pod.status.container_statuses[0].container_id
    pod.spec.containers[0].image = "busybox:1.36"
    await cluster.client.update(pod)
    pod = await cluster.wait_for("swap", running("busybox:1.36"))
    status = pod.status.container_statuses[0]
    assert status.container_id != first and status.restart_count == 1
    assert (await cluster.wait_event("swap", "Killing")).message == "Container c definition changed, will be restarted"


async def test_config_map_secret_and_downward_api_volumes(cluster: Cluster) -> None:
    from podbay.api.formats import load_objects

    for obj in load_objects("""
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: czNjcjN0}
---
apiVersion: v1
kind: Pod
metadata: {name: files, labels: {app: files}}
spec:
  restartPolicy: Never
  volumes:
  - {name: cfg, configMap: {name: settings, items: [{key: greeting, path: hello.txt}]}}
  - {name: sec, secret: {secretName: creds}}
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}},
                          {path: name, fieldRef: {fieldPath: metadata.name}}]}
  containers:
  - name: show
    image: busybox:1.35
    command: [sh, -c, "cat /cfg/hello.txt /sec/password; echo; cat /info/labels; echo; cat /info/name; echo; ls /cfg"]
    volumeMounts: [{name: cfg, mountPath: /cfg}, {name: sec, mountPath: /sec}, {name: info, mountPath: /info}]
"""):
        await cluster.client.create(obj)
    pod = await cluster.wait_for("files", phase("Succeeded", "Failed"))
    assert pod.status.phase == "Succeeded"
    log = b"".join([c async for c in cluster.client.logs("files", "default")]).decode()
    assert log == 'hellos3cr3t\napp="files"\nfiles\nhello.txt\n'


MATRIX = {  # (restartPolicy, exit code) -> (phase the pod settles in, whether the container restarts)
    ("Always", 0): ("Running", True), ("Always", 1): ("Running", True),
    ("OnFailure", 0): ("Succeeded", False), ("OnFailure", 1): ("Running", True),
    ("Never", 0): ("Succeeded", False), ("Never", 1): ("Failed", False),
}


async def test_restart_policy_and_exit_code_decide_restarts_and_phase(cluster: Cluster, runtime_class: str | None) -> None:
    def name(policy: str, code: int) -> str:
        return f"{policy.lower()}-{code}"

    for policy, code in MATRIX:
        await cluster.client.create(in_class(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name(policy, code)}}}
spec:
  restartPolicy: {policy}
  containers: [{{name: c, image: busybox:1.35, command: [sh, -c, "exit {code}"]}}]
"""), runtime_class)[0])
    # Two containers under Never: the pod runs while one does, and fails once all ended, one badly.
    await cluster.client.create(in_class(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: never-mixed}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - {name: fails, image: busybox:1.35, command: [sh, -c, "exit 2"]}
  - {name: runs, image: busybox:1.35, command: [sleep, "600"]}
"""), runtime_class)[0])
    for (policy, code), (want, restarts) in MATRIX.items():
        if restarts:
            pod = await cluster.wait_for(name(policy, code), lambda p: any(
                s.restart_count >= 1 and s.last_state.terminated is not None for s in p.status.container_statuses))
            assert pod.status.container_statuses[0].last_state.terminated.exit_code == code
        else:
            pod = await cluster.wait_for(name(policy, code), phase("Succeeded", "Failed"))
            status = pod.status.container_statuses[0]
            assert status.restart_count == 0 and status.state.terminated.exit_code == code
            assert pod_row(pod).status == ("Completed" if code == 0 else "Error")
        assert pod.status.phase == want, (policy, code)
    pod = await cluster.wait_for("never-mixed", lambda p: any(
        s.name == "fails" and s.state.terminated for s in p.status.container_statuses))
    assert pod.status.phase == "Running" and pod_row(pod).ready == "1/2"


async def test_init_progress_shows_init_n_of_m(cluster: Cluster, tmp_path) -> None:
    await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: gated}}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{{name: gate, hostPath: {{path: {tmp_path}, type: Directory}}}}]
  initContainers:
  - {{name: one, image: busybox:1.35, command: [sh, -c, "until [ -e /gate/one ]; do sleep 0.1; done"],
     volumeMounts: [{{name: gate, mountPath: /gate}}]}}
  - {{name: two, image: busybox:1.35, command: [sh, -c, "until [ -e /gate/two ]; do sleep 0.1; done"],
     volumeMounts: [{{name: gate, mountPath: /gate}}]}}
  containers: [{{name: main, image: busybox:1.35, command: [sleep, "600"]}}]
""")[0])
    seen = [pod_row(await cluster.wait_for("gated", lambda p: pod_row(p).status == "Init:0/2")).status]
    (tmp_path / "one").touch()
    pod = await cluster.wait_for("gated", lambda p: pod_row(p).status == "Init:1/2")
    assert pod.status.phase == "Pending" and cond("Initialized", "False")(pod)
    seen.append(pod_row(pod).status)
    (tmp_path / "two").touch()
    pod = await cluster.wait_for("gated", lambda p: pod_row(p).status == "Running")
    seen.append(pod_row(pod).status)
    assert seen == ["Init:0/2", "Init:1/2", "Running"]
    assert cond("Initialized")(pod) and pod.status.phase == "Running"


async def test_failing_init_container_is_retried_under_on_failure_and_always(cluster: Cluster) -> None:
    for policy in ("OnFailure", "Always"):
        await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: init-{policy.lower()}}}
spec:
  restartPolicy: {policy}
  initContainers: [{{name: setup, image: busybox:1.35, command: [sh, -c, "exit 5"]}}]
  containers: [{{name: main, image: busybox:1.35, command: [sleep, "600"]}}]
""")[0])
    for policy in ("OnFailure", "Always"):
        pod = await cluster.wait_for(f"init-{policy.lower()}", lambda p: any(
            s.restart_count >= 2 and s.state.waiting for s in p.status.init_container_statuses or []))
        init = pod.status.init_container_statuses[0]
        assert init.last_state.terminated.exit_code == 5 and init.state.waiting.reason == "CrashLoopBackOff"
        assert pod.status.phase == "Pending" and pod_row(pod).status == "Init:CrashLoopBackOff"
        assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"


async def test_startup_probe_holds_liveness_off(cluster: Cluster, tmp_path) -> None:
    await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: slowstart}}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{{name: gate, hostPath: {{path: {tmp_path}, type: Directory}}}}]
  containers:
  - name: app
    image: busybox:1.35
    command: [sleep, "600"]
    volumeMounts: [{{name: gate, mountPath: /gate}}]
    startupProbe: {{exec: {{command: [test, -e, /gate/up]}}, periodSeconds: 1, failureThreshold: 60}}
    livenessProbe: {{exec: {{command: [test, -e, /gate/up]}}, periodSeconds: 1, failureThreshold: 1}}
""")[0])
    await cluster.wait_event("slowstart", "Unhealthy", prefix="Startup probe failed", count=3)
    pod = await cluster.client.get(Pod, "slowstart", "default")
    status = pod.status.container_statuses[0]
    assert status.restart_count == 0 and status.started is False and not status.ready
    (tmp_path / "up").touch()
    pod = await cluster.wait_for("slowstart", lambda p: p.status.container_statuses[0].started is True)
    assert pod.status.container_statuses[0].restart_count == 0
    events, _ = await cluster.client.list(Event, "default")
    assert not [e for e in events if (e.message or "").startswith("Liveness probe failed")]
    (tmp_path / "up").unlink()
    await cluster.wait_event("slowstart", "Unhealthy", prefix="Liveness probe failed")
    await cluster.wait_for("slowstart", lambda p: p.status.container_statuses[0].restart_count >= 1)


async def test_failures_show_as_kubernetes_reasons(cluster: Cluster, runtime_class: str | None) -> None:
    for pod in in_class(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: nopull}
spec:
  containers: [{name: c, image: "127.0.0.1:1/nothing:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: nocmd}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox:1.35, command: [/no/such/binary]}]
"""), runtime_class):
        await cluster.client.create(pod)

    def waiting(reason: str):
        return lambda p: any(s.state.waiting and s.state.waiting.reason == reason for s in p.status.container_statuses)

    pod = await cluster.wait_for("nopull", waiting("ErrImagePull"))
    assert "127.0.0.1:1" in pod.status.container_statuses[0].state.waiting.message
    pod = await cluster.wait_for("nopull", waiting("ImagePullBackOff"))
    assert pod_row(pod).status == "ImagePullBackOff" and pod.status.phase == "Pending"

    pod = await cluster.wait_for("nocmd", phase("Failed"))
    state = pod.status.container_statuses[0].state.terminated
    assert state.reason == "StartError" and state.exit_code == 128 and "/no/such/binary" in state.message


async def test_a_container_over_its_memory_limit_is_oom_killed(cluster: Cluster, runtime_class: str | None) -> None:
    # Under gvisor the limit is the pod's (its kernel and containers are one host process tree),
    # so the host's OOM killer takes the sandbox and the restart policy runs in a new one.
    hog = """
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  restartPolicy: POLICY
  containers:
  - name: c
    image: busybox:1.35
    command: [sh, -c, "x=a; while true; do x=$x$x$x$x; done"]
    resources: {limits: {memory: 16Mi}}
"""
    for name, policy in (("hog", "Never"), ("rehog", "OnFailure")):
        await cluster.client.create(in_class(load_pods(hog.replace("NAME", name).replace("POLICY", policy)),
                                             runtime_class)[0])
    pod = await cluster.wait_for("hog", phase("Failed"), timeout=120)
    state = pod.status.container_statuses[0].state.terminated
    assert state.reason == "OOMKilled" and state.exit_code == 137 and pod_row(pod).status == "OOMKilled", state
    # gvisor's class leaves room for the pod's kernel in the pod's limit (16Mi alone would not boot it).
    assert pod.spec.overhead == ({} if runtime_class is None else {"memory": GVISOR_MEMORY_OVERHEAD})
    pod = await cluster.wait_for("rehog", lambda p: p.status.container_statuses
                                 and p.status.container_statuses[0].restart_count >= 1, timeout=120)
    last = pod.status.container_statuses[0].last_state.terminated
    assert last.reason == "OOMKilled" and last.exit_code == 137 and pod.status.phase == "Running", last


async def test_a_sibling_outlives_the_oom_kill_only_where_it_has_its_own_kernel(
        cluster: Cluster, runtime_class: str | None) -> None:
    # crun: the hog's own cgroup is over its limit, so only the hog dies. gvisor: the pod's kernel
    # is the process over the pod's limit, so every container dies with it, each OOMKilled (as
    # containerd's runsc shim reports it), and all restart in a new sandbox.
    await cluster.client.create(in_class(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  containers:
  - name: hog
    image: busybox:1.35
    command: [sh, -c, "sleep 2; x=a; while true; do x=$x$x$x$x; done"]
    resources: {limits: {memory: 16Mi}}
  - name: quiet
    image: busybox:1.35
    command: [sleep, "3600"]
    resources: {limits: {memory: 16Mi}}
"""), runtime_class)[0])

    def restarted(p: Pod) -> bool:
        return bool(p.status.container_statuses) and p.status.container_statuses[0].restart_count >= 1
    pod = await cluster.wait_for("pair", restarted, timeout=120)
    hog, quiet = pod.status.container_statuses
    assert hog.last_state.terminated.reason == "OOMKilled" and hog.last_state.terminated.exit_code == 137
    if runtime_class is None:
        assert quiet.restart_count == 0 and quiet.state.running is not None
    else:
        pod = await cluster.wait_for("pair", lambda p: p.status.container_statuses[1].restart_count >= 1,
                                     timeout=120)
        last = pod.status.container_statuses[1].last_state.terminated
        assert last.reason == "OOMKilled" and last.exit_code == 137, last
        await cluster.wait_event("pair", "SandboxChanged")
