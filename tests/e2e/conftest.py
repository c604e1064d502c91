"""The all-in-one server (API, scheduler, pod GC, node agent) on the test's own roots."""
from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass
from typing import AsyncIterator

import pytest

from podbay.api import Event, Pod
from podbay.cli.allinone import serve
from podbay.cli.settings import Settings
from podbay.client import Client
from podbay.runtime.service import RuntimeService
from tests.conftest import HostEnv, require_root
from tests.ports import free_port, free_ports  # noqa: F401 - imported from here by the e2e tests


@dataclass
class Cluster:
    settings: Settings
    client: Client

    async def wait_for(self, name: str, check, timeout: float = 60.0, namespace: str = "default") -> Pod:
        """The pod as soon as `check(pod)` holds, from the watch; fails at the deadline."""
        async def watch() -> Pod:
            pod = await self.client.get(Pod, name, namespace)
            if check(pod):
                return pod
            async for _, pod in self.client.watch(Pod, namespace, field_selector=f"metadata.name={name}"):
                if check(pod):
                    return pod
            raise AssertionError("watch ended")
        try:
            return await asyncio.wait_for(watch(), timeout)
        except asyncio.TimeoutError:
            pod = await self.client.get(Pod, name, namespace)
            raise AssertionError(f"pod {name} never reached the state; last status: {pod.status}") from None


    async def wait_for_deleted(self, name: str, timeout: float = 60.0, namespace: str = "default") -> None:
        selector = f"metadata.name={name}"
        pods, rv = await self.client.list(Pod, namespace, field_selector=selector)
        if not pods:
            return

        async def watch() -> None:
            # From the list's resourceVersion: a deletion in between is still seen.
            async for kind, _ in self.client.watch(Pod, namespace, resource_version=rv, field_selector=selector):
                if kind == "DELETED":
                    return
        await asyncio.wait_for(watch(), timeout)


    async def wait_event(self, pod: str, reason: str, prefix: str = "", timeout: float = 30.0,
                         namespace: str = "default", count: int = 1) -> Event:
        """The event with `reason` (and a message starting with `prefix`) about `pod`, once it has
        happened `count` times (repeats raise an Event's count, as client-go records them);
        events are sent in the background, so they may trail the state they describe."""
        def match(e: Event) -> bool:
            return e.involved_object.name == pod and e.reason == reason and (e.message or "").startswith(prefix)

        seen: dict[str, Event] = {}

        def enough() -> Event | None:
            if sum(e.count or 1 for e in seen.values()) >= count:
                return max(seen.values(), key=lambda e: e.last_timestamp)
            return None

        events, rv = await self.client.list(Event, namespace)
        seen.update({e.metadata.name: e for e in events if match(e)})
        if (found := enough()) is not None:
            return found

        async def watch() -> Event:
            async for kind, e in self.client.watch(Event, namespace, resource_version=rv):
                if kind in ("ADDED", "MODIFIED") and match(e):
                    seen[e.metadata.name] = e
                    if (found := enough()) is not None:
                        return found
            raise AssertionError("watch ended")
        return await asyncio.wait_for(watch(), timeout)


def settings_for(env: HostEnv) -> Settings:
    return Settings(state_root=env.state_root, run_root=env.run_root, cgroup_parent=env.cgroup_parent,
                    network_name=env.network_name, bridge=env.bridge, subnet=env.subnet,
                    node_name=f"node-{env.prefix}", api_port=0, server=None, backoff_base=0.5, backoff_cap=2.0,
                    node_grace=2.0, pod_eviction_timeout=1.0, node_monitor_period=0.5,
                    # The service proxy's chains are named for the test, so side-by-side tests keep apart.
                    proxy_chain_prefix=env.network_name,
                    # Cluster DNS forwards nothing off the machine (non-cluster names: SERVFAIL).
                    cluster_dns_upstreams=())


async def start_server(settings: Settings) -> tuple[asyncio.Task[None], asyncio.Event, Client]:
    """The all-in-one server as a task, once it serves: (task, its stop event, a client)."""
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, ready=ready, stop=stop))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    return task, stop, Client.connect(settings.server_url)


async def purge(settings: Settings) -> None:
    """Whatever the server's runtime still holds goes (the bridge too)."""
    runtime = RuntimeService(settings.runtime_config())
    await runtime.start()
    await runtime.shutdown(purge=True)


@pytest.fixture(params=[None, "gvisor"], ids=["crun", "gvisor"])
def runtime_class(request: pytest.FixtureRequest) -> str | None:
    """The RuntimeClass a lifecycle test runs its pods in: none (crun, the default handler) or
    gvisor (runsc), so one test checks that both handlers behave as Kubernetes says."""
    if request.param == "gvisor" and shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/setup.sh)")
    return request.param


def in_class(pods: list[Pod], runtime_class: str | None) -> list[Pod]:
    for pod in pods:
        pod.spec.runtime_class_name = runtime_class
    return pods


@pytest.fixture
async def cluster(host_env: HostEnv) -> AsyncIterator[Cluster]:
    require_root()
    async with running_cluster(settings_for(host_env)) as running:
        yield running


@contextlib.asynccontextmanager
async def running_cluster(settings: Settings) -> AsyncIterator[Cluster]:
    """The all-in-one server on `settings` while the block runs; then its pods, and
    whatever its runtime held, are gone."""
    task, stop, client = await start_server(settings)
    try:
        yield Cluster(settings, client)
    finally:
        with contextlib.suppress(Exception):
            pods, _ = await client.list(Pod)
            for p in pods:
                await client.delete(Pod, p.metadata.name, p.metadata.namespace, grace_period_seconds=0)
        await client.close()
        stop.set()
        await task
        await purge(settings)
