"""A crun container's start by its exec fifo (as `crun start` does it, without crun's exec): the
process runs and crun's state says so; a container whose process died before its start fails to
start with crun's own error, as through `crun start`."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from podbay.runtime.service import RuntimeService
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, ContainerRuntimeError, ContainerState, PodSandboxConfig, PodSandboxMetadata,
)
from tests.polling import wait_until

pytestmark = pytest.mark.e2e
BUSYBOX = "busybox:1.35"


async def test_a_started_container_runs_and_crun_says_so(runtime: RuntimeService) -> None:
    assert runtime.oci.fifo_start
    sid = await runtime.run_pod_sandbox(PodSandboxConfig(metadata=PodSandboxMetadata("p", "default", "uid-p"),
                                                         hostname="p"))
    cid = await runtime.create_container(sid, ContainerConfig(
        ContainerMetadata("c"), BUSYBOX, ["/bin/sh", "-c", "echo started; exec sleep 60"]))
    assert (await runtime.oci.state(cid) or {}).get("status") == "created"
    await runtime.start_container(cid)
    assert (await runtime.oci.state(cid) or {}).get("status") == "running"
    log = Path(await runtime.container_log_path(cid))
    await wait_until(lambda: log.exists() and "stdout F started" in log.read_text(), timeout=30)
    assert (await runtime.container_status(cid)).state is ContainerState.RUNNING
    await runtime.stop_container(cid, 0)
    assert (await runtime.container_status(cid)).state is ContainerState.EXITED


async def test_a_container_whose_process_died_fails_to_start_with_cruns_error(runtime: RuntimeService) -> None:
    sid = await runtime.run_pod_sandbox(PodSandboxConfig(metadata=PodSandboxMetadata("q", "default", "uid-q"),
                                                         hostname="q"))
    cid = await runtime.create_container(sid, ContainerConfig(ContainerMetadata("c"), BUSYBOX, ["/bin/sleep", "60"]))
    pid = runtime.containers.get(cid).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=30)
    with pytest.raises(ContainerRuntimeError, match="is not running"):
        await runtime.start_container(cid)
    status = await runtime.container_status(cid)
    assert (status.state, status.reason, status.exit_code) == (ContainerState.EXITED, "StartError", 128)
