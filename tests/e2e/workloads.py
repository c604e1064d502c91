"""Helpers of the workload e2e tests: manifests and waits on what a user sees (pods, statuses)."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
from typing import Any, AsyncIterator, Callable, TypeVar

import pytest

from podbay.api import Pod
from podbay.api.apps import Deployment, ReplicaSet, ReplicationController
from podbay.api.batch import Job
from podbay.api.errors import NotFound
from podbay.api.serialize import from_dict
from podbay.client import Client
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, free_port, running_cluster, settings_for

T = TypeVar("T")

SLEEPER = {"name": "c", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent", "command": ["sleep", "600"]}


def template(labels: dict[str, str], container: dict[str, Any] = SLEEPER, restart: str = "Always",
             grace: int = 1) -> dict[str, Any]:
    return {"metadata": {"labels": labels},
            "spec": {"containers": [container], "restartPolicy": restart, "terminationGracePeriodSeconds": grace}}


def manifest(kind: type[T], name: str, spec: dict[str, Any]) -> T:
    return from_dict(kind, {"metadata": {"name": name, "namespace": "default"}, "spec": spec})


async def wait_objects(client: Client, kind: type[T], check: Callable[[list[T]], bool], *,
                       label_selector: str | None = None, timeout: float = 90.0,
                       what: str = "objects") -> list[T]:
    """The objects of `kind` in default (matching the selector) as soon as `check` holds of them
    all, from a watch; fails at the deadline showing what there was."""
    seen: dict[str, T] = {}

    async def watch() -> list[T]:
        items, rv = await client.list(kind, "default", label_selector=label_selector)
        seen.update({i.metadata.uid: i for i in items})  # type: ignore[attr-defined]
        if check(list(seen.values())):
            return list(seen.values())
        async for type_, obj in client.watch(kind, "default", resource_version=rv, label_selector=label_selector):
            uid = obj.metadata.uid  # type: ignore[attr-defined]
            if type_ == "DELETED":
                seen.pop(uid, None)
            else:
                seen[uid] = obj
            if check(list(seen.values())):
                return list(seen.values())
        raise AssertionError("watch ended")
    try:
        return await asyncio.wait_for(watch(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what} never reached the state; last: {describe(list(seen.values()))}") from None


def describe(objs: list[Any]) -> list[str]:
    out = []
    for o in objs:
        if isinstance(o, Pod):
            out.append(f"{o.metadata.name} {o.status.phase} deleting={o.metadata.deletion_timestamp is not None} "
                       f"image={o.spec.containers[0].image if o.spec.containers else ''}")
        else:
            out.append(f"{o.metadata.name} status={o.status}")
    return out


def running(pods: list[Pod]) -> list[Pod]:
    return [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)]


def live(pods: list[Pod]) -> list[Pod]:
    return [p for p in pods if p.metadata.deletion_timestamp is None]


async def remove_workloads(cluster: Cluster) -> None:
    """The workloads go first (and their pods with them), so no controller makes a pod while
    the server shuts down."""
    client = cluster.client
    for kind in (Deployment, ReplicaSet, ReplicationController, Job):
        for obj in (await client.list(kind, "default"))[0]:
            with contextlib.suppress(NotFound):
                await client.delete(kind, obj.metadata.name, "default", propagation_policy="Background")
    # What remains is nobody's (orphans, released pods): no controller will make more.
    await wait_objects(client, Pod, lambda ps: not any(p.metadata.owner_references for p in ps),
                       what="the workloads' pods")


@pytest.fixture
async def workload_cluster(cluster: Cluster) -> AsyncIterator[Cluster]:
    yield cluster
    await remove_workloads(cluster)


@pytest.fixture
async def kube_cluster(host_env: HostEnv) -> AsyncIterator[Cluster]:
    """The all-in-one server with its HTTPS port and admin kubeconfig, for kubectl."""
    require_root()
    async with running_cluster(dataclasses.replace(settings_for(host_env), api_port=free_port())) as cluster:
        yield cluster
        await remove_workloads(cluster)


async def kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(cluster.settings.kubeconfig)}
    proc = await asyncio.to_thread(subprocess.run, ["kubectl", *args], capture_output=True, text=True, env=env,
                                   timeout=240, input=stdin)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout
