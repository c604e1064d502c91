"""Hooks, termination, deadlines and sidecars on real containers."""
from __future__ import annotations

from pathlib import Path

import pytest

from podbay.api import Pod
from podbay.api.formats import load_pods
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e


async def test_post_start_runs_and_pre_stop_comes_before_sigterm(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.touch()
    log.chmod(0o666)
    await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{{name: out, hostPath: {{path: {tmp_path}, type: Directory}}}}]
  containers:
  - name: app
    image: busybox:1.35
    command: [sh, -c, "trap 'echo term >> /out/log; exit 0' TERM; sleep 600 & wait"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, "echo post-start >> /out/log"]}}}}
      preStop: {{exec: {{command: [sh, -c, "echo pre-stop >> /out/log"]}}}}
""")[0])
    await cluster.wait_for("hooked", lambda p: p.status.phase == "Running" and all(
        s.state and s.state.running for s in p.status.container_statuses))
    assert log.read_text() == "post-start\n"
    await cluster.client.delete(Pod, "hooked", "default")
    await cluster.wait_for_deleted("hooked")
    assert log.read_text() == "post-start\npre-stop\nterm\n"


async def test_failing_post_start_kills_the_container(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:1.35
    command: [sleep, "600"]
    lifecycle: {postStart: {exec: {command: ["false"]}}}
""")[0])
    await cluster.wait_event("badhook", "FailedPostStartHook")
    pod = await cluster.wait_for("badhook", lambda p: p.status.phase == "Failed")
    assert pod.status.container_statuses[0].state.terminated is not None


async def test_active_deadline_fails_the_pod(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 2
  terminationGracePeriodSeconds: 0
  containers: [{name: app, image: busybox:1.35, command: [sleep, "600"]}]
""")[0])
    pod = await cluster.wait_for("deadline", lambda p: p.status.phase == "Failed")
    assert pod.status.reason == "DeadlineExceeded"


async def test_sidecar_runs_beside_and_stops_after_the_main_container(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, emptyDir: {}}]
  initContainers:
  - name: shipper
    image: busybox:1.35
    restartPolicy: Always
    command: [sh, -c, "touch /data/ready; sleep 600"]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: app
    image: busybox:1.35
    command: [sh, -c, "test -e /data/ready && echo saw-sidecar"]
    volumeMounts: [{name: data, mountPath: /data}]
""")[0])
    pod = await cluster.wait_for("sidecar", lambda p: p.status.phase in ("Succeeded", "Failed"), timeout=90)
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert pod.status.init_container_statuses[0].state.terminated is not None


async def test_sigterm_ignored_is_killed_at_the_deadline_and_pre_stop_is_bounded(cluster: Cluster,
                                                                                 tmp_path: Path) -> None:
    await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes: [{{name: out, hostPath: {{path: {tmp_path}, type: Directory}}}}]
  containers:
  - name: app
    image: busybox:1.35
    command: [sh, -c, "trap '' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    livenessProbe: {{exec: {{command: ["false"]}}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}}
    lifecycle: {{preStop: {{exec: {{command: [sh, -c, "touch /out/pre-stop; sleep 600"]}}}}}}
""")[0])
    pod = await cluster.wait_for("stubborn", lambda p: p.status.phase == "Failed", timeout=60)
    state = pod.status.container_statuses[0].state.terminated
    assert (tmp_path / "pre-stop").exists()
    assert state.exit_code == 137 and state.reason == "Error"
    # The grace period (1 s) plus the kubelet's 2 s for an overrunning preStop, not the hook's 600 s.
    assert (state.finished_at - state.started_at).total_seconds() < 30


async def test_sidecars_start_in_order_and_stop_in_reverse_after_the_main_container(
        cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.touch()
    sidecar = """
  - name: {name}
    image: busybox:1.35
    restartPolicy: Always
    command: [sh, -c, "{check}trap 'echo {name} >> /out/log; exit 0' TERM; sleep 1; touch /out/{name}; sleep 600 & wait"]
    startupProbe: {{exec: {{command: [test, -e, /out/{name}]}}, periodSeconds: 1}}
    volumeMounts: [{{name: out, mountPath: /out}}]"""
    await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: ordered}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  volumes: [{{name: out, hostPath: {{path: {tmp_path}, type: Directory}}}}]
  initContainers:{sidecar.format(name="first", check="")}{sidecar.format(name="second", check="test -e /out/first || exit 9; ")}
  containers:
  - name: app
    image: busybox:1.35
    command: [sh, -c, "test -e /out/second || exit 9; trap 'echo app >> /out/log; exit 0' TERM; sleep 600 & wait"]
    volumeMounts: [{{name: out, mountPath: /out}}]
""")[0])
    pod = await cluster.wait_for("ordered", lambda p: p.status.phase == "Running" and all(
        s.ready for s in [*p.status.init_container_statuses, *p.status.container_statuses]))
    assert [s.restart_count for s in [*pod.status.init_container_statuses, *pod.status.container_statuses]] == [0, 0, 0]
    await cluster.client.delete(Pod, "ordered", "default")
    await cluster.wait_for_deleted("ordered")
    assert log.read_text() == "app\nsecond\nfirst\n"
