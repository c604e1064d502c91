"""One sync of one pod (the kubelet's SyncPod, SyncTerminatingPod and SyncTerminatedPod):
the runtime brought towards the pod object, then the pod's status written back.

Three paths: the object is gone (stop everything, forget the pod); the pod is ending
(deleted, terminal, past its deadline, evicted, refused at admission, or HyperContainer's
Created state); or it runs, by the numbered steps of kuberuntime_manager's SyncPod over the
pure compute_pod_actions.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from podbay.agent import translate
from podbay.agent.actions import PodActions, compute_pod_actions
from podbay.agent.config import AgentConfig
from podbay.agent.containers import ContainerManager, ContainerOutcome, runtime_status, spec_of
from podbay.agent.cri import ContainerRuntime
from podbay.agent.eviction import EVICTED_REASON
from podbay.agent.evictionmanager import EvictionManager
from podbay.agent.events import PodEvents
from podbay.agent.hyper import HyperLifecycle
from podbay.agent.podstate import PodRuntimeStatus, RunState
from podbay.agent.podworkers import PodWorker, PodWorkers
from podbay.agent.prober import ProbeManager, ProbeTarget
from podbay.agent.runtimeclass import runtime_handler
from podbay.agent.status import StatusInputs, pod_status
from podbay.api import Pod
from podbay.api.errors import Conflict, NotFound
from podbay.api.models import is_restartable_init
from podbay.api.serialize import to_dict
from podbay.api.stored import name_of
from podbay.api.support import unsupported_fields
from podbay.api.wellknown import RUN_STATE_ANNOTATION, SANDBOX_FROM_ANNOTATION
from podbay.client.client import Client

# How long an evicted pod's containers get to stop (the kubelet's immediateEvictionGracePeriodSeconds).
IMMEDIATE_EVICTION_GRACE_SECONDS = 1


@dataclass(frozen=True)
class Ending:
    """Why a pod that still has its object is to stop."""

    deleting: bool
    terminal: bool
    deadline: bool
    created_state: bool  # HyperContainer's stop: back to Created
    evicted: bool
    rejected: bool

    @property
    def stopping(self) -> bool:
        return any((self.deleting, self.terminal, self.deadline, self.created_state, self.evicted, self.rejected))


class PodSync:
    def __init__(self, client: Client, runtime: ContainerRuntime, config: AgentConfig, events: PodEvents,
                 workers: PodWorkers, containers: ContainerManager, hyper: HyperLifecycle,
                 probes: ProbeManager, eviction: EvictionManager) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.events = events
        self.workers = workers
        self.containers = containers
        self.hyper = hyper
        self.probes = probes
        self.eviction = eviction

    async def sync_pod(self, w: PodWorker) -> bool:
        """Brings the runtime towards the pod; returns True when the worker is done."""
        rt = await runtime_status(self.runtime, w.uid)
        pod = w.pod
        if pod is None:
            await self._sync_gone(w, rt)
            return True
        if not w.warned:
            w.warned = True
            unsupported = unsupported_fields(pod)
            if unsupported:
                await self.events.record(pod, "UnsupportedFields", "podbay does not implement these fields yet "
                                         "and runs the pod without them: " + ", ".join(unsupported), warning=True)
        ending = await self._ending(w, pod, rt)
        if ending.stopping:
            return await self._sync_terminating(w, pod, rt, ending)
        # Its Events go out after its status is written: a pod's start records one per container
        # step, and each is a commit the status write would otherwise queue behind.
        with self.events.held(w.uid):
            try:
                await self._sync_running(w, pod, rt)
            finally:
                await self.containers.release_ahead(w.uid)
        return False

    async def _sync_gone(self, w: PodWorker, rt: PodRuntimeStatus) -> None:
        """The object is gone: stop at once and forget the pod."""
        if w.last_pod is not None:
            grace = w.last_pod.metadata.deletion_grace_period_seconds
            await self.containers.kill_pod(w.last_pod, rt, grace_override=1 if grace is None else grace)
        else:
            await self.containers.kill_all(rt)
        await self.containers.remove_pod(rt)
        self.probes.set_pod(w.uid, [])

    async def _ending(self, w: PodWorker, pod: Pod, rt: PodRuntimeStatus) -> Ending:
        deleting = pod.metadata.deletion_timestamp is not None
        terminal = pod.status is not None and pod.status.phase in ("Succeeded", "Failed")
        created_state = (pod.metadata.annotations or {}).get(RUN_STATE_ANNOTATION) == "Created"
        if created_state:
            self.hyper.handed_over.discard(w.uid)
        elif w.uid in self.hyper.handed_over:
            created_state = True
        deadline = self._deadline_exceeded(pod, w)
        if not w.admitted and not deleting and not terminal:
            w.admitted = True
            # The kubelet admits a pod once, when it first comes to the node; one already running
            # (a restarted agent re-adopting it) is not admitted again.
            if not rt.sandboxes and not rt.containers:
                w.rejected = self.eviction.admit(pod)
                if w.rejected is not None:
                    await self.events.record(pod, EVICTED_REASON, w.rejected, warning=True)
        return Ending(deleting=deleting, terminal=terminal, deadline=deadline, created_state=created_state,
                      evicted=w.evicted is not None and not terminal and not deleting,
                      rejected=w.rejected is not None and not terminal and not deleting)

    async def _sync_terminating(self, w: PodWorker, pod: Pod, rt: PodRuntimeStatus, ending: Ending) -> bool:
        grace = None
        if ending.deleting and pod.metadata.deletion_grace_period_seconds is not None:
            grace = pod.metadata.deletion_grace_period_seconds
        if ending.evicted:
            grace = IMMEDIATE_EVICTION_GRACE_SECONDS
        if ending.deadline and not ending.terminal:
            await self.events.record(pod, "DeadlineExceeded",
                                     "Pod was active on the node longer than the specified deadline", warning=True)
        if any(c.state is RunState.RUNNING for c in rt.containers):
            await self.containers.kill_pod(pod, rt, grace_override=grace)
        for sb in rt.sandboxes:
            if sb.ready:
                await self.runtime.stop_pod_sandbox(sb.id)
        if ending.evicted:
            # The disk the pod over-used is reclaimed now, not when the pod object is deleted,
            # as the kubelet tears down a terminated pod's emptyDirs.
            await self.runtime.remove_pod_volumes(w.uid)
        if ending.created_state and not ending.deleting:
            # HyperContainer's stop: containers and sandbox go, storage stays; a start runs afresh.
            await self.containers.remove_pod(await runtime_status(self.runtime, w.uid), keep_volumes=True)
            for name, outcome in (await self.hyper.prepare_created(pod)).items():
                self._record(w, name, outcome)
        await self._sync_probes(w)
        rt = await runtime_status(self.runtime, w.uid)
        await self.write_status(w, rt, pod_is_terminal=not ending.created_state, deadline=ending.deadline,
                                created_state=ending.created_state, evicted=w.evicted if ending.evicted else None,
                                rejected=w.rejected if ending.rejected else None)
        if ending.deleting and not rt.running():
            await self.containers.remove_pod(rt)
            with contextlib.suppress(NotFound):
                await self.client.delete(Pod, name_of(pod), pod.metadata.namespace,
                                         grace_period_seconds=0, uid=pod.metadata.uid)
            self.probes.set_pod(w.uid, [])
            return True
        return False

    async def _sync_running(self, w: PodWorker, pod: Pod, rt: PodRuntimeStatus) -> None:
        actions = compute_pod_actions(pod, rt, self.probes.known("liveness"), self.probes.known("startup"))

        # 1–2: kill the pod if its sandbox changed; kill containers that must go.
        if actions.kill_pod:
            if rt.running():
                await self.containers.kill_pod(pod, rt, grace_override=None)
            if actions.create_sandbox:
                if rt.sandboxes:
                    # The kubelet says so whenever a sandbox existed, dead or alive.
                    await self.events.record(pod, "SandboxChanged",
                                             "Pod sandbox changed, it will be killed and re-created.")
                for sb in rt.sandboxes:
                    await self.runtime.stop_pod_sandbox(sb.id)
                rt = await runtime_status(self.runtime, w.uid)
        # 3–4: the sandbox: handed over by a replaced pod, or made.
        sandbox_id = actions.sandbox_id
        pod_ip = rt.sandboxes[0].ip if rt.sandboxes else None
        handed, old_stopped = None, None
        if actions.create_sandbox and pod.metadata.annotations.get(SANDBOX_FROM_ANNOTATION):
            handed = await self.hyper.take_sandbox(pod, pod.metadata.annotations[SANDBOX_FROM_ANNOTATION],
                                                   actions.attempt)
            if handed is not None:
                sandbox_id, old_stopped = handed
                rt = await runtime_status(self.runtime, w.uid)
                pod_ip = rt.sandboxes[0].ip if rt.sandboxes else None
        if actions.create_sandbox and handed is None:
            sandbox_id = await self._run_sandbox(w, pod, rt, actions)
            if sandbox_id is None:
                return
            rt = await runtime_status(self.runtime, w.uid)
            pod_ip = rt.sandboxes[0].ip if rt.sandboxes else None

        for cid, info in actions.containers_to_kill.items():
            record = next((c for c in rt.containers if c.id == cid), None)
            if record is None:
                continue
            await self.containers.kill(pod, spec_of(pod, record.name), record, None,
                                       info.message or f"Stopping container {record.name}", probe=info.reason)
        if actions.containers_to_kill:
            rt = await runtime_status(self.runtime, w.uid)

        # 5–7: init containers one by one, then the main containers, then ephemeral ones.
        if sandbox_id is not None:
            await self._start_containers(w, pod, rt, sandbox_id, pod_ip, actions.init_containers_to_start,
                                         actions.containers_to_start, actions.ephemeral_containers_to_start,
                                         old_stopped)

        await self._sync_probes(w)
        await self.write_status(w, await runtime_status(self.runtime, w.uid))

    async def _run_sandbox(self, w: PodWorker, pod: Pod, rt: PodRuntimeStatus, actions: PodActions) -> str | None:
        """The pod's new sandbox, or None once its failure is an Event and the status says so."""
        if not actions.init_containers_to_start:
            self.containers.make_rootfs_ahead(pod, [pod.spec.containers[i] for i in actions.containers_to_start])
        try:
            handler = await runtime_handler(self.client, pod)
            sandbox_id = await self.runtime.run_pod_sandbox(
                translate.sandbox_config(pod, actions.attempt, self.config, handler))
        except Exception as exc:
            await self.events.record(pod, "FailedCreatePodSandBox",
                                     f"Failed to create pod sandbox: {exc}", warning=True)
            w.wake_at(time.monotonic() + self.config.backoff_base)
            await self.write_status(w, rt)
            return None
        for note in (await self.runtime.pod_sandbox_status(sandbox_id)).notes:
            await self.events.record(pod, "SandboxFallback", note, warning=True)
        return sandbox_id

    async def _start_containers(self, w: PodWorker, pod: Pod, rt: PodRuntimeStatus, sandbox_id: str,
                                pod_ip: str | None, inits: list[int], mains: list[int], ephemerals: list[int],
                                after: asyncio.Event | None) -> None:
        for i in inits:
            container = pod.spec.init_containers[i]
            outcome = await self.containers.start(pod, rt, sandbox_id, pod_ip, container, init=True, after=after)
            self._record(w, container.name, outcome)
            if not is_restartable_init(container):
                break
        main = [pod.spec.containers[i] for i in mains]
        if any(c.lifecycle is not None and c.lifecycle.post_start is not None for c in main):
            # A postStart hook holds back the containers after it, as in the kubelet.
            for c in main:
                self._record(w, c.name, await self.containers.start(pod, rt, sandbox_id, pod_ip, c, init=False,
                                                                    after=after))
        else:
            # Nothing can observe their order: start them together.
            outcomes = await asyncio.gather(*(self.containers.start(pod, rt, sandbox_id, pod_ip, c, init=False,
                                                                    after=after) for c in main))
            for c, outcome in zip(main, outcomes):
                self._record(w, c.name, outcome)
        for i in ephemerals:
            ephemeral = pod.spec.ephemeral_containers[i]
            self._record(w, ephemeral.name, await self.containers.start(
                pod, await runtime_status(self.runtime, w.uid), sandbox_id, pod_ip, ephemeral, init=False))

    @staticmethod
    def _record(w: PodWorker, name: str, outcome: ContainerOutcome) -> None:
        """A start's outcome into the worker: the Waiting reason the status shows, the next wake."""
        if outcome.waiting is not None:
            w.reasons[name] = outcome.waiting
        elif outcome.started:
            w.reasons.pop(name, None)
        if outcome.retry_at is not None:
            w.wake_at(outcome.retry_at)

    def _deadline_exceeded(self, pod: Pod, w: PodWorker) -> bool:
        ads = pod.spec.active_deadline_seconds
        start = pod.status.start_time if pod.status is not None else None
        if ads is None or start is None:
            return False
        left = (start + timedelta(seconds=ads) - datetime.now(timezone.utc)).total_seconds()
        if left <= 0:
            return True
        w.wake_at(time.monotonic() + left)
        return False

    async def _sync_probes(self, w: PodWorker) -> None:
        """Probe timers for the pod's running containers; a deleted pod's stop."""
        targets: list[ProbeTarget] = []
        pod = w.pod
        if pod is not None and pod.metadata.deletion_timestamp is None:
            rt = await runtime_status(self.runtime, w.uid)
            ip = rt.sandboxes[0].ip if rt.sandboxes else None
            for c in rt.running():
                spec = spec_of(pod, c.name)
                if spec is None:
                    continue
                init = spec in pod.spec.init_containers
                if init and not is_restartable_init(spec):
                    continue
                targets.append(ProbeTarget(pod, spec, c.id, c.started_at, ip, init))
        self.probes.set_pod(w.uid, targets)

    async def write_status(self, w: PodWorker, rt: PodRuntimeStatus, pod_is_terminal: bool = False,
                           deadline: bool = False, created_state: bool = False,
                           evicted: str | None = None, rejected: str | None = None) -> None:
        pod = w.pod
        if pod is None:
            return  # deleted meanwhile: no object left to write to
        inputs = StatusInputs(
            now=datetime.now(timezone.utc), host_ip=self.config.node_address,
            ready=self.probes.known("readiness"), started=self.probes.known("startup"),
            reasons=dict(w.reasons), pod_is_terminal=pod_is_terminal, deadline_exceeded=deadline,
            created_state=created_state, eviction_message=evicted, rejection_message=rejected)
        for _ in range(5):
            new = pod_status(pod, rt, inputs)
            # pod_status keeps a condition's lastTransitionTime while its status stays, so an
            # unchanged pod compares equal and nothing is written.
            if pod.status is not None and to_dict(pod.status) == to_dict(new):
                return
            try:
                # A copy with the new status: both parts are valid models already, and the client
                # encodes it once (a round trip through dicts and validation cost ~1 ms per write).
                written = await self.client.update_status(pod.model_copy(update={"status": new}))
                # The watch may have delivered this very version first: keep its shared copy,
                # not a second decoded one.
                if w.pod is None or w.pod.metadata.resource_version != written.metadata.resource_version:
                    w.pod = written
                return
            except Conflict:
                pod = await self.client.get(Pod, name_of(pod), pod.metadata.namespace)
                w.pod = pod
            except NotFound:
                return
