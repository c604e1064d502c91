"""The all-in-one server with a TCP API (for the official client and kubectl) and one
running busybox pod to exec into."""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import pytest

from podbay.api.formats import load_pods
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, free_port, running_cluster, settings_for

POD = "shell"


@dataclass
class ExecTarget:
    cluster: Cluster
    pod: str

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.cluster.settings.api_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig the server wrote: what `podbay kubeconfig` prints."""
        return self.cluster.settings.kubeconfig


@contextlib.asynccontextmanager
async def exec_target(host_env: HostEnv, manifest: str, name: str) -> AsyncIterator[ExecTarget]:
    """A server of the test's own with the pod of `manifest` (named `name`) running."""
    require_root()
    settings = dataclasses.replace(settings_for(host_env), api_port=free_port())
    async with running_cluster(settings) as cluster:
        await cluster.client.create(load_pods(manifest)[0])
        await cluster.wait_for(name, lambda p: p.status.phase == "Running")
        yield ExecTarget(cluster, name)


@pytest.fixture
async def target(host_env: HostEnv) -> AsyncIterator[ExecTarget]:
    async with exec_target(host_env, f"""
apiVersion: v1
kind: Pod
metadata: {{name: {POD}}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{{name: main, image: "busybox:1.35", command: [sleep, "3600"]}}]
""", POD) as t:
        yield t
