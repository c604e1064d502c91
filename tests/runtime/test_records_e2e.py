"""A node upgraded in place keeps its pods: a fresh runtime adopts a running container whose
records were written in the format of the runtime before typed records."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from podbay.runtime.service import RuntimeService
from podbay.runtime.types import ContainerState, SandboxState
from tests.conftest import HostEnv
from tests.runtime.conftest import running_runtime, runtime_config
from tests.runtime.test_records_rules import OLDER_CONTAINER_KEYS, OLDER_SANDBOX_KEYS
from tests.runtime.test_runtime_e2e import container, run, sandbox, sh

pytestmark = pytest.mark.e2e


def rewrite(path: Path, dropped: tuple[str, ...]) -> None:
    """The record as the runtime before typed records wrote it: keys it left out when unset
    (a sandbox's pid_holder and message) absent, and `dropped` (keys added since) too."""
    data = json.loads(path.read_text())
    unset = {k for k in ("pid_holder", "message") if k in data and not data[k] and "sandbox_id" not in data}
    path.write_text(json.dumps({k: v for k, v in data.items() if k not in unset and k not in dropped}))


@pytest.mark.parametrize("older", [False, True], ids=["current-format", "before-handlers"])
async def test_a_fresh_runtime_adopts_a_running_pod_from_records_in_the_existing_format(
        host_env: HostEnv, older: bool) -> None:
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as runtime:
        sid = await runtime.run_pod_sandbox(sandbox("upgraded"))
        cid = await run(runtime, sid, container("c", "sleep 600"))
        await runtime.shutdown()  # stops watching; the container keeps running
        rewrite(config.sandboxes_root / f"{sid}.json", OLDER_SANDBOX_KEYS if older else ())
        rewrite(config.containers_root / cid / "record.json", OLDER_CONTAINER_KEYS if older else ())
        fresh = RuntimeService(config, runtime.images)
        await fresh.start()
        try:
            assert (await fresh.pod_sandbox_status(sid)).state is SandboxState.READY
            assert (await fresh.container_status(cid)).state is ContainerState.RUNNING
            assert (await sh(fresh, cid, "hostname")).strip() == "upgraded"
            await fresh.stop_container(cid, 0)
            status = await fresh.container_status(cid)
            assert status.state is ContainerState.EXITED and status.exit_code == 137
            await fresh.remove_pod_sandbox(sid)
            assert await fresh.list_pod_sandboxes() == [] and await fresh.list_containers() == []
        finally:
            await fresh.shutdown()
