"""The server (API, scheduler, agent) can stop and start again without touching running
containers: the agent re-adopts them from the runtime's records, as a restarted kubelet does."""
from __future__ import annotations

import asyncio

import pytest

from podbay.api import Pod
from podbay.api.formats import load_pods
from podbay.cli.allinone import serve
from podbay.client import Client
from podbay.runtime.service import RuntimeService
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, settings_for

pytestmark = pytest.mark.e2e


async def start(settings) -> tuple[asyncio.Task[None], asyncio.Event, Client]:
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, ready=ready, stop=stop))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    return task, stop, Client.connect(settings.server_url)


async def test_running_pods_survive_a_server_restart(host_env: HostEnv) -> None:
    require_root()
    settings = settings_for(host_env)
    task, stop, client = await start(settings)
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
        task, stop, client = await start(settings)
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
        runtime = RuntimeService(settings.runtime_config())
        await runtime.start()
        await runtime.shutdown(purge=True)
