"""gRPC probes on a real pod: a health server run by the test inside the pod's network
namespace drives readiness both ways; a liveness probe on a port nobody serves restarts."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from podbay.api import Pod
from podbay.api.formats import load_pods
from podbay.cli.settings import Settings
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def pod_netns(settings: Settings, uid: str) -> str:
    """The network namespace file the runtime pinned for the pod's sandbox."""
    for path in settings.runtime_config().sandboxes_root.glob("*.json"):
        record = json.loads(path.read_text())
        if record["metadata"]["uid"] == uid and record.get("netns"):
            return record["netns"]
    raise AssertionError(f"no sandbox of pod {uid}")


async def expect_line(proc: asyncio.subprocess.Process, text: str) -> None:
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.decode().strip() == text


def container(pod: Pod, name: str):
    return next(s for s in pod.status.container_statuses if s.name == name)


async def test_grpc_probes_follow_a_health_server_in_the_pod(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: grpc}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:1.35
    command: [sleep, "600"]
    readinessProbe: {grpc: {port: 9555}, periodSeconds: 1, failureThreshold: 1}
  - name: lonely
    image: busybox:1.35
    command: [sleep, "600"]
    livenessProbe: {grpc: {port: 9556, service: lonely}, periodSeconds: 1, failureThreshold: 1}
""")[0])
    pod = await cluster.wait_for("grpc", lambda p: p.status.phase == "Running" and bool(p.status.pod_ip))
    ip = pod.status.pod_ip
    server = await asyncio.create_subprocess_exec(
        "nsenter", f"--net={pod_netns(cluster.settings, pod.metadata.uid)}", sys.executable,
        "-m", "tests.agent.grpc_health_server", "0.0.0.0", "9555",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO)
    try:
        await expect_line(server, "serving")
        await cluster.wait_for("grpc", lambda p: container(p, "app").ready)

        server.stdin.write(b"=NOT_SERVING\n")
        await server.stdin.drain()
        await expect_line(server, "set =NOT_SERVING")
        await cluster.wait_for("grpc", lambda p: not container(p, "app").ready)
        unready = await cluster.wait_event("grpc", "Unhealthy", prefix="Readiness probe failed: service unhealthy")
        assert unready.message == 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")'
        assert unready.involved_object.field_path == "spec.containers{app}"

        pod = await cluster.wait_for("grpc", lambda p: container(p, "lonely").restart_count >= 1)
        assert container(pod, "app").restart_count == 0
        dead = await cluster.wait_event("grpc", "Unhealthy", prefix="Liveness probe failed")
        assert dead.message == (f'Liveness probe failed: timeout: failed to connect service "{ip}:9556" within 1s: '
                                f'context deadline exceeded')
        assert dead.involved_object.field_path == "spec.containers{lonely}"
    finally:
        if server.returncode is None:
            server.kill()
        await server.wait()
