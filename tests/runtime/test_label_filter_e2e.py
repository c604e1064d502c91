"""CRI's label filter on real sandboxes and containers: what ListPodSandboxes and ListContainers
return for a selector follows creates, a sandbox handed to another owner, removals, and a
fresh runtime reading the records back."""
from __future__ import annotations

import dataclasses

import pytest

from podbay.runtime.service import RuntimeService
from tests.conftest import HostEnv
from tests.runtime.conftest import running_runtime, runtime_config
from tests.runtime.test_runtime_e2e import container, run, sandbox

pytestmark = pytest.mark.e2e
UID = "io.kubernetes.pod.uid"


async def names(runtime: RuntimeService, selector: dict[str, str]) -> tuple[set[str], set[str]]:
    """(sandbox names, container names) the runtime lists for `selector`."""
    sandboxes = {s.metadata.name for s in await runtime.list_pod_sandboxes(label_selector=selector)}
    containers = {c.metadata.name for c in await runtime.list_containers(label_selector=selector)}
    return sandboxes, containers


async def test_the_label_filter_follows_creates_hand_overs_removals_and_a_restart(host_env: HostEnv) -> None:
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as runtime:
        a = await runtime.run_pod_sandbox(sandbox("a", labels={UID: "uid-a", "tier": "web"}))
        b = await runtime.run_pod_sandbox(sandbox("b", labels={UID: "uid-b", "tier": "web"}))
        a1 = await run(runtime, a, container("a1", "sleep 600", labels={UID: "uid-a", "kind": "main"}))
        await run(runtime, a, container("a2", "sleep 600", labels={UID: "uid-a", "kind": "init"}))
        await run(runtime, b, container("b1", "sleep 600", labels={UID: "uid-b", "kind": "main"}))

        assert await names(runtime, {UID: "uid-a"}) == ({"a"}, {"a1", "a2"})
        assert await names(runtime, {UID: "uid-a", "kind": "main"}) == (set(), {"a1"})
        assert await names(runtime, {"tier": "web"}) == ({"a", "b"}, set())
        assert await names(runtime, {UID: "uid-c"}) == (set(), set())
        assert len(await runtime.list_containers()) == 3

        # HyperContainer's replace: the sandbox's labels name its new owner, the old one has none.
        await runtime.update_pod_sandbox(b, {UID: "uid-c"}, {})
        assert await names(runtime, {UID: "uid-b"}) == (set(), {"b1"})
        assert await names(runtime, {UID: "uid-c"}) == ({"b"}, set())
        assert await names(runtime, {"tier": "web"}) == ({"a"}, set())

        await runtime.stop_container(a1, 0)
        await runtime.remove_container(a1)
        assert await names(runtime, {UID: "uid-a"}) == ({"a"}, {"a2"})

        await runtime.shutdown()  # stops watching; the containers keep running
        fresh = RuntimeService(config, runtime.images)
        await fresh.start()
        try:
            assert await names(fresh, {UID: "uid-a"}) == ({"a"}, {"a2"})
            assert await names(fresh, {UID: "uid-c"}) == ({"b"}, set())
            await fresh.remove_pod_sandbox(a)
            assert await names(fresh, {UID: "uid-a"}) == (set(), set())
            assert await names(fresh, {UID: "uid-b"}) == (set(), {"b1"})
            await fresh.remove_pod_sandbox(b)
            assert await fresh.list_pod_sandboxes() == [] and await fresh.list_containers() == []
        finally:
            await fresh.shutdown()
