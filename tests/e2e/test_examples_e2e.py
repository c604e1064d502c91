"""Every example in examples/ applied to one server at once, each pod reaching the state its
`# Expect:` line promises, then deleted."""
from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path

import pytest

from podbay.api import Pod
from podbay.api.apps import Deployment
from podbay.api.formats import load_objects, load_pods
from podbay.api.printing import pod_row
from podbay.cli.kubectl import apply
from tests.api.example_files import Expectation, example_files, expectation
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e


def _uses_host_ports(path: Path) -> bool:
    return any(p.host_port for pod in load_pods(path) for c in pod.spec.containers for p in c.ports)


def _needs_missing_handler(path: Path) -> bool:
    """A gvisor example where runsc is not installed: its class does not exist there."""
    return shutil.which("runsc") is None and any(pod.spec.runtime_class_name == "gvisor" for pod in load_pods(path))


def _has_workloads(path: Path) -> bool:
    """Workloads (web-deployment) run in their own tests: their controllers would remake the pods
    this one deletes."""
    return any(isinstance(o, Deployment) for o in load_objects(path.read_text(), str(path)))


# Host ports are the machine's: those examples run in their own tests, never beside others' tests.
RUNNABLE = [p for p in example_files()
            if expectation(p) is not None and not _uses_host_ports(p) and not _needs_missing_handler(p)
            and not _has_workloads(p)]


def _settled(expected: Expectation):
    return lambda pod: pod.status.phase == expected.phase and pod_row(pod).ready == expected.ready_column


async def test_all_examples_reach_their_expected_state(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(RUNNABLE) >= 15
    args = argparse.Namespace(filename=[str(p) for p in RUNNABLE], validate="strict", namespace=None)
    assert await apply(cluster.client, args, update=True) == 0
    applied = capsys.readouterr().out.splitlines()
    assert "configmap/game-demo created" in applied and "secret/demo-credentials created" in applied

    expected = {pod.metadata.name: expectation(path) for path in RUNNABLE for pod in load_pods(path)}
    assert sorted(f"pod/{name} created" for name in expected) == sorted(l for l in applied if l.startswith("pod/"))
    results = await asyncio.gather(*(cluster.wait_for(name, _settled(e), timeout=120) for name, e in expected.items()),
                                   return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    if "gvisor-pod" in expected:  # it says so only when it ran in gVisor's kernel
        assert b"".join([c async for c in cluster.client.logs("gvisor-pod", "default")]) == b"4.4.0\n"

    for name in expected:
        await cluster.client.delete(Pod, name, "default", grace_period_seconds=1)
    await asyncio.gather(*(cluster.wait_for_deleted(name, timeout=60) for name in expected))
