"""The warm sandbox pool on the real runtime: a pod that takes a warm sandbox gets it replaced,
whatever the pool was doing when it was taken."""
from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time

import pytest

from tests.conftest import HostEnv
from tests.runtime.conftest import running_runtime, runtime_config
from tests.runtime.test_gvisor_e2e import sandbox_processes
from tests.runtime.test_runtime_e2e import sandbox

pytestmark = pytest.mark.e2e


async def test_a_sandbox_taken_while_a_gvisor_one_boots_is_replaced(host_env: HostEnv) -> None:
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/setup.sh installs it)")
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=1, warm_gvisor_sandboxes=1)
    sandboxes_dir = config.run_root / "sandboxes"
    async with running_runtime(config) as runtime:
        # At start the pool makes a warm sandbox, and another in which it boots gVisor's kernel (seconds).
        deadline = time.monotonic() + 60
        while not (sandbox_processes(config.run_root) and runtime.sandboxes.warm.ready):
            assert time.monotonic() < deadline, "no gVisor sandbox began to boot beside a warm one"
            await asyncio.sleep(0.01)
        ahead = {d.name for d in sandboxes_dir.iterdir()}
        first = await runtime.run_pod_sandbox(sandbox("first"))
        assert first in ahead  # the warm crun sandbox, taken while the other one boots
        await runtime.wait_warm()
        ahead = {d.name for d in sandboxes_dir.iterdir()}
        second = await runtime.run_pod_sandbox(sandbox("second"))
        # The take during the boot was not forgotten: the next pod finds a warm sandbox too.
        assert second in ahead
        assert {s.id for s in await runtime.list_pod_sandboxes()} == {first, second}
        await runtime.remove_pod_sandbox(first)
        await runtime.remove_pod_sandbox(second)
