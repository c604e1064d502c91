"""The node agent (the kubelet's role), put together: the Node and its heartbeat, the watch of
the pods bound to this node feeding one worker per pod, the runtime's relist and exit events
waking them, the eviction manager, image GC, metrics, and the logs/exec server.

A pod's path: watch_pods → PodWorkers.dispatch → PodSync.sync_pod → ContainerManager.start →
the runtime (podbay.agent.cri.ContainerRuntime).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from podbay.agent import translate
from podbay.agent.config import AgentConfig
from podbay.agent.containers import ContainerManager
from podbay.agent.cri import ContainerRuntime
from podbay.agent.evictionmanager import EvictionManager
from podbay.agent.events import PodEvents
from podbay.agent.hyper import HyperLifecycle
from podbay.agent.imagegc import ImageGC
from podbay.agent.nodestatus import NodeStatus
from podbay.agent.podsync import PodSync
from podbay.agent.podworkers import PodWorker, PodWorkers
from podbay.agent.prober import ProbeManager
from podbay.agent.proxy import ServiceProxy
from podbay.agent.resourcemetrics import ResourceMetrics
from podbay.agent.routes import HostRoutes
from podbay.agent.runtimeview import runtime_pods
from podbay.api import Pod
from podbay.api.models import Container
from podbay.api.services import Service
from podbay.api.stored import uid_of
from podbay.client.client import Client
from podbay.client.informer import NodePods, PodSource, SharedInformerFactory, WatchEvents
from podbay.client.record import EventRecorder

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, client: Client, runtime: ContainerRuntime, config: AgentConfig) -> None:
        self.client = client
        self._runtime = runtime
        self._config = config
        self.events = PodEvents(EventRecorder(client, "kubelet", config.node_name))
        self.workers = PodWorkers(self._sync, self._forget)
        self.containers = ContainerManager(client, runtime, config, self.events)
        self.probes = ProbeManager(runtime, self.workers.wake, self._probe_failed)
        self.eviction = EvictionManager(runtime, config, self.events, self.workers)
        self.node = NodeStatus(client, runtime, config, self.eviction)
        self.hyper = HyperLifecycle(client, runtime, config, self.events, self.containers, self.workers)
        self.pod_sync = PodSync(client, runtime, config, self.events, self.workers, self.containers, self.hyper,
                                self.probes, self.eviction)
        self._resource_metrics = ResourceMetrics(runtime, self.workers.pods)
        self._fingerprints: dict[str, tuple[object, ...]] = {}

    # NodeView, for the agent's server

    @property
    def runtime(self) -> ContainerRuntime:
        return self._runtime

    @property
    def config(self) -> AgentConfig:
        return self._config

    @property
    def resource_metrics(self) -> ResourceMetrics:
        return self._resource_metrics

    def pods(self, *, with_deleted: bool = False) -> list[Pod]:
        return self.workers.pods(with_deleted=with_deleted)

    async def _sync(self, w: PodWorker) -> bool:
        return await self.pod_sync.sync_pod(w)

    def _forget(self, uid: str) -> None:
        self._fingerprints.pop(uid, None)
        self.containers.backoff.forget(f"{uid}/")

    async def _probe_failed(self, pod: Pod, container: Container, probe_type: str, message: str,
                            init: bool) -> None:
        await self.events.record(pod, "Unhealthy", f"{probe_type.capitalize()} probe failed: {message}",
                                 warning=True, container=container.name, init=init)

    async def watch_pods(self, pods: PodSource) -> None:
        await pods.wait_synced()
        seen = {p.metadata.uid for p in pods.list()}
        # Pods the runtime still holds but the API forgot: finish and clean them up.
        for uid in await runtime_pods(self.runtime):
            if uid not in seen:
                self.workers.adopt_orphan(uid)
        await pods.serve(WatchEvents(self._pod_event))

    def _pod_event(self, type_: str, pod: Pod) -> None:
        uid = uid_of(pod)
        worker = self.workers.get(uid)
        if type_ == "DELETED" and worker is not None:
            # The last word on the pod: how fast its containers must go.
            worker.last_pod = pod
        self.workers.dispatch(None if type_ == "DELETED" else pod, uid)

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
                self.workers.wake(uid)

    async def exit_loop(self) -> None:
        """Container exits from the runtime, so a worker reacts within moments."""
        async for container_id in self.runtime.exit_events():
            with contextlib.suppress(Exception):
                status = await self.runtime.container_status(container_id)
                uid = (status.labels or {}).get(translate.POD_UID)
                if uid:
                    self.workers.wake(uid)


async def run(client: Client, runtime: ContainerRuntime, config: AgentConfig,
              registered: asyncio.Event | None = None, informers: SharedInformerFactory | None = None,
              own_informers: SharedInformerFactory | None = None) -> None:
    """Runs the agent until cancelled: node, heartbeats, pod watch, relist, exits, logs/exec server.
    `registered` is set once the Node object exists. `informers`: the process's (the all-in-one's,
    shared with the scheduler and controllers). Without it, `own_informers` (the agent process's,
    which its cluster DNS shares; its pod watch is of this node's pods only), else one of its own."""
    from podbay.agent.server import start_server

    if config.server_auth is None:
        raise ValueError("the agent's logs/exec server needs credentials to check (AgentConfig.server_auth)")
    agent = Agent(client, runtime, config)
    server = await start_server(agent, config.node_address, config.server_port, config.server_auth)
    agent.node.port = server.port
    await agent.node.register()
    if registered is not None:
        registered.set()
    factory = informers or own_informers or SharedInformerFactory(client)
    agent.containers.services = factory.informer(Service)
    pods: PodSource
    if informers is not None:
        # The process already holds every pod (the scheduler's and controllers' informer): read
        # this node's from it rather than keep a second decoded copy of each.
        pods = NodePods(informers.informer(Pod), config.node_name)
    else:
        # As the kubelet's own watch: only this node's pods, filtered by the API server.
        pods = factory.informer(Pod, field_selector=f"spec.nodeName={config.node_name}")
    loops = [agent.node.heartbeat_loop(), agent.watch_pods(pods), agent.relist_loop(), agent.exit_loop(),
             agent.eviction.loop(), ImageGC(runtime, config.image_gc).run(),
             agent.resource_metrics.loop(config.metrics_interval)]
    if config.host_gw_routes:
        loops.append(HostRoutes(client, config.node_name).run())
    if config.proxy is not None:
        loops.append(ServiceProxy(factory, config.proxy).run())
    tasks = [asyncio.create_task(coro) for coro in loops]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if factory is not informers and factory is not own_informers:
            await factory.shutdown()
        await agent.workers.stop()
        await agent.probes.close()
        await agent.events.close()
        await server.close()
        if config.host_gw_routes:
            await HostRoutes.remove()
