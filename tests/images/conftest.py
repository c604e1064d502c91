"""An image store on the test's own state root."""
from __future__ import annotations

import pytest

from podbay.runtime.images import ImageStore
from tests.conftest import HostEnv, require_root


@pytest.fixture
def store(host_env: HostEnv) -> ImageStore:
    require_root()  # layers keep their owners, devices and xattrs
    return ImageStore(host_env.state_root / "images")
