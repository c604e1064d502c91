"""HyperContainer's verbs on the node: the Created state (images pulled and volumes allocated,
nothing running) and replace, which hands a running pod's sandbox (namespaces, IP, for gVisor
its kernel) to another pod.
"""
from __future__ import annotations

import asyncio
import contextlib

from podbay.agent import translate
from podbay.agent.config import AgentConfig
from podbay.agent.containers import ContainerManager, ContainerOutcome, runtime_status
from podbay.agent.cri import ContainerRuntime
from podbay.agent.envvars import PodFacts
from podbay.agent.events import PodEvents
from podbay.agent.podstate import PodRuntimeStatus
from podbay.agent.podworkers import PodWorkers
from podbay.agent.runtimeclass import runtime_handler
from podbay.agent.volumesources import volume_sources
from podbay.api import Pod
from podbay.api.errors import Conflict, NotFound
from podbay.api.stored import name_of, uid_of
from podbay.api.wellknown import RUN_STATE_ANNOTATION
from podbay.client.client import Client
from podbay.runtime.types import PodSandboxConfig


class HyperLifecycle:
    def __init__(self, client: Client, runtime: ContainerRuntime, config: AgentConfig, events: PodEvents,
                 containers: ContainerManager, workers: PodWorkers) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.events = events
        self.containers = containers
        self.workers = workers
        # Pods whose sandbox was handed to another pod and that must stay down until their
        # object says Created.
        self.handed_over: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def prepare_created(self, pod: Pod) -> dict[str, ContainerOutcome]:
        """Pulls the images and sets the volumes up; returns each container held back and why."""
        held: dict[str, ContainerOutcome] = {}
        for c in [*pod.spec.init_containers, *pod.spec.containers]:
            pulled = await self.containers.ensure_image(pod, c, c in pod.spec.init_containers, quiet=True)
            if isinstance(pulled, ContainerOutcome):
                held[c.name] = pulled
        try:
            sources = await volume_sources(self.client, pod, PodFacts(host_ip=self.config.node_address))
            await self.runtime.setup_pod_volumes(uid_of(pod), sources)
        except Exception as exc:
            await self.events.record(pod, "FailedMount", f"MountVolume.SetUp failed: {exc}", warning=True)
        return held

    async def take_sandbox(self, pod: Pod, old_name: str, attempt: int) -> tuple[str, asyncio.Event] | None:
        """The running pod `old_name` hands its sandbox to `pod` and returns to Created. Its
        containers stop in the background while `pod`'s are created; the event is set once they
        have stopped and the sandbox has `pod`'s hostname, which `pod`'s starts wait for (the two
        share one port space, and OLD's containers keep their hostname to the end). None when it
        has no sandbox."""
        try:
            old = await self.client.get(Pod, old_name, pod.metadata.namespace)
        except NotFound:
            return None
        old_uid = uid_of(old)
        if (old.spec.runtime_class_name or "") != (pod.spec.runtime_class_name or ""):
            # A sandbox is its handler's (a gVisor kernel, or host namespaces): it cannot change hands.
            await self.events.record(pod, "SandboxNotHandedOver", f"Pod {old_name} runs RuntimeClass "
                                     f"{old.spec.runtime_class_name or '(default)'}, this pod asks for "
                                     f"{pod.spec.runtime_class_name or '(default)'}: a new sandbox is made",
                                     warning=True)
            return None
        async with self.workers.lock(old_uid):
            rt_old = await runtime_status(self.runtime, old_uid)
            sandbox = next((s for s in rt_old.sandboxes if s.ready), None)
            if sandbox is None:
                return None
            self.handed_over.add(old_uid)
            config = translate.sandbox_config(pod, attempt, self.config, await runtime_handler(self.client, pod))
            await self.runtime.update_pod_sandbox(sandbox.id, config.labels, config.annotations)
        await self.events.record(pod, "SandboxHandedOver", f"Took over the sandbox of pod {old_name}")
        ready = asyncio.Event()
        task = asyncio.create_task(self._hand_over(old, rt_old, pod, sandbox.id, config, ready))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return sandbox.id, ready

    async def _hand_over(self, old: Pod, rt_old: PodRuntimeStatus, new: Pod, sandbox_id: str,
                         config: PodSandboxConfig, ready: asyncio.Event) -> None:
        old_uid = uid_of(old)
        async with self.workers.lock(old_uid):
            try:
                await self.containers.kill_pod(old, rt_old, grace_override=None)
                # The old pod's limit goes with its containers: the sandbox is the new pod's now.
                await self.runtime.update_pod_sandbox_resources(sandbox_id, config.memory_limit)
                await self.runtime.update_pod_sandbox(sandbox_id, config.labels, config.annotations,
                                                      hostname=config.hostname)
            except Exception as exc:
                # The new pod's containers must not start under the old pod's hostname: the
                # sandbox stops, so they fail to start and the pod gets a sandbox of its own.
                await self.events.record(new, "FailedCreatePodSandBox", f"Failed to take over the sandbox of "
                                         f"pod {name_of(old)}: {exc}", warning=True)
                with contextlib.suppress(NotFound):
                    await self.runtime.stop_pod_sandbox(sandbox_id)
            finally:
                ready.set()
            # The old pod's containers go once the new pod's have started (the new pod's sync
            # holds its lock until then; the old pod's lock, held on, keeps the old pod's own sync
            # from removing them sooner): runsc's delete holds the old container's lock until the
            # container's gofer has been reaped (up to a second), and every `runsc start` in the
            # sandbox waits for the locks of all its containers.
            async with self.workers.lock(uid_of(new)):
                pass
            # Its containers only: the sandbox is the new pod's.
            await self.containers.remove_pod(PodRuntimeStatus(rt_old.uid, containers=rt_old.containers),
                                             keep_volumes=True)
            # Under the old pod's lock: its own sync (a deletion's clean-up too) comes after this.
            await self._mark_created(old)
        self.workers.wake(old_uid)

    async def _mark_created(self, old: Pod) -> None:
        """OLD's object says Created, as HyperContainer's replace leaves it."""
        for _ in range(5):
            try:
                fresh = await self.client.get(Pod, name_of(old), old.metadata.namespace)
                if uid_of(fresh) != uid_of(old):
                    # OLD was deleted meanwhile and its name taken by another pod, which this hand-over
                    # must not stop (the update's precondition is the version checked here).
                    return
                fresh.metadata.annotations[RUN_STATE_ANNOTATION] = "Created"
                await self.client.update(fresh)
                return
            except Conflict:
                continue
            except NotFound:
                return
