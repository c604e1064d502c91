"""The all-in-one server with a TCP API and its admin kubeconfig, for the real kubectl of every
installed version (/usr/bin/kubectl dispatches by server version; the SDK's kubectl.1.* are pinned)."""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, free_port, running_cluster, settings_for

KUBECTLS = ["/usr/bin/kubectl", *(f"/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}" for minor in range(27, 34))]


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Kubectl:
    binary: str
    cluster: Cluster
    cache: Path

    async def __call__(self, *args: str, stdin: str | None = None, timeout: float = 90) -> Result:
        # The server runs in this event loop: kubectl runs beside it, never blocking it.
        process = await asyncio.create_subprocess_exec(
            self.binary, f"--kubeconfig={self.cluster.settings.kubeconfig}", f"--cache-dir={self.cache}", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"kubectl {' '.join(args)} ran past {timeout}s") from None
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    async def until(self, *args: str, check: Callable[[Result], bool], timeout: float = 60) -> Result:
        """Runs kubectl until `check` holds of its result; fails with the last result at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = await self(*args)
            if check(result):
                return result
            if loop.time() > deadline:
                raise AssertionError(f"kubectl {' '.join(args)} never satisfied the check; last: {result}")
            await asyncio.sleep(0.5)


@pytest.fixture(params=KUBECTLS)
def kubectl_binary(request: pytest.FixtureRequest) -> str:
    if not Path(request.param).exists():
        pytest.skip(f"{request.param} is not installed")
    return str(request.param)


@pytest.fixture
async def kubectl(host_env: HostEnv, kubectl_binary: str, tmp_path: Path) -> AsyncIterator[Kubectl]:
    require_root()
    settings = dataclasses.replace(settings_for(host_env), api_port=free_port(), metrics_interval=1.0)
    async with running_cluster(settings) as cluster:
        yield Kubectl(kubectl_binary, cluster, tmp_path / "kube-cache")


# A pod to exec into, debug and copy from: one container that stays up.
TARGET_POD = """
apiVersion: v1
kind: Pod
metadata: {name: target}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: app, image: "busybox:1.35", command: [sh, -c, "exec sleep 3601"]}
"""
