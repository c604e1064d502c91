"""The server (API, scheduler, agent) can stop and start again without touching running
containers: the agent re-adopts them from the runtime's records, as a restarted kubelet does."""
from __future__ import annotations

import pytest

from podbay.api import Pod
from podbay.api.formats import load_pods
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, purge, settings_for, start_server

pytestmark = pytest.mark.e2e


async def test_running_pods_survive_a_server_restart(host_env: HostEnv) -> None:
    require_root()
    settings = settings_for(host_env)
    task, stop, client = await start_server(settings)
    try:
        await client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:1.35, command: [sleep, "600"]}]
""")[0])
        before = await Cluster(settings, client).wait_for("steady", lambda p: p.status.phase == "Running")
        await client.close()
        stop.set()
        await task
        task, stop, client = await start_server(settings)
        cluster = Cluster(settings, client)
        after = await cluster.wait_for("steady", lambda p: p.status.phase == "Running")
        status, old = after.status.container_statuses[0], before.status.container_statuses[0]
        assert (status.container_id, status.restart_count) == (old.container_id, 0)
        assert status.state.running is not None and after.status.pod_ip == before.status.pod_ip
        await client.delete(Pod, "steady", "default", grace_period_seconds=0)
        await cluster.wait_for_deleted("steady")
    finally:
        await client.close()
        stop.set()
        await task
        await purge(settings)
