"""A cluster on a real three-member etcd: two `podbay apiserver`s, the scheduler, the controllers
and an agent, each its own process. The agent SIGKILLed: its Node goes Ready=Unknown after the
grace and its pod is marked not ready, as node lifecycle does. Then every podbay process
SIGKILLed (etcd stays) and started again: the same pods, their containers adopted with the same
IDs, nothing duplicated."""
from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from pathlib import Path

import pytest

from podbay.agent.proxy import ProxyConfig, remove_rules
from podbay.api import Node, Pod
from podbay.api.errors import NotFound
from podbay.client import Client
from podbay.runtime.service import RuntimeService
from tests.cli.test_apiserver_failover_e2e import (
    Process,
    Start,
    a_pod,
    eventually,
    start,
    start_apiserver,
)
from tests.cli.test_etcd_quorum_e2e import etcd_cluster
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import settings_for
from tests.etcd_server import EtcdCluster

pytestmark = pytest.mark.e2e

__all__ = ["start", "etcd_cluster"]  # fixtures, used by name below

GRACE = "8"  # a node silent this long is Unknown


def crun_ids(env: HostEnv) -> list[str]:
    """Every container crun knows under the agent's run root: the host's view, not podbay's."""
    out = subprocess.run(["crun", f"--root={env.run_root / 'crun'}", "list", "--format=json"], capture_output=True,
                         text=True, check=True).stdout
    return [c["id"] for c in json.loads(out or "[]")]


async def test_killed_agent_goes_unknown_and_everything_killed_comes_back_the_same(
        host_env: HostEnv, etcd_cluster: EtcdCluster, start: Start, tmp_path: Path) -> None:
    require_root()
    a = start_apiserver(start, tmp_path, "apiserver-a", etcd_cluster)
    b = start_apiserver(start, tmp_path, "apiserver-b", etcd_cluster, first=a)
    both, token, node = f"{a.url},{b.url}", a.join_token, f"node-{host_env.prefix}"

    def control_plane() -> list[Process]:
        return [start(part, "--state-root", str(tmp_path / part), "--run-root", str(tmp_path / f"{part}-run"),
                      "--node-grace", GRACE, "--pod-eviction-timeout", "600", "--server", both, part,
                      "--token", token) for part in ("scheduler", "controllers")]

    def agent() -> Process:
        return start("agent", "--state-root", str(host_env.state_root), "--run-root", str(host_env.run_root),
                     "--cgroup-parent", host_env.cgroup_parent, "--network", host_env.network_name,
                     "--bridge", host_env.bridge, "--subnet", host_env.subnet, "--node-name", node,
                     "--node-grace", GRACE, "--warm-sandboxes", "0", "--proxy-chain-prefix", host_env.network_name,
                     "--server", both, "agent", "--token", token)

    parts = [*control_plane(), agent()]
    client = Client.from_kubeconfig(a.kubeconfig, server=[a.url, b.url])
    try:
        async def node_ready() -> str:
            try:
                got = await client.get(Node, node)
            except NotFound:
                return ""
            return next((c.status for c in got.status.conditions if c.type == "Ready"), "")

        async def node_ready_is(status: str) -> bool:
            return await node_ready() == status

        async def containers() -> dict[str, str]:
            pod = await client.get(Pod, "steady", "default")
            return {s.name: s.container_id or "" for s in pod.status.container_statuses or [] if s.state.running}

        async def running() -> bool:
            pod = await client.get(Pod, "steady", "default")
            return pod.status.phase == "Running" and bool(await containers())

        async def pod_ready(status: str) -> bool:
            pod = await client.get(Pod, "steady", "default")
            return any(c.type == "Ready" and c.status == status for c in pod.status.conditions or [])

        await eventually(lambda: node_ready_is("True"), "node Ready", 120)
        await client.create(a_pod("steady", ["sleep", "600"]))
        await eventually(running, "pod steady running", 120)
        ids = await containers()
        on_host = sorted(crun_ids(host_env))

        # The agent killed: node lifecycle marks its Node Unknown past the grace, and its pod not ready.
        await asyncio.to_thread(parts[-1].kill)
        await eventually(lambda: node_ready_is("Unknown"), "node Unknown after the grace", 60)
        await eventually(lambda: pod_ready("False"), "pod marked not ready", 60)
        assert sorted(crun_ids(host_env)) == on_host, "the containers run on without their agent"
        parts[-1] = agent()
        await eventually(lambda: node_ready_is("True"), "node Ready again", 120)
        await eventually(lambda: pod_ready("True"), "pod ready again", 120)
        assert await containers() == ids

        # Every podbay process SIGKILLed, etcd left running; then all started again.
        for p in (*parts, a.process, b.process):
            await asyncio.to_thread(p.kill)
        a = start_apiserver(start, tmp_path, "apiserver-a", etcd_cluster, port=int(a.url.rsplit(":", 1)[1]))
        b = start_apiserver(start, tmp_path, "apiserver-b", etcd_cluster, first=a, port=int(b.url.rsplit(":", 1)[1]))
        parts = [*control_plane(), agent()]
        await eventually(lambda: pod_ready("True"), "pod ready after the restart", 120)
        await eventually(lambda: node_ready_is("True"), "node Ready after the restart", 120)
        pods, _ = await client.list(Pod, "default")
        assert [p.metadata.name for p in pods] == ["steady"]
        assert await containers() == ids, "containers adopted, not made again"
        assert sorted(crun_ids(host_env)) == on_host, "nothing duplicated on the host"
        assert all(p.popen.poll() is None for p in parts), [p.text() for p in parts]
    finally:
        with contextlib.suppress(Exception):
            await client.delete(Pod, "steady", "default", grace_period_seconds=0)

            async def gone() -> bool:
                pods, _ = await client.list(Pod, "default")
                return not pods
            await eventually(gone, "pod deleted", 60)
        await client.close()
        for p in reversed(parts):
            p.stop()
        runtime = RuntimeService(settings_for(host_env).runtime_config())
        await runtime.start()
        await runtime.shutdown(purge=True)
        # A killed agent's Service rules outlive it, as kube-proxy's do: removed as `podbay reset` does.
        await remove_rules(ProxyConfig(host_env.network_name))
