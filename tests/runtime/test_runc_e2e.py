"""The same runtime with runc instead of crun (`--oci-runtime runc`): containers run, exec, stop
and fail to start with runc's own words."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest

from podbay.runtime.service import RuntimeService
from podbay.runtime.types import ContainerRuntimeError, ContainerState, LinuxContainerSecurity
from tests.conftest import HostEnv
from tests.runtime.conftest import running_runtime, runtime_config
from tests.runtime.test_runtime_e2e import container, sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture
async def runc_runtime(host_env: HostEnv) -> AsyncIterator[RuntimeService]:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (scripts/setup.sh installs it)")
    async with running_runtime(dataclasses.replace(runtime_config(host_env), oci_runtime="runc")) as service:
        yield service


async def test_runc_runs_execs_stops_and_reports_start_errors(runc_runtime: RuntimeService) -> None:
    runtime = runc_runtime
    sid = await runtime.run_pod_sandbox(sandbox("runc"))
    cid = await runtime.create_container(sid, container("c", "trap 'exit 0' TERM; sleep 600 & wait",
                                                        security=LinuxContainerSecurity(run_as_user=1000,
                                                                                        supplemental_groups=[3000])))
    await runtime.start_container(cid)
    assert await runtime.exec_sync(cid, ["sh", "-c", "hostname; id -u; id -G"], 10) == (0, b"runc\n1000\n0 3000\n", b"")
    # In every hierarchy under the pod's cgroup, where its limits are, not below the runtime's own
    # cgroup (runc reads a relative cgroupsPath so, and this process's memory cgroup is not the root).
    pod_cgroup = "/" + runtime.sandboxes.sandbox_cgroup(sid).strip("/") + "/"
    pid = (await runtime.container_status(cid)).pid
    paths = [line.split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
             if line.split(":")[1] in ("memory", "pids", "")]
    assert paths and all(path.startswith(pod_cgroup) for path in paths), paths
    await runtime.stop_container(cid, 10)
    status = await runtime.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 0, "Completed")

    bad = await runtime.create_container(sid, dataclasses.replace(container("bad", ""), argv=["/no/such/binary"]))
    with pytest.raises(ContainerRuntimeError) as failure:
        await runtime.start_container(bad)
    assert "/no/such/binary" in str(failure.value) and "time=" not in str(failure.value)
    assert (await runtime.container_status(bad)).reason == "StartError"
    await runtime.remove_pod_sandbox(sid)
