"""Starting and killing a pod's containers (the kubelet's kuberuntime_container.go): image
pull with its back-off, volumes, the container's config, create, start, postStart; preStop,
the stop signal and the grace period. Each start returns its outcome (started, or the
Waiting reason and when to try again) for the pod sync to record.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from podbay.agent import translate
from podbay.agent.backoff import Backoff, backoff_key
from podbay.agent.config import AgentConfig
from podbay.agent.cri import ContainerRuntime
from podbay.agent.envvars import EnvError, PodFacts
from podbay.agent.events import PodEvents
from podbay.agent.hooks import run_handler
from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState
from podbay.agent.runtimeview import runtime_pods
from podbay.agent.serviceenv import MASTER_NAMESPACE, service_env
from podbay.agent.volumesources import volume_sources
from podbay.api import Pod
from podbay.api.defaults import DEFAULT_GRACE_SECONDS
from podbay.api.errors import NotFound
from podbay.api.models import Container, EphemeralContainer, is_restartable_init
from podbay.api.services import Service
from podbay.api.stored import uid_of
from podbay.client.client import Client
from podbay.client.informer import NAMESPACE_INDEX, SharedInformer
from podbay.runtime.images import Image

MINIMUM_GRACE_SECONDS = 2  # the kubelet's minimumGracePeriodInSeconds after a preStop hook


@dataclass(frozen=True)
class ContainerOutcome:
    started: bool
    waiting: tuple[str, str] | None = None  # the Waiting (reason, message) the status shows meanwhile
    retry_at: float | None = None  # monotonic time worth another try (a back-off's end)


STARTED = ContainerOutcome(True)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def pod_name(pod: Pod) -> str:
    return f"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})"


def duration(seconds: float) -> str:
    """Go's time.Duration text for whole seconds: 10s, 1m20s, 5m0s."""
    s = int(seconds)
    if seconds != s:
        return f"{seconds:g}s"
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


def spec_of(pod: Pod, name: str) -> Container | None:
    for c in [*pod.spec.init_containers, *pod.spec.containers, *pod.spec.ephemeral_containers]:
        if c.name == name:
            return c
    return None


def grace_seconds(pod: Pod) -> int:
    if pod.metadata.deletion_grace_period_seconds is not None and pod.metadata.deletion_timestamp is not None:
        return pod.metadata.deletion_grace_period_seconds
    g = pod.spec.termination_grace_period_seconds
    return DEFAULT_GRACE_SECONDS if g is None else g


async def runtime_status(runtime: ContainerRuntime, uid: str) -> PodRuntimeStatus:
    return (await runtime_pods(runtime, uid)).get(uid) or PodRuntimeStatus(uid=uid)


class ContainerManager:
    def __init__(self, client: Client, runtime: ContainerRuntime, config: AgentConfig, events: PodEvents) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.events = events
        self.backoff = Backoff(config.backoff_base, config.backoff_cap, config.backoff_reset)
        self.pull_backoff = Backoff(config.backoff_base, config.backoff_cap, config.backoff_reset)
        self._service_lists: dict[str, asyncio.Future[tuple[list[Service], str]]] = {}
        # The agent's informer of Services (the kubelet's service lister), once it has one.
        self.services: SharedInformer[Service] | None = None
        # pod uid -> container name -> its rootfs being made while the pod's sandbox is
        self._ahead: dict[str, dict[str, asyncio.Task[str]]] = {}

    def make_rootfs_ahead(self, pod: Pod, containers: list[Container]) -> None:
        """Has the runtime make the containers' rootfs (directories, overlay mount) now, while
        the pod's sandbox is made: a rootfs does not depend on the sandbox, and made after it
        they were several ms of the way from a bound pod to its Running status. Nothing a user
        sees changes: the sandbox is still made first, and each container is created, with its
        Events, after it. `_create` takes them; `release_ahead` drops those no create took."""
        ahead = self._ahead.setdefault(uid_of(pod), {})
        for c in containers:
            if c.image and c.name not in ahead:
                ahead[c.name] = asyncio.ensure_future(self.runtime.make_rootfs_ahead(c.image))

    async def _take_ahead(self, pod: Pod, name: str) -> str | None:
        ahead = self._ahead.get(uid_of(pod), {})
        task = ahead.get(name)
        if task is None:
            return None
        try:
            # Left in the table until made: a cancel meanwhile leaves it to release_ahead.
            rootfs = await asyncio.shield(task)
        except Exception:
            rootfs = None  # made by the create as without it (an image not present yet, a full disk...)
        ahead.pop(name, None)
        return rootfs

    async def release_ahead(self, uid: str) -> None:
        """The rootfs made ahead for the pod that no create took (the sandbox failed, a crash
        back-off, an environment error...)."""
        for task in self._ahead.pop(uid, {}).values():
            try:
                rootfs = await asyncio.shield(task)
            except Exception:
                continue
            await self.runtime.release_rootfs(rootfs)

    async def _failed(self, pod: Pod, name: str, init: bool, reason: str, message: str) -> ContainerOutcome:
        await self.events.record(pod, "Failed", f"Error: {message}", warning=True, container=name, init=init)
        return ContainerOutcome(False, (reason, message))

    async def _service_env(self, pod: Pod) -> dict[str, str]:
        """The Services' variables for `pod`'s containers; without them the container is not made,
        as the kubelet's CreateContainerConfigError when it cannot list Services."""
        namespace = pod.metadata.namespace or "default"
        try:
            services = [s for ns in dict.fromkeys((namespace, MASTER_NAMESPACE))
                        for s in await self._services(ns)]
        except Exception as exc:
            raise EnvError(f"failed to list services when setting up env vars: {exc}") from None
        links = pod.spec.enable_service_links is not False
        return service_env(services, namespace, links)

    async def _services(self, namespace: str) -> list[Service]:
        """The namespace's Services: from the informer once it has listed them, as the kubelet
        reads its service lister, for a list is a round trip through the API server on the way
        of the pod's start. Before that, asks made meanwhile share the one list in flight: a
        pod's containers are created together."""
        if self.services is not None and self.services.has_synced():
            return self.services.by_index(NAMESPACE_INDEX, namespace)
        pending = self._service_lists.get(namespace)
        if pending is None:
            pending = asyncio.ensure_future(self.client.list(Service, namespace))
            self._service_lists[namespace] = pending
            pending.add_done_callback(lambda _: self._service_lists.pop(namespace, None))
        return (await asyncio.shield(pending))[0]

    async def start(self, pod: Pod, rt: PodRuntimeStatus, sandbox_id: str, pod_ip: str | None,
                    container: Container, init: bool, after: asyncio.Event | None = None) -> ContainerOutcome:
        """startContainer's steps: the crash back-off, the image, create, start, postStart; with
        `after`, the start waits for that event."""
        name = container.name
        held = await self._crash_back_off(pod, rt.find(name), name, init)
        if held is not None:
            return held
        image_info = await self.ensure_image(pod, container, init)
        if isinstance(image_info, ContainerOutcome):
            return image_info
        created = await self._create(pod, rt, sandbox_id, pod_ip, container, init, image_info)
        if isinstance(created, ContainerOutcome):
            return created
        await self.events.record(pod, "Created", f"Created container {name}", container=name, init=init)
        if after is not None and not after.is_set():
            self.events.release(uid_of(pod))
            await after.wait()
        try:
            await self.runtime.start_container(created)
        except Exception as exc:
            return await self._failed(pod, name, init, "RunContainerError", str(exc))
        await self.events.record(pod, "Started", f"Started container {name}", container=name, init=init)
        return await self._post_start(pod, container, created, pod_ip, init)

    async def _crash_back_off(self, pod: Pod, latest: ContainerRecord | None, name: str,
                              init: bool) -> ContainerOutcome | None:
        """CrashLoopBackOff while the back-off of an exited container runs; None: start it."""
        if latest is None or latest.state is not RunState.EXITED:
            return None
        key = backoff_key(uid_of(pod), name)
        finished = (latest.finished_at or _now()).timestamp()
        left = self.backoff.remaining(key, finished, time.time())
        if left <= 0:
            self.backoff.next(key, finished, time.time())
            return None
        await self.events.record(pod, "BackOff", f"Back-off restarting failed container {name} in pod "
                                 f"{pod_name(pod)}", warning=True, container=name, init=init)
        return ContainerOutcome(False, ("CrashLoopBackOff",
                                        f"back-off {duration(self.backoff.get(key))} restarting failed "
                                        f"container={name} pod={pod_name(pod)}"),
                                time.monotonic() + left)

    async def _create(self, pod: Pod, rt: PodRuntimeStatus, sandbox_id: str, pod_ip: str | None,
                      container: Container, init: bool, image_info: Image) -> str | ContainerOutcome:
        """The volumes, the container's config and CreateContainer: the new container's id, or
        the outcome that holds it back."""
        name = container.name
        latest = rt.find(name)
        attempt = latest.attempt + 1 if latest is not None else 0
        if latest is not None and latest.state is RunState.CREATED:
            # Made but never started (an agent killed between its create and start, or a start
            # cut short): nothing will start it, yet crun's init waits in it under its conmon,
            # so it goes before its successor is made, which takes its attempt as it never ran.
            with contextlib.suppress(NotFound):
                await self.runtime.remove_container(latest.id)
            attempt = latest.attempt
        try:
            sources = await volume_sources(self.client, pod, PodFacts(pod_ip=pod_ip or "",
                                                                      host_ip=self.config.node_address))
            volume_paths = await self.runtime.setup_pod_volumes(uid_of(pod), sources)
        except Exception as exc:
            await self.events.record(pod, "FailedMount", f"MountVolume.SetUp failed: {exc}", warning=True)
            return ContainerOutcome(False, ("ContainerCreating", ""), time.monotonic() + self.config.backoff_base)
        target_name = container.target_container_name if isinstance(container, EphemeralContainer) else None
        target = rt.find(target_name) if target_name else None
        if target_name and (target is None or target.state is not RunState.RUNNING):
            # The kubelet's runtime cannot join a PID namespace no process holds.
            return await self._failed(pod, name, init, "CreateContainerError",
                                      f'target container "{target_name}" is not running')
        try:
            cfg = translate.container_config(pod, container, attempt=attempt, init=init, pod_ip=pod_ip or "",
                                             host_ip=self.config.node_address, image_info=image_info,
                                             volume_paths=volume_paths, seccomp_root=self.config.seccomp_root,
                                             pid_target_id=target.id if target is not None else "",
                                             service_env=await self._service_env(pod))
        except EnvError as exc:
            return await self._failed(pod, name, init, "CreateContainerConfigError", str(exc))
        try:
            return await self.runtime.create_container(sandbox_id, cfg, await self._take_ahead(pod, name))
        except Exception as exc:
            return await self._failed(pod, name, init, "CreateContainerError", str(exc))

    async def _post_start(self, pod: Pod, container: Container, cid: str, pod_ip: str | None,
                          init: bool) -> ContainerOutcome:
        """The postStart hook; a failed one kills the container (PostStartHookError)."""
        post_start = container.lifecycle.post_start if container.lifecycle is not None else None
        if post_start is None:
            return STARTED
        self.events.release(uid_of(pod))
        ok, message = await run_handler(self.runtime, post_start, container, cid, pod_ip, float(grace_seconds(pod)))
        if ok:
            return STARTED
        await self.events.record(pod, "FailedPostStartHook", message, warning=True, container=container.name,
                                 init=init)
        record = ContainerRecord(id=cid, name=container.name, state=RunState.RUNNING)
        await self.kill(pod, container, record, None, "FailedPostStartHook", probe="", run_pre_stop=False)
        return ContainerOutcome(False, ("PostStartHookError", message))

    async def ensure_image(self, pod: Pod, container: Container, init: bool,
                           quiet: bool = False) -> Image | ContainerOutcome:
        """The container's image, pulled by its pull policy; or the outcome that holds it back."""
        name, image = container.name, container.image or ""
        key = f"{pod.metadata.uid}/{name}/pull"
        policy = container.image_pull_policy or ("Always" if image.endswith(":latest") or ":" not in
                                                 image.rsplit("/", 1)[-1] else "IfNotPresent")
        present = await self.runtime.image_status(image)
        if present is not None and (policy != "Always" or quiet):
            if not quiet:
                await self.events.record(pod, "Pulled", f'Container image "{image}" already present on machine',
                                         container=name, init=init)
            return present
        if policy == "Never":
            return await self._failed(pod, name, init, "ErrImageNeverPull",
                                      f'Container image "{image}" is not present with pull policy of Never')
        now = time.time()
        left = self.pull_backoff.remaining(key, now, now)
        if left > 0:
            await self.events.record(pod, "BackOff", f'Back-off pulling image "{image}"', container=name,
                                     init=init)
            return ContainerOutcome(False, ("ImagePullBackOff", f'Back-off pulling image "{image}"'),
                                    time.monotonic() + left)
        self.events.release(uid_of(pod))
        await self.events.record(pod, "Pulling", f'Pulling image "{image}"', container=name, init=init)
        t0 = time.monotonic()
        try:
            info = await self.runtime.pull_image(image)
        except Exception as exc:
            self.pull_backoff.next(key, now, now)
            await self.events.record(pod, "Failed", f'Failed to pull image "{image}": {exc}', warning=True,
                                     container=name, init=init)
            return ContainerOutcome(False, ("ErrImagePull", str(exc)), time.monotonic() + self.pull_backoff.get(key))
        took = time.monotonic() - t0
        await self.events.record(pod, "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s',
                                 container=name, init=init)
        return info

    async def kill(self, pod: Pod, spec: Container | None, record: ContainerRecord, grace_override: int | None,
                   message: str, probe: str = "", run_pre_stop: bool = True) -> None:
        """preStop, then the stop signal, then SIGKILL when the grace period ends (killContainer)."""
        grace = float(grace_seconds(pod))
        if probe in ("LivenessProbe", "StartupProbe") and spec is not None:
            p = spec.liveness_probe if probe == "LivenessProbe" else spec.startup_probe
            if p is not None and p.termination_grace_period_seconds is not None:
                grace = float(p.termination_grace_period_seconds)
        name = record.name
        init = spec is not None and spec in pod.spec.init_containers
        await self.events.record(pod, "Killing", message, container=name, init=init)
        pre_stop = spec.lifecycle.pre_stop if spec is not None and spec.lifecycle is not None else None
        if run_pre_stop and spec is not None and pre_stop is not None and grace > 0 \
                and record.state is RunState.RUNNING:
            t0 = time.monotonic()
            pod_ip = None
            rt = await runtime_status(self.runtime, uid_of(pod))
            if rt.sandboxes:
                pod_ip = rt.sandboxes[0].ip
            try:
                ok, hook_msg = await asyncio.wait_for(
                    run_handler(self.runtime, pre_stop, spec, record.id, pod_ip, grace), grace)
            except asyncio.TimeoutError:
                ok, hook_msg = True, ""  # overran the grace period: the stop goes on
            if not ok:
                await self.events.record(pod, "FailedPreStopHook", hook_msg, warning=True, container=name,
                                         init=init)
            grace -= time.monotonic() - t0
            if grace < MINIMUM_GRACE_SECONDS:
                grace = MINIMUM_GRACE_SECONDS
        if grace_override is not None:
            grace = float(grace_override)
        with contextlib.suppress(NotFound):
            await self.runtime.stop_container(record.id, max(0.0, grace))

    async def kill_pod(self, pod: Pod, rt: PodRuntimeStatus, grace_override: int | None) -> None:
        """Main containers (and a running regular init container) together, then sidecars in
        reverse order, as the kubelet stops a pod."""
        running = {c.name: c for c in rt.containers if c.state is RunState.RUNNING}
        sidecars = [c for c in pod.spec.init_containers if is_restartable_init(c)]
        others = [c for c in [*pod.spec.init_containers, *pod.spec.containers] if c not in sidecars]
        await asyncio.gather(*(
            self.kill(pod, c, running[c.name], grace_override, f"Stopping container {c.name}")
            for c in others if c.name in running))
        for c in reversed(sidecars):
            if c.name in running:
                await self.kill(pod, c, running[c.name], grace_override, f"Stopping container {c.name}")
        known = {c.name for c in [*pod.spec.init_containers, *pod.spec.containers]}
        for name, record in running.items():
            if name not in known:
                await self.runtime.stop_container(record.id, 0)

    async def kill_all(self, rt: PodRuntimeStatus) -> None:
        """A pod whose object is unknown: its running containers stop at once."""
        for c in rt.running():
            with contextlib.suppress(NotFound):
                await self.runtime.stop_container(c.id, 1)

    async def remove_pod(self, rt: PodRuntimeStatus, keep_volumes: bool = False) -> None:
        async def remove(container_id: str) -> None:
            with contextlib.suppress(NotFound):
                await self.runtime.remove_container(container_id)

        # Together: each removal waits on its own `crun delete`.
        await asyncio.gather(*(remove(c.id) for c in rt.containers))
        for sb in rt.sandboxes:
            with contextlib.suppress(NotFound):
                await self.runtime.stop_pod_sandbox(sb.id)
            with contextlib.suppress(NotFound):
                await self.runtime.remove_pod_sandbox(sb.id)
        if not keep_volumes:
            await self.runtime.remove_pod_volumes(rt.uid)
