"""An image store on the test's own state root, and real registries on 127.0.0.1."""
from __future__ import annotations

import socket
import subprocess
import time
from typing import Iterator

import pytest
from images_registry import Registry, RegistryFactory, free_port

from podbay.runtime.images import ImageStore
from tests.conftest import HostEnv, require_root


@pytest.fixture
def store(host_env: HostEnv) -> ImageStore:
    require_root()  # layers keep their owners, devices and xattrs
    return ImageStore(host_env.state_root / "images")


@pytest.fixture
def start_registry(host_env: HostEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    """Starts registries (`auth_yaml` adds an `auth:` section); each is killed by PID at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(auth_yaml: str = "") -> Registry:
        root = tmp_path_factory.mktemp("registry")
        port = free_port()
        config = root / "config.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                          f"storage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                          f"http:\n  addr: 127.0.0.1:{port}\n{auth_yaml}")
        proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not start: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
        return Registry(f"127.0.0.1:{port}", root / "data")

    try:
        yield start
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
