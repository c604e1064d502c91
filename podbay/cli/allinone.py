"""The embedded all-in-one server: store, API server, scheduler, pod GC and this
machine's node agent in one asyncio process (the one place they are wired)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from podbay.agent.agent import run as run_agent
from podbay.agent.config import AgentConfig
from podbay.apiserver.embedded import serve_embedded
from podbay.cli.settings import Settings
from podbay.client import Client
from podbay.controllers.nodelifecycle import NodeLifecycle
from podbay.controllers.podgc import PodGC
from podbay.runtime.images import ensure_busybox_image
from podbay.runtime.service import RuntimeService
from podbay.scheduler.scheduler import run as run_scheduler

log = logging.getLogger("podbay")


def _stop_on_signals(stop: asyncio.Event | None) -> asyncio.Event:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _start_runtime(settings: Settings) -> RuntimeService:
    settings.run_root.mkdir(parents=True, exist_ok=True)
    settings.state_root.mkdir(parents=True, exist_ok=True)
    runtime = RuntimeService(settings.runtime_config())
    await runtime.start()
    await asyncio.to_thread(ensure_busybox_image, runtime.images)
    return runtime


def _agent_config(settings: Settings) -> AgentConfig:
    return AgentConfig(node_name=settings.node_name, server_port=0, state_root=settings.state_root,
                       seccomp_profile_root=settings.seccomp_profile_root,
                       backoff_base=settings.backoff_base, backoff_cap=settings.backoff_cap,
                       pod_pids_limit=settings.pod_pids_limit, eviction_hard=settings.eviction_hard,
                       housekeeping_interval=settings.housekeeping_interval,
                       eviction_pressure_transition_period=settings.eviction_pressure_transition_period,
                       # Beat well within the grace the node lifecycle controller allows.
                       heartbeat_interval=min(10.0, settings.node_grace / 4))


async def serve(settings: Settings, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Runs until `stop` is set (or SIGTERM/SIGINT); containers keep running after it."""
    stop = _stop_on_signals(stop)
    runtime = await _start_runtime(settings)
    async with serve_embedded(settings.state_root, unix_socket=settings.socket_path,
                              host=settings.api_address if settings.api_port else None, port=settings.api_port,
                              db_path=settings.state_root / "store.db") as server:
        client = Client.connect(server.url)
        agent_config = _agent_config(settings)
        registered = asyncio.Event()
        tasks = [
            asyncio.create_task(run_scheduler(client), name="scheduler"),
            asyncio.create_task(PodGC(client).run(), name="podgc"),
            asyncio.create_task(NodeLifecycle(client, settings.node_grace, settings.pod_eviction_timeout,
                                              settings.node_monitor_period).run(), name="nodelifecycle"),
            asyncio.create_task(run_agent(client, runtime, agent_config, registered), name="agent"),
        ]
        # Ready means a pod applied now gets scheduled: this node exists.
        waiting = asyncio.create_task(registered.wait())
        await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if registered.is_set() and ready is not None:
            ready.set()
        log.info("podbay serving on %s (pid %d)", server.url, os.getpid())
        waiting.cancel()
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopped.cancel()
        await client.close()
        await runtime.shutdown()
        for t in done:
            if t is not stopped and not t.cancelled() and t.exception() is not None:
                raise t.exception()


async def serve_agent(settings: Settings, token: str | None = None, stop: asyncio.Event | None = None) -> None:
    """This machine's node agent alone, joined to the API server at `settings.server`
    (another machine's `podbay up --api-port`), as a kubelet joins a cluster."""
    if not settings.server:
        raise SystemExit("podbay agent needs --server URL (the API server to join)")
    stop = _stop_on_signals(stop)
    runtime = await _start_runtime(settings)
    client = Client.connect(settings.server, token)
    task = asyncio.create_task(run_agent(client, runtime, _agent_config(settings)))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    stopped.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
    await runtime.shutdown()


async def serve_controllers(settings: Settings, token: str | None = None, *, scheduler: bool = True,
                            controllers: bool = True, stop: asyncio.Event | None = None) -> None:
    """The scheduler and/or the controllers (pod GC, node lifecycle) alone, against the API
    server at `settings.server`, as kube-scheduler and kube-controller-manager run."""
    if not settings.server:
        raise SystemExit("this part needs --server URL (the API server to work against)")
    stop = _stop_on_signals(stop)
    client = Client.connect(settings.server, token)
    coros = []
    if scheduler:
        coros.append(run_scheduler(client))
    if controllers:
        coros += [PodGC(client).run(), NodeLifecycle(client, settings.node_grace, settings.pod_eviction_timeout,
                                                     settings.node_monitor_period).run()]
    tasks = [asyncio.create_task(c) for c in coros]
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
    for t in (*tasks, stopped):
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.close()
