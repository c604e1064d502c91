"""The node agent (the kubelet's role): registers the Node, heartbeats, watches the
pods bound to it and runs one worker per pod that drives the runtime.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from podbay.agent import translate
from podbay.agent.actions import compute_pod_actions
from podbay.agent.backoff import Backoff, backoff_key
from podbay.agent.config import AgentConfig
from podbay.agent.envvars import EnvError, PodFacts
from podbay.agent.eviction import (
    CONDITION_WORDS, EVICTED_REASON, PodUsage, StorageUsage, admission_rejection, node_pressure_victim, observe,
    PressureHistory, parse_thresholds, pressure_conditions, storage_violation, thresholds_met,
)
from podbay.agent.events import container_path
from podbay.agent.hooks import run_handler
from podbay.agent.imagegc import ImageGC
from podbay.agent.node import node_images, node_object, node_runtime_handlers, ready_condition
from podbay.agent.podstate import ContainerRecord, PodRuntimeStatus, RunState
from podbay.agent.prober import ProbeManager, ProbeTarget
from podbay.agent.resourcemetrics import ResourceMetrics
from podbay.agent.proxy import ServiceProxy
from podbay.agent.routes import HostRoutes
from podbay.agent.runtimeview import runtime_pods
from podbay.agent.serviceenv import MASTER_NAMESPACE, service_env
from podbay.agent.status import StatusInputs, pod_status
from podbay.agent.volumesources import volume_sources
from podbay.api.wellknown import RUN_STATE_ANNOTATION, SANDBOX_FROM_ANNOTATION
from podbay.api import Node, Pod, RuntimeClass
from podbay.api.defaults import DEFAULT_GRACE_SECONDS
from podbay.api.errors import Conflict, NotFound
from podbay.api.models import is_restartable_init
from podbay.api.serialize import from_dict, to_dict
from podbay.api.services import Service
from podbay.api.stored import uid_of
from podbay.api.support import unsupported_fields
from podbay.client.record import EventRecorder
from podbay.runtime.diskusage import disk_usage

log = logging.getLogger(__name__)

MINIMUM_GRACE_SECONDS = 2  # the kubelet's minimumGracePeriodInSeconds after a preStop hook
# How long an evicted pod's containers get to stop (the kubelet's immediateEvictionGracePeriodSeconds).
IMMEDIATE_EVICTION_GRACE_SECONDS = 1


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _pod_name(pod: Any) -> str:
    return f"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})"


@dataclass
class PodWorker:
    """One pod's serialised sync loop (the kubelet's pod_workers.go)."""

    uid: str
    pod: Any  # the latest object from the API; None once it is gone
    last_pod: Any
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    next_wake: float | None = None  # monotonic time of a back-off end or deadline
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)  # container → Waiting reason
    warned: bool = False  # unsupported fields reported
    evicted: str | None = None  # the eviction manager's message once it has chosen to evict the pod
    admitted: bool = False  # the node's pressure was checked before the pod's first start
    rejected: str | None = None  # why admission refused the pod

    def update(self, pod: Any) -> None:
        self.pod = pod
        if pod is not None:
            self.last_pod = pod
        self.wake.set()

    def wake_at(self, when: float) -> None:
        if self.next_wake is None or when < self.next_wake:
            self.next_wake = when


class Agent:
    def __init__(self, client: Any, runtime: Any, config: AgentConfig) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.events = EventRecorder(client, "kubelet", config.node_name)
        self.backoff = Backoff(config.backoff_base, config.backoff_cap, config.backoff_reset)
        self.pull_backoff = Backoff(config.backoff_base, config.backoff_cap, config.backoff_reset)
        self.workers: dict[str, PodWorker] = {}
        self.probes = ProbeManager(runtime, self._wake_uid, self._probe_failed)
        self._targets: list[ProbeTarget] = []
        self.port = config.server_port
        self._fingerprints: dict[str, tuple[Any, ...]] = {}
        self.ready_since = _now()
        self._locks: dict[str, asyncio.Lock] = {}
        # Pods whose sandbox was handed to another pod (replace) and that must stay down
        # until their object says Created.
        self.handed_over: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.thresholds = parse_thresholds(config.eviction_hard)
        self.pressure: list[str] = []  # the node's pressure conditions that are True
        self.pressure_history = PressureHistory(config.eviction_pressure_transition_period)
        self.resource_metrics = ResourceMetrics(self)

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    # -- node ----------------------------------------------------------------------

    async def _conditions(self, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The node's MemoryPressure, DiskPressure, PIDPressure (from the hard eviction
        thresholds, measured now) and Ready conditions, in the kubelet's order."""
        now = _now()
        observed = await asyncio.to_thread(observe, self.config.state_root, self.config.state_root / "images")
        self.pressure = self.pressure_history.pressed(thresholds_met(self.thresholds, observed), time.monotonic())
        return [*pressure_conditions(self.pressure, previous, now), ready_condition(now, self.ready_since)]

    async def register_node(self) -> None:
        body = node_object(self.config, self.port, _now())
        body["status"]["conditions"] = await self._conditions([])
        body["status"]["images"] = node_images(await self.runtime.list_images())
        body["status"]["runtimeHandlers"] = node_runtime_handlers(self.runtime.handlers)
        try:
            await self.client.create(from_dict(Node, body))
        except Exception as exc:
            if type(exc).__name__ != "AlreadyExists":
                raise
            node = await self.client.get(Node, self.config.node_name)
            merged = to_dict(node)
            merged["status"] = body["status"]
            merged.setdefault("metadata", {}).setdefault("labels", {}).update(body["metadata"]["labels"])
            await self.client.update_status(from_dict(Node, merged))

    async def heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                node = await self.client.get(Node, self.config.node_name)
                data = to_dict(node)
                status = data.setdefault("status", {})
                previous = status.get("conditions", [])
                ours = {"Ready", *CONDITION_WORDS}
                status["conditions"] = [c for c in previous if c.get("type") not in ours] + \
                    await self._conditions(previous)
                status["images"] = node_images(await self.runtime.list_images())
                status["runtimeHandlers"] = node_runtime_handlers(self.runtime.handlers)
                await self.client.update_status(from_dict(Node, data))
            except NotFound:
                await self.register_node()
            except Exception as exc:
                log.warning("node heartbeat failed: %s", exc)

    # -- pods ----------------------------------------------------------------------

    def _wake_uid(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.wake.set()

    def _dispatch(self, pod: Any | None, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is None:
            if pod is None:
                return
            worker = PodWorker(uid=uid, pod=pod, last_pod=pod)
            self.workers[uid] = worker
            worker.task = asyncio.create_task(self._worker_loop(worker))
        worker.update(pod)

    async def watch_pods(self) -> None:
        selector = f"spec.nodeName={self.config.node_name}"
        pods, _ = await self.client.list(Pod, field_selector=selector)
        seen = {p.metadata.uid for p in pods}
        # Pods the runtime still holds but the API forgot: finish and clean them up.
        for uid, rt in (await runtime_pods(self.runtime)).items():
            if uid not in seen:
                self._adopt_orphan(uid, rt)
        async for type_, pod in self.client.watch(Pod, field_selector=selector):
            if type_ == "DELETED" and pod.metadata.uid in self.workers:
                # The last word on the pod: how fast its containers must go.
                self.workers[pod.metadata.uid].last_pod = pod
            self._dispatch(None if type_ == "DELETED" else pod, pod.metadata.uid)

    def _adopt_orphan(self, uid: str, rt: PodRuntimeStatus) -> None:
        worker = PodWorker(uid=uid, pod=None, last_pod=None)
        self.workers[uid] = worker
        worker.task = asyncio.create_task(self._worker_loop(worker))
        worker.wake.set()

    async def relist_loop(self) -> None:
        """Wakes the worker of every pod whose containers changed in the runtime."""
        while True:
            await asyncio.sleep(self.config.relist_interval)
            await self.relist()

    async def relist(self) -> None:
        try:
            pods = await runtime_pods(self.runtime)
        except Exception as exc:
            log.warning("relist failed: %s", exc)
            return
        for uid, rt in pods.items():
            fp = tuple((c.id, c.state) for c in rt.containers) + tuple((s.id, s.ready) for s in rt.sandboxes)
            if self._fingerprints.get(uid) != fp:
                self._fingerprints[uid] = fp
                self._wake_uid(uid)

    async def housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.housekeeping_interval)
            await self.housekeeping()

    async def housekeeping(self) -> None:
        """One pass of the kubelet's eviction manager. First local storage: a pod over an emptyDir
        sizeLimit or an ephemeral-storage limit is evicted. If none was, and a hard threshold is
        met, the pod ranked first for the starved resource is (one per pass, as the kubelet). An
        evicted pod's worker kills it and reports it Failed/Evicted."""
        candidates: list[PodUsage] = []
        workers: dict[str, PodWorker] = {}
        evicted = False
        for w in list(self.workers.values()):
            pod = w.pod
            if pod is None or w.evicted is not None or w.rejected is not None or \
                    pod.metadata.deletion_timestamp is not None or \
                    (pod.status is not None and pod.status.phase in ("Succeeded", "Failed")):
                continue
            try:
                usage = await self._pod_usage(w.uid, pod)
            except Exception as exc:
                log.warning("measuring pod %s failed: %s", w.uid, exc)
                continue
            message = storage_violation(pod, usage.storage)
            if message is not None:
                await self._evict(w, message)
                evicted = True
            elif usage.running:
                candidates.append(usage)
                workers[pod.metadata.uid] = w
        if evicted:
            return
        observed = await asyncio.to_thread(observe, self.config.state_root, self.config.state_root / "images")
        chosen = node_pressure_victim(self.thresholds, observed, candidates)
        if chosen is not None:
            victim, message = chosen
            await self._evict(workers[uid_of(victim)], message)

    async def _evict(self, w: PodWorker, message: str) -> None:
        w.evicted = message
        await self._event(w.pod, EVICTED_REASON, message, warning=True)
        w.wake.set()

    async def _pod_usage(self, uid: str, pod: Any) -> PodUsage:
        """The pod's volumes, each container's (latest attempt's) writable layer and log, and its
        sandbox's memory working set and task count."""
        rt = await self._runtime_status(uid)
        storage = StorageUsage(volumes=await self.runtime.pod_volume_usage(uid))
        for c in rt.containers:
            if c.name in storage.containers:
                continue  # newest first: an older attempt
            with contextlib.suppress(NotFound):
                layer = (await self.runtime.container_stats(c.id)).writable_layer_bytes
                log_path = await self.runtime.container_log_path(c.id)
                storage.containers[c.name] = layer + await asyncio.to_thread(disk_usage, Path(log_path))
        usage = PodUsage(pod, storage, memory=0, processes=0, running=bool(rt.running()))
        ready = [sb for sb in rt.sandboxes if sb.ready]
        if ready:
            stats = await self.runtime.pod_sandbox_stats(ready[0].id)
            usage.memory, usage.processes = stats.memory_working_set_bytes, stats.processes
        return usage

    async def exit_loop(self) -> None:
        """Container exits from the runtime, so a worker reacts within moments."""
        events = getattr(self.runtime, "exit_events", None)
        if events is None:
            return
        async for container_id in events():
            with contextlib.suppress(Exception):
                status = await self.runtime.container_status(container_id)
                uid = (getattr(status, "labels", None) or {}).get(translate.POD_UID)
                if uid:
                    self._wake_uid(uid)

    async def _worker_loop(self, w: PodWorker) -> None:
        while True:
            timeout = None
            if w.next_wake is not None:
                timeout = max(0.0, w.next_wake - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(w.wake.wait(), timeout)
            w.wake.clear()
            w.next_wake = None
            try:
                async with self._lock(w.uid):
                    finished = await self.sync_pod(w)
                if finished:
                    self._locks.pop(w.uid, None)
                    self.workers.pop(w.uid, None)
                    self._fingerprints.pop(w.uid, None)
                    self.backoff.forget(f"{w.uid}/")
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync of pod %s failed", w.uid)
                w.wake_at(time.monotonic() + 1.0)

    async def _runtime_status(self, uid: str) -> PodRuntimeStatus:
        return (await runtime_pods(self.runtime, uid)).get(uid) or PodRuntimeStatus(uid=uid)

    # -- one sync --------------------------------------------------------------------

    async def sync_pod(self, w: PodWorker) -> bool:
        """Brings the runtime towards the pod; returns True when the worker is done."""
        rt = await self._runtime_status(w.uid)
        pod = w.pod
        if pod is None:
            # The object is gone: stop at once and forget the pod.
            if w.last_pod is not None:
                grace = w.last_pod.metadata.deletion_grace_period_seconds
                await self._kill_pod(w.last_pod, rt, grace_override=1 if grace is None else grace, reason="")
            else:
                await self._kill_all_records(rt)
            await self._remove_pod(rt)
            self._drop_probes(w.uid)
            return True

        if not w.warned:
            w.warned = True
            unsupported = unsupported_fields(pod)
            if unsupported:
                await self._event(pod, "UnsupportedFields", "podbay does not implement these fields yet "
                                  "and runs the pod without them: " + ", ".join(unsupported), warning=True)
        deleting = pod.metadata.deletion_timestamp is not None
        terminal = pod.status is not None and pod.status.phase in ("Succeeded", "Failed")
        created_state = (pod.metadata.annotations or {}).get(RUN_STATE_ANNOTATION) == "Created"
        if created_state:
            self.handed_over.discard(w.uid)
        elif w.uid in self.handed_over:
            created_state = True
        deadline = self._deadline_exceeded(pod, w)
        if not w.admitted and not deleting and not terminal:
            w.admitted = True
            # The kubelet admits a pod once, when it first comes to the node; one already running
            # (a restarted agent re-adopting it) is not admitted again.
            if not rt.sandboxes and not rt.containers:
                w.rejected = admission_rejection(pod, self.pressure)
                if w.rejected is not None:
                    await self._event(pod, EVICTED_REASON, w.rejected, warning=True)
        evicted = w.evicted is not None and not terminal and not deleting
        rejected = w.rejected is not None and not terminal and not deleting

        if deleting or terminal or deadline or created_state or evicted or rejected:
            grace = None
            if deleting and pod.metadata.deletion_grace_period_seconds is not None:
                grace = pod.metadata.deletion_grace_period_seconds
            if evicted:
                grace = IMMEDIATE_EVICTION_GRACE_SECONDS
            if deadline and not terminal:
                await self._event(pod, "DeadlineExceeded",
                                  "Pod was active on the node longer than the specified deadline",
                                  warning=True)
            if any(c.state is RunState.RUNNING for c in rt.containers):
                await self._kill_pod(pod, rt, grace_override=grace, reason="")
            for sb in rt.sandboxes:
                if sb.ready:
                    await self.runtime.stop_pod_sandbox(sb.id)
            if evicted:
                # The disk the pod over-used is reclaimed now, not when the pod object is deleted,
                # as the kubelet tears down a terminated pod's emptyDirs.
                await self.runtime.remove_pod_volumes(w.uid)
            if created_state and not deleting:
                # HyperContainer's stop: containers and sandbox go, storage stays; a start runs afresh.
                await self._remove_pod(await self._runtime_status(w.uid), keep_volumes=True)
                await self._prepare_created(w, pod)
            await self._sync_probes(w.uid)
            rt = await self._runtime_status(w.uid)
            await self._write_status(w, rt, pod_is_terminal=not created_state, deadline=deadline,
                                     created_state=created_state, evicted=w.evicted if evicted else None,
                                     rejected=w.rejected if rejected else None)
            if deleting and not rt.running():
                await self._remove_pod(rt)
                with contextlib.suppress(NotFound):
                    await self.client.delete(Pod, pod.metadata.name, pod.metadata.namespace,
                                             grace_period_seconds=0, uid=pod.metadata.uid)
                self._drop_probes(w.uid)
                return True
            return False

        liveness = {k: v for k, v in self.probes.results["liveness"].items() if v is not None}
        startup = {k: v for k, v in self.probes.results["startup"].items() if v is not None}
        actions = compute_pod_actions(pod, rt, liveness, startup)

        if actions.kill_pod:
            if rt.running():
                await self._kill_pod(pod, rt, grace_override=None, reason="")
            if actions.create_sandbox:
                for sb in rt.sandboxes:
                    await self.runtime.stop_pod_sandbox(sb.id)
                    if sb.ready and rt.sandboxes:
                        await self._event(pod, "SandboxChanged",
                                          "Pod sandbox changed, it will be killed and re-created.")
                rt = await self._runtime_status(w.uid)
        sandbox_id = actions.sandbox_id
        pod_ip = rt.sandboxes[0].ip if rt.sandboxes else None
        handed, old_stopped = None, None
        if actions.create_sandbox and pod.metadata.annotations.get(SANDBOX_FROM_ANNOTATION):
            handed = await self._take_sandbox(pod, pod.metadata.annotations[SANDBOX_FROM_ANNOTATION],
                                              actions.attempt)
            if handed is not None:
                sandbox_id, old_stopped = handed
                rt = await self._runtime_status(w.uid)
                pod_ip = rt.sandboxes[0].ip if rt.sandboxes else None
        if actions.create_sandbox and handed is None:
            try:
                handler = await self._runtime_handler(pod)
                sandbox_id = await self.runtime.run_pod_sandbox(
                    translate.sandbox_config(pod, actions.attempt, self.config, handler))
            except Exception as exc:
                await self._event(pod, "FailedCreatePodSandBox",
                                  f"Failed to create pod sandbox: {exc}", warning=True)
                w.wake_at(time.monotonic() + self.config.backoff_base)
                await self._write_status(w, rt)
                return False
            for note in (await self.runtime.pod_sandbox_status(sandbox_id)).notes:
                await self._event(pod, "SandboxFallback", note, warning=True)
            rt = await self._runtime_status(w.uid)
            pod_ip = rt.sandboxes[0].ip if rt.sandboxes else None

        for cid, info in actions.containers_to_kill.items():
            record = next((c for c in rt.containers if c.id == cid), None)
            if record is None:
                continue
            spec = self._spec_of(pod, record.name)
            await self._kill_container(pod, spec, record, None, info.message or f"Stopping container {record.name}",
                                       probe=info.reason)
        if actions.containers_to_kill:
            rt = await self._runtime_status(w.uid)

        if sandbox_id is not None:
            for i in actions.init_containers_to_start:
                container = pod.spec.init_containers[i]
                started = await self._start_container(w, pod, rt, sandbox_id, pod_ip, container, init=True,
                                                      after=old_stopped)
                if not is_restartable_init(container) or not started:
                    if not is_restartable_init(container):
                        break
            mains = [pod.spec.containers[i] for i in actions.containers_to_start]
            if any(c.lifecycle is not None and c.lifecycle.post_start is not None for c in mains):
                # A postStart hook holds back the containers after it, as in the kubelet.
                for c in mains:
                    await self._start_container(w, pod, rt, sandbox_id, pod_ip, c, init=False, after=old_stopped)
            else:
                # Nothing can observe their order: start them together.
                await asyncio.gather(*(self._start_container(w, pod, rt, sandbox_id, pod_ip, c, init=False,
                                                             after=old_stopped) for c in mains))
            for i in actions.ephemeral_containers_to_start:
                await self._start_container(w, pod, await self._runtime_status(w.uid), sandbox_id, pod_ip,
                                            pod.spec.ephemeral_containers[i], init=False)

        await self._sync_probes(w.uid)
        rt = await self._runtime_status(w.uid)
        await self._write_status(w, rt)
        return False

    async def _runtime_handler(self, pod: Any) -> str:
        """The kubelet's LookupRuntimeHandler: the handler of the pod's RuntimeClass ("" without one)."""
        name = pod.spec.runtime_class_name
        if not name:
            return ""
        try:
            return (await self.client.get(RuntimeClass, name)).handler
        except NotFound:
            raise NotFound(f'runtimeclass.node.k8s.io "{name}" not found') from None

    async def _prepare_created(self, w: PodWorker, pod: Any) -> None:
        """HyperContainer's Created: images pulled and volumes allocated, nothing running."""
        for c in [*pod.spec.init_containers, *pod.spec.containers]:
            await self._ensure_image(w, pod, c, c in pod.spec.init_containers, quiet=True)
        try:
            sources = await volume_sources(self.client, pod, PodFacts(host_ip=self.config.node_address))
            await self.runtime.setup_pod_volumes(pod.metadata.uid, sources)
        except Exception as exc:
            await self._event(pod, "FailedMount", f"MountVolume.SetUp failed: {exc}", warning=True)

    async def _take_sandbox(self, pod: Any, old_name: str, attempt: int) -> tuple[str, asyncio.Event] | None:
        """HyperContainer's replace: the running pod `old_name` hands its sandbox (namespaces, IP)
        to `pod` and returns to Created. Its containers stop in the background while `pod`'s are
        created; the event is set once they have stopped, which `pod`'s starts wait for (the two
        share one port space). None when it has no sandbox."""
        try:
            old = await self.client.get(Pod, old_name, pod.metadata.namespace)
        except NotFound:
            return None
        old_uid = old.metadata.uid
        if (old.spec.runtime_class_name or "") != (pod.spec.runtime_class_name or ""):
            # A sandbox is its handler's (a gVisor kernel, or host namespaces): it cannot change hands.
            await self._event(pod, "SandboxNotHandedOver", f"Pod {old_name} runs RuntimeClass "
                              f"{old.spec.runtime_class_name or '(default)'}, this pod asks for "
                              f"{pod.spec.runtime_class_name or '(default)'}: a new sandbox is made", warning=True)
            return None
        async with self._lock(old_uid):
            rt_old = await self._runtime_status(old_uid)
            sandbox = next((s for s in rt_old.sandboxes if s.ready), None)
            if sandbox is None:
                return None
            self.handed_over.add(old_uid)
            config = translate.sandbox_config(pod, attempt, self.config, await self._runtime_handler(pod))
            await self.runtime.update_pod_sandbox(sandbox.id, config.labels, config.annotations,
                                                  hostname=config.hostname)
        await self._event(pod, "SandboxHandedOver", f"Took over the sandbox of pod {old_name}")
        stopped = asyncio.Event()
        task = asyncio.create_task(self._hand_over(old, rt_old, stopped))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return sandbox.id, stopped

    async def _hand_over(self, old: Any, rt_old: PodRuntimeStatus, stopped: asyncio.Event) -> None:
        async with self._lock(old.metadata.uid):
            try:
                await self._kill_pod(old, rt_old, grace_override=None, reason="")
            finally:
                stopped.set()
            for c in rt_old.containers:
                with contextlib.suppress(NotFound):
                    await self.runtime.remove_container(c.id)
        for _ in range(5):
            try:
                fresh = await self.client.get(Pod, old.metadata.name, old.metadata.namespace)
                fresh.metadata.annotations[RUN_STATE_ANNOTATION] = "Created"
                await self.client.update(fresh)
                break
            except Conflict:
                continue
            except NotFound:
                break
        self._wake_uid(old.metadata.uid)

    def _spec_of(self, pod: Any, name: str) -> Any:
        for c in [*pod.spec.init_containers, *pod.spec.containers, *pod.spec.ephemeral_containers]:
            if c.name == name:
                return c
        return None

    def _deadline_exceeded(self, pod: Any, w: PodWorker) -> bool:
        ads = pod.spec.active_deadline_seconds
        start = pod.status.start_time if pod.status is not None else None
        if ads is None or start is None:
            return False
        left = (start + timedelta(seconds=ads) - _now()).total_seconds()
        if left <= 0:
            return True
        w.wake_at(time.monotonic() + left)
        return False

    # -- containers ------------------------------------------------------------------

    async def _service_env(self, pod: Any) -> dict[str, str]:
        """The Services' variables for `pod`'s containers; without them the container is not made,
        as the kubelet's CreateContainerConfigError when it cannot list Services."""
        namespace = pod.metadata.namespace or "default"
        try:
            services = [s for ns in dict.fromkeys((namespace, MASTER_NAMESPACE))
                        for s in (await self.client.list(Service, ns))[0]]
        except Exception as exc:
            raise EnvError(f"failed to list services when setting up env vars: {exc}") from None
        links = pod.spec.enable_service_links is not False
        return service_env(services, namespace, links)

    async def _start_container(self, w: PodWorker, pod: Any, rt: PodRuntimeStatus, sandbox_id: str,
                               pod_ip: str | None, container: Any, init: bool,
                               after: asyncio.Event | None = None) -> bool:
        """Creates and starts one container; with `after`, the start waits for that event."""
        name = container.name
        key = backoff_key(pod.metadata.uid, name)
        latest = rt.find(name)
        if latest is not None and latest.state is RunState.EXITED:
            finished = (latest.finished_at or _now()).timestamp()
            left = self.backoff.remaining(key, finished, time.time())
            if left > 0:
                w.reasons[name] = ("CrashLoopBackOff",
                                   f"back-off {_duration(self.backoff.get(key))} restarting failed "
                                   f"container={name} pod={_pod_name(pod)}")
                await self._event(pod, "BackOff", f"Back-off restarting failed container {name} in pod "
                                  f"{_pod_name(pod)}", warning=True, container=name, init=init)
                w.wake_at(time.monotonic() + left)
                return False
            self.backoff.next(key, finished, time.time())

        image_ok, image_info = await self._ensure_image(w, pod, container, init)
        if not image_ok:
            return False
        attempt = latest.attempt + 1 if latest is not None else 0
        try:
            sources = await volume_sources(self.client, pod, PodFacts(pod_ip=pod_ip or "",
                                                                      host_ip=self.config.node_address))
            volume_paths = await self.runtime.setup_pod_volumes(pod.metadata.uid, sources)
        except Exception as exc:
            w.reasons[name] = ("ContainerCreating", "")
            await self._event(pod, "FailedMount", f"MountVolume.SetUp failed: {exc}", warning=True)
            w.wake_at(time.monotonic() + self.config.backoff_base)
            return False
        target_name = getattr(container, "target_container_name", None)
        target = rt.find(target_name) if target_name else None
        if target_name and (target is None or target.state is not RunState.RUNNING):
            # The kubelet's runtime cannot join a PID namespace no process holds.
            w.reasons[name] = ("CreateContainerError", f'target container "{target_name}" is not running')
            await self._event(pod, "Failed", f"Error: {w.reasons[name][1]}", warning=True, container=name, init=init)
            return False
        try:
            cfg = translate.container_config(pod, container, attempt=attempt, init=init, pod_ip=pod_ip or "",
                                             host_ip=self.config.node_address, image_info=image_info,
                                             volume_paths=volume_paths, seccomp_root=self.config.seccomp_root,
                                             pid_target_id=target.id if target is not None else "",
                                             service_env=await self._service_env(pod))
        except EnvError as exc:
            w.reasons[name] = ("CreateContainerConfigError", str(exc))
            await self._event(pod, "Failed", f"Error: {exc}", warning=True, container=name, init=init)
            return False
        try:
            cid = await self.runtime.create_container(sandbox_id, cfg)
        except Exception as exc:
            w.reasons[name] = ("CreateContainerError", str(exc))
            await self._event(pod, "Failed", f"Error: {exc}", warning=True, container=name, init=init)
            return False
        await self._event(pod, "Created", f"Created container {name}", container=name, init=init)
        if after is not None:
            await after.wait()
        try:
            await self.runtime.start_container(cid)
        except Exception as exc:
            w.reasons[name] = ("RunContainerError", str(exc))
            await self._event(pod, "Failed", f"Error: {exc}", warning=True, container=name, init=init)
            return False
        w.reasons.pop(name, None)
        await self._event(pod, "Started", f"Started container {name}", container=name, init=init)

        post_start = container.lifecycle.post_start if container.lifecycle is not None else None
        if post_start is not None:
            ok, message = await run_handler(self.runtime, post_start, container, cid, pod_ip,
                                            float(self._grace(pod)))
            if not ok:
                await self._event(pod, "FailedPostStartHook", message, warning=True, container=name, init=init)
                record = ContainerRecord(id=cid, name=name, state=RunState.RUNNING)
                await self._kill_container(pod, container, record, None,
                                           "FailedPostStartHook", probe="", run_pre_stop=False)
                w.reasons[name] = ("PostStartHookError", message)
                return False
        return True

    async def _ensure_image(self, w: PodWorker, pod: Any, container: Any, init: bool,
                            quiet: bool = False) -> tuple[bool, Any]:
        name, image = container.name, container.image
        key = f"{pod.metadata.uid}/{name}/pull"
        policy = container.image_pull_policy or ("Always" if image.endswith(":latest") or ":" not in
                                                 image.rsplit("/", 1)[-1] else "IfNotPresent")
        present = await translate.image_present(self.runtime, image)
        if present is not None and (policy != "Always" or quiet):
            if not quiet:
                await self._event(pod, "Pulled", f'Container image "{image}" already present on machine',
                                  container=name, init=init)
            return True, present
        if policy == "Never":
            msg = f'Container image "{image}" is not present with pull policy of Never'
            w.reasons[name] = ("ErrImageNeverPull", msg)
            await self._event(pod, "Failed", f"Error: {msg}", warning=True, container=name, init=init)
            return False, None
        now = time.time()
        left = self.pull_backoff.remaining(key, now, now)
        if left > 0:
            w.reasons[name] = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
            await self._event(pod, "BackOff", f'Back-off pulling image "{image}"', container=name, init=init)
            w.wake_at(time.monotonic() + left)
            return False, None
        await self._event(pod, "Pulling", f'Pulling image "{image}"', container=name, init=init)
        t0 = time.monotonic()
        try:
            info = await translate.pull_image(self.runtime, image)
        except Exception as exc:
            self.pull_backoff.next(key, now, now)
            w.reasons[name] = ("ErrImagePull", str(exc))
            await self._event(pod, "Failed", f'Failed to pull image "{image}": {exc}', warning=True,
                              container=name, init=init)
            w.wake_at(time.monotonic() + self.pull_backoff.get(key))
            return False, None
        took = time.monotonic() - t0
        await self._event(pod, "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s',
                          container=name, init=init)
        return True, info

    def _grace(self, pod: Any) -> int:
        if pod.metadata.deletion_grace_period_seconds is not None and pod.metadata.deletion_timestamp is not None:
            return pod.metadata.deletion_grace_period_seconds
        g = pod.spec.termination_grace_period_seconds
        return DEFAULT_GRACE_SECONDS if g is None else g

    async def _kill_container(self, pod: Any, spec: Any, record: ContainerRecord, grace_override: int | None,
                              message: str, probe: str = "", run_pre_stop: bool = True) -> None:
        """preStop, then the stop signal, then SIGKILL when the grace period ends (killContainer)."""
        grace = float(self._grace(pod))
        if probe in ("LivenessProbe", "StartupProbe") and spec is not None:
            p = spec.liveness_probe if probe == "LivenessProbe" else spec.startup_probe
            if p is not None and p.termination_grace_period_seconds is not None:
                grace = float(p.termination_grace_period_seconds)
        name = record.name
        init = spec is not None and spec in pod.spec.init_containers
        await self._event(pod, "Killing", message, container=name, init=init)
        pre_stop = spec.lifecycle.pre_stop if spec is not None and spec.lifecycle is not None else None
        if run_pre_stop and pre_stop is not None and grace > 0 and record.state is RunState.RUNNING:
            t0 = time.monotonic()
            pod_ip = None
            rt = await self._runtime_status(pod.metadata.uid)
            if rt.sandboxes:
                pod_ip = rt.sandboxes[0].ip
            try:
                ok, hook_msg = await asyncio.wait_for(
                    run_handler(self.runtime, pre_stop, spec, record.id, pod_ip, grace), grace)
            except asyncio.TimeoutError:
                ok, hook_msg = True, ""  # overran the grace period: the stop goes on
            if not ok:
                await self._event(pod, "FailedPreStopHook", hook_msg, warning=True, container=name, init=init)
            grace -= time.monotonic() - t0
            if grace < MINIMUM_GRACE_SECONDS:
                grace = MINIMUM_GRACE_SECONDS
        if grace_override is not None:
            grace = float(grace_override)
        with contextlib.suppress(NotFound):
            await self.runtime.stop_container(record.id, max(0.0, grace))

    async def _kill_pod(self, pod: Any, rt: PodRuntimeStatus, grace_override: int | None, reason: str) -> None:
        """Main containers (and a running regular init container) together, then sidecars in
        reverse order, as the kubelet stops a pod."""
        running = {c.name: c for c in rt.containers if c.state is RunState.RUNNING}
        sidecars = [c for c in pod.spec.init_containers if is_restartable_init(c)]
        others = [c for c in [*pod.spec.init_containers, *pod.spec.containers] if c not in sidecars]
        await asyncio.gather(*(
            self._kill_container(pod, c, running[c.name], grace_override, f"Stopping container {c.name}")
            for c in others if c.name in running))
        for c in reversed(sidecars):
            if c.name in running:
                await self._kill_container(pod, c, running[c.name], grace_override, f"Stopping container {c.name}")
        known = {c.name for c in [*pod.spec.init_containers, *pod.spec.containers]}
        for name, record in running.items():
            if name not in known:
                await self.runtime.stop_container(record.id, 0)

    async def _kill_all_records(self, rt: PodRuntimeStatus) -> None:
        for c in rt.running():
            with contextlib.suppress(NotFound):
                await self.runtime.stop_container(c.id, 1)

    async def _remove_pod(self, rt: PodRuntimeStatus, keep_volumes: bool = False) -> None:
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

    # -- probes ------------------------------------------------------------------------

    def _probe_targets_except(self, uid: str) -> list[ProbeTarget]:
        return [t for t in self._targets if t.pod.metadata.uid != uid]

    def _drop_probes(self, uid: str) -> None:
        self._targets = self._probe_targets_except(uid)
        self.probes.ensure(self._targets)

    async def _sync_probes(self, uid: str) -> None:
        """Starts probe timers for the pod's newly running containers and stops those of gone ones."""
        rt = await self._runtime_status(uid)
        targets = self._probe_targets_except(uid)
        w = self.workers.get(uid)
        pod = w.pod if w is not None else None
        if pod is not None and pod.metadata.deletion_timestamp is None:
            ip = rt.sandboxes[0].ip if rt.sandboxes else None
            for c in rt.running():
                spec = self._spec_of(pod, c.name)
                if spec is None:
                    continue
                init = spec in pod.spec.init_containers
                if init and not is_restartable_init(spec):
                    continue
                targets.append(ProbeTarget(pod, spec, c.id, c.started_at, ip, init))
        self._targets = targets
        self.probes.ensure(targets)

    async def _event(self, pod: Any, reason: str, message: str, *, warning: bool = False,
                     container: str | None = None, init: bool = False) -> None:
        """An Event about the pod, or about one of its containers as the kubelet names it."""
        await self.events.record(pod, reason, message, warning=warning,
                                 field_path=container_path(container, init) if container else None)

    async def _probe_failed(self, pod: Any, container: Any, probe_type: str, message: str, init: bool) -> None:
        await self._event(pod, "Unhealthy", f"{probe_type.capitalize()} probe failed: {message}",
                          warning=True, container=container.name, init=init)

    # -- status ------------------------------------------------------------------------

    async def _write_status(self, w: PodWorker, rt: PodRuntimeStatus, pod_is_terminal: bool = False,
                            deadline: bool = False, created_state: bool = False,
                            evicted: str | None = None, rejected: str | None = None) -> None:
        pod = w.pod
        if pod is None:
            return  # deleted meanwhile: no object left to write to
        inputs = StatusInputs(
            now=_now(), host_ip=self.config.node_address,
            ready={k: v for k, v in self.probes.results["readiness"].items() if v is not None},
            started={k: v for k, v in self.probes.results["startup"].items() if v is not None},
            reasons=dict(w.reasons), pod_is_terminal=pod_is_terminal, deadline_exceeded=deadline,
            created_state=created_state, eviction_message=evicted, rejection_message=rejected)
        for _ in range(5):
            new = pod_status(pod, rt, inputs)
            # pod_status keeps a condition's lastTransitionTime while its status stays, so an
            # unchanged pod compares equal and nothing is written.
            if pod.status is not None and to_dict(pod.status) == to_dict(new):
                return
            data = to_dict(pod)
            data["status"] = to_dict(new)
            try:
                w.pod = await self.client.update_status(from_dict(Pod, data))
                return
            except Conflict:
                pod = w.pod = await self.client.get(Pod, pod.metadata.name, pod.metadata.namespace)
            except NotFound:
                return


def _duration(seconds: float) -> str:
    """Go's time.Duration text for whole seconds: 10s, 1m20s, 5m0s."""
    s = int(seconds)
    if seconds != s:
        return f"{seconds:g}s"
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


async def run(client: Any, runtime: Any, config: AgentConfig, registered: asyncio.Event | None = None) -> None:
    """Runs the agent until cancelled: node, heartbeats, pod watch, relist, exits, logs/exec server.
    `registered` is set once the Node object exists."""
    from podbay.agent.server import start_server

    if config.server_auth is None:
        raise ValueError("the agent's logs/exec server needs credentials to check (AgentConfig.server_auth)")
    agent = Agent(client, runtime, config)
    server = await start_server(agent, config.node_address, config.server_port, config.server_auth)
    agent.port = server.port
    await agent.register_node()
    if registered is not None:
        registered.set()
    loops = [agent.heartbeat_loop(), agent.watch_pods(), agent.relist_loop(), agent.exit_loop(),
             agent.housekeeping_loop(), ImageGC(runtime, config.image_gc).run(),
             agent.resource_metrics.loop(config.metrics_interval)]
    if config.host_gw_routes:
        loops.append(HostRoutes(client, config.node_name).run())
    if config.proxy is not None:
        loops.append(ServiceProxy(client, config.proxy).run())
    tasks = [asyncio.create_task(coro) for coro in loops]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        workers = [w.task for w in agent.workers.values() if w.task is not None]
        for t in workers:
            t.cancel()
        await asyncio.gather(*tasks, *workers, return_exceptions=True)
        await agent.probes.close()
        await agent.events.close()
        await server.close()
        if config.host_gw_routes:
            await HostRoutes.remove()
