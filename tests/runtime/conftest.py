"""A real runtime service on the test's own roots, network and cgroup parent."""
from __future__ import annotations

import contextlib
from typing import AsyncIterator

import pytest

from podbay.runtime.config import RuntimeConfig
from podbay.runtime.images import ensure_busybox_image
from podbay.runtime.service import RuntimeService
from tests.conftest import HostEnv, require_root


def runtime_config(env: HostEnv) -> RuntimeConfig:
    return RuntimeConfig(state_root=env.state_root, run_root=env.run_root, cgroup_parent=env.cgroup_parent,
                         network_name=env.network_name, bridge=env.bridge, subnet=env.subnet)


@contextlib.asynccontextmanager
async def running_runtime(config: RuntimeConfig) -> AsyncIterator[RuntimeService]:
    """A started runtime with the busybox image; everything it made is purged afterwards."""
    require_root()
    service = RuntimeService(config)
    await service.start()
    ensure_busybox_image(service.images)
    try:
        yield service
    finally:
        await service.shutdown(purge=True)


@pytest.fixture
async def runtime(host_env: HostEnv) -> AsyncIterator[RuntimeService]:
    async with running_runtime(runtime_config(host_env)) as service:
        yield service
