"""A container create cancelled at any of its awaits (the rootfs mount, conmon's spawn, `crun
create` in flight, conmon's reply) leaves nothing: no record listed (with pid None or any other),
no container crun knows, no conmon, no bundle. Or, when the cancel came too late, the created
container, listed with its pid."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Callable

import pytest

from podbay.runtime.config import RuntimeConfig
from podbay.runtime.service import RuntimeService
from podbay.runtime.types import ContainerConfig, ContainerState, ContainerMetadata, PodSandboxConfig, PodSandboxMetadata
from tests.conftest import HostEnv
from tests.runtime.conftest import running_runtime, runtime_config

pytestmark = pytest.mark.e2e
BUSYBOX = "busybox:1.35"


def entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def in_flight(config: RuntimeConfig, phase: str) -> Callable[[], bool]:
    """Whether the create has reached `phase`, as the files it leaves on the way say."""
    def reached() -> bool:
        bundles = [config.bundles_root / name for name in entries(config.bundles_root)]
        if phase == "bundle":
            return any((b / "config.json").exists() for b in bundles)
        if phase == "conmon":
            return any((b / "conmon.pid").exists() for b in bundles)
        return bool(entries(config.crun_root))  # "crun": crun has begun its state directory
    return reached


async def cancelled_when(reached: Callable[[], bool], work: asyncio.Task[str]) -> str | None:
    """`work` cancelled on the first turn of the loop that finds `reached()`; its id if it finished
    first. The deadline only bounds a create that never gets there."""
    deadline = asyncio.get_running_loop().time() + 60
    while not work.done() and not reached() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0)
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        return await work
    return None


async def assert_nothing_or_created(runtime: RuntimeService, config: RuntimeConfig, sid: str,
                                    finished: str | None) -> None:
    listed = await runtime.list_containers(sid)
    if finished is None:
        assert listed == []
        assert entries(config.crun_root) == set()
        assert entries(config.bundles_root) == set()
        assert entries(config.containers_root) == set()
        return
    assert [(c.id, c.state) for c in listed] == [(finished, ContainerState.CREATED)]
    assert runtime.containers.get(finished).pid is not None
    await runtime.remove_container(finished)


@pytest.mark.parametrize("phase", ["bundle", "conmon", "crun"])
async def test_a_create_cancelled_in_flight_leaves_nothing_or_a_created_container(
        host_env: HostEnv, phase: str) -> None:
    config = runtime_config(host_env)
    async with running_runtime(config) as runtime:
        sid = await runtime.run_pod_sandbox(PodSandboxConfig(metadata=PodSandboxMetadata("p", "default", "uid-p"),
                                                             hostname="p"))
        cfg = ContainerConfig(ContainerMetadata("c"), BUSYBOX, ["/bin/sleep", "60"])
        for _ in range(3):
            task = asyncio.create_task(runtime.create_container(sid, cfg))
            finished = await cancelled_when(in_flight(config, phase), task)
            await assert_nothing_or_created(runtime, config, sid, finished)
        # The runtime still creates and starts after the cancels.
        cid = await runtime.create_container(sid, cfg)
        await runtime.start_container(cid)
        assert (await runtime.container_status(cid)).state is ContainerState.RUNNING
        await runtime.stop_container(cid, 0)
        await runtime.remove_container(cid)
        await runtime.remove_pod_sandbox(sid)


async def test_a_second_cancel_during_the_cleanup_still_leaves_nothing(host_env: HostEnv) -> None:
    config = runtime_config(host_env)
    async with running_runtime(config) as runtime:
        sid = await runtime.run_pod_sandbox(PodSandboxConfig(metadata=PodSandboxMetadata("p", "default", "uid-p"),
                                                             hostname="p"))
        cfg = ContainerConfig(ContainerMetadata("c"), BUSYBOX, ["/bin/sleep", "60"])
        task = asyncio.create_task(runtime.create_container(sid, cfg))
        reached = in_flight(config, "conmon")
        deadline = asyncio.get_running_loop().time() + 60
        while not task.done() and not reached() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0)
        # Cancelled again on every turn until it ends: the discard still runs to its end.
        while not task.done():
            task.cancel()
            await asyncio.sleep(0)
        finished = None if task.cancelled() else task.result()
        await assert_nothing_or_created(runtime, config, sid, finished)
        await runtime.remove_pod_sandbox(sid)


async def test_a_create_cut_short_by_the_process_ending_is_gone_after_a_restart(host_env: HostEnv) -> None:
    """The record is written before `crun create` runs: a process that died in between left it
    created with no pid, which nothing would ever start. A fresh runtime removes it, and whatever
    crun had made of it."""
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as runtime:
        sid = await runtime.run_pod_sandbox(PodSandboxConfig(metadata=PodSandboxMetadata("p", "default", "uid-p"),
                                                             hostname="p"))
        cid = await runtime.create_container(sid, ContainerConfig(ContainerMetadata("c"), BUSYBOX, ["/bin/sleep", "60"]))
        await runtime.shutdown()
        path = config.containers_root / cid / "record.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "pid": None, "conmon_pid": None,
                                    "pid_start_time": None}))
        fresh = RuntimeService(config, runtime.images)
        await fresh.start()
        try:
            assert await fresh.list_containers(sid) == []
            assert entries(config.crun_root) == set() and entries(config.bundles_root) == set()
            await fresh.remove_pod_sandbox(sid)
        finally:
            await fresh.shutdown()
