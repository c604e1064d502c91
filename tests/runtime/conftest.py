"""A real runtime service on the test's own roots, network and cgroup parent."""
from __future__ import annotations

from typing import AsyncIterator

import pytest

from podbay.runtime.config import RuntimeConfig
from podbay.runtime.images import ensure_busybox_image
from podbay.runtime.service import RuntimeService
from tests.conftest import HostEnv, require_root


def runtime_config(env: HostEnv) -> RuntimeConfig:
    return RuntimeConfig(state_root=env.state_root, run_root=env.run_root, cgroup_parent=env.cgroup_parent,
                         network_name=env.network_name, bridge=env.bridge, subnet=env.subnet)


@pytest.fixture
async def runtime(host_env: HostEnv) -> AsyncIterator[RuntimeService]:
    require_root()
    service = RuntimeService(runtime_config(host_env))
    await service.start()
    ensure_busybox_image(service.images)
    try:
        yield service
    finally:
        await service.shutdown(purge=True)
