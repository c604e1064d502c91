"""The rootfs and /dev/shm mounts run in a worker thread, off the event loop: a create or a
sandbox cancelled at any point, a mount in flight or not, leaves no mount the runtime does not
know of: removing what it lists leaves nothing mounted."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from podbay.runtime.config import RuntimeConfig
from podbay.runtime.types import ContainerConfig, ContainerMetadata, PodSandboxConfig, PodSandboxMetadata
from tests.conftest import HostEnv
from tests.runtime.conftest import running_runtime, runtime_config

pytestmark = pytest.mark.e2e
BUSYBOX = "busybox:1.35"


def mounts_under(config: RuntimeConfig) -> list[str]:
    roots = (str(config.state_root) + "/", str(config.run_root) + "/")
    with open("/proc/self/mountinfo") as f:
        return [m for m in (line.split()[4] for line in f) if m.startswith(roots)]


async def cancelled_after(steps: int, work: asyncio.Task[str]) -> str | None:
    """`work` cancelled after `steps` turns of the loop; its result if it finished first."""
    for _ in range(steps):
        if work.done():
            break
        await asyncio.sleep(0)
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        return await work
    return None


async def test_a_container_create_cancelled_anywhere_leaves_no_rootfs_mount(host_env: HostEnv) -> None:
    config = runtime_config(host_env)
    async with running_runtime(config) as runtime:
        sid = await runtime.run_pod_sandbox(PodSandboxConfig(metadata=PodSandboxMetadata("p", "default", "uid-p"),
                                                             hostname="p"))
        baseline = mounts_under(config)
        cfg = ContainerConfig(ContainerMetadata("c"), BUSYBOX, ["sleep", "60"])
        finished = None
        steps = 0
        while finished is None:
            finished = await cancelled_after(steps, asyncio.create_task(runtime.create_container(sid, cfg)))
            if finished is None:
                for left in await runtime.list_containers(sid):
                    await runtime.remove_container(left.id)
                assert mounts_under(config) == baseline
            steps += 1
        assert [c.id for c in await runtime.list_containers(sid)] == [finished]
        await runtime.remove_container(finished)
        assert mounts_under(config) == baseline
        await runtime.remove_pod_sandbox(sid)


async def test_a_sandbox_run_cancelled_anywhere_leaves_no_shm_mount(host_env: HostEnv) -> None:
    # No warm pool: its refills would mount beside the pod's own sandbox.
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as runtime:
        baseline = mounts_under(config)
        pod = PodSandboxConfig(metadata=PodSandboxMetadata("p", "default", "uid-p"), hostname="p")
        finished = None
        steps = 0
        while finished is None:
            finished = await cancelled_after(steps, asyncio.create_task(runtime.run_pod_sandbox(pod)))
            if finished is None:
                for left in await runtime.list_pod_sandboxes():
                    await runtime.remove_pod_sandbox(left.id)
                assert mounts_under(config) == baseline
            steps += 1
        assert [s.id for s in await runtime.list_pod_sandboxes()] == [finished]
        await runtime.remove_pod_sandbox(finished)
        assert mounts_under(config) == baseline
