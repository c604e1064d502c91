"""The embedded all-in-one server: store, API server, scheduler, pod GC and this
machine's node agent in one asyncio process (the one place they are wired)."""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from dataclasses import replace
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine

from podbay.agent.agent import run as run_agent
from podbay.agent.config import AgentConfig, ServerAuth
from podbay.agent.dns import DNSServer
from podbay.agent.podcidr import node_pod_cidr
from podbay.agent.proxy import ProxyConfig
from podbay.api import ObjectMeta, Overhead, RuntimeClass
from podbay.api.defaults import DEFAULT_SCHEDULER
from podbay.api.errors import AlreadyExists
from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.apiserver.ipallocator import ServiceRanges
from podbay.cli.settings import Settings
from podbay.client import Client
from podbay.client.inprocess import in_process_client
from podbay.client.informer import SharedInformerFactory
from podbay.client.leaderelection import LeaderElectionConfig, LeaderElector, new_identity
from podbay.client.record import EventRecorder
from podbay.client.rest import split_servers
from podbay.controllers.endpointslice import EndpointSliceController
from podbay.controllers.nodeipam import NodeIPAM
from podbay.controllers.nodelifecycle import NodeLifecycle
from podbay.controllers.podgc import PodGC
from podbay.controllers.workloads import workload_controllers
from podbay.runtime.config import RuntimeConfig, prepare_roots
from podbay.runtime.gvisor import GVISOR_HANDLER, GVISOR_MEMORY_OVERHEAD
from podbay.runtime.images import ensure_busybox_image
from podbay.runtime.network import host_masquerade
from podbay.runtime.service import RuntimeService
from podbay.scheduler.scheduler import run as run_scheduler
from podbay.security.authn import UNIX_SOCKET_USER, Identity
from podbay.security.pki import MASTERS, KeyPair, ensure_self_signed, host_names, parse_join_token
from podbay.store.base import Store
from podbay.store.etcd import EtcdStore
from podbay.store.sqlite import SQLiteStore

log = logging.getLogger("podbay")


def _stop_on_signals(stop: asyncio.Event | None) -> asyncio.Event:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


SCHEDULER_LEASE = "kube-scheduler"
CONTROLLERS_LEASE = "kube-controller-manager"


async def _elected(client: Client, election: LeaderElectionConfig | None, lease: str, component: str,
                   lead: Callable[[], Awaitable[None]]) -> None:
    """`lead()` while this process holds `lease` (kube-system/kube-scheduler, ...); at once without election."""
    if election is None:
        await lead()
        return
    recorder = EventRecorder(client, component)
    try:
        await LeaderElector(client, replace(election, name=election.name or lease), recorder).run(lead)
    finally:
        await recorder.close()


def _installation_identity(settings: Settings) -> str:
    """`<hostname>_<uuid>` kept under the state root: a restarted all-in-one (after a crash, say)
    is still the holder of its leases and acts at once instead of waiting for them to expire."""
    path = settings.state_root / "leader-identity"
    with contextlib.suppress(FileNotFoundError):
        if identity := path.read_text().strip():
            return identity
    identity = new_identity()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(identity + "\n")
    return identity


def _scheduler(client: Client, informers: SharedInformerFactory,
               election: LeaderElectionConfig | None) -> Coroutine[Any, Any, None]:
    return _elected(client, election, SCHEDULER_LEASE, DEFAULT_SCHEDULER,
                    lambda: run_scheduler(client, informers=informers))


def _controllers(client: Client, informers: SharedInformerFactory, settings: Settings,
                 election: LeaderElectionConfig | None) -> Coroutine[Any, Any, None]:
    async def lead() -> None:
        loops = [PodGC(client, informers).run(), NodeLifecycle(
            client, settings.node_grace, settings.pod_eviction_timeout, settings.node_monitor_period).run(),
            EndpointSliceController(client, informers).run(), *workload_controllers(client, informers)]
        if settings.allocate_node_cidrs:
            loops.append(NodeIPAM(client, settings.cluster_cidr, settings.node_cidr_mask_size).run())
        await asyncio.gather(*loops)
    return _elected(client, election, CONTROLLERS_LEASE, CONTROLLERS_LEASE, lead)


async def _start_runtime(settings: Settings) -> RuntimeService:
    runtime = RuntimeService(settings.runtime_config())
    await runtime.start()
    await asyncio.to_thread(ensure_busybox_image, runtime.images)
    return runtime


async def _default_runtime_classes(client: Client, runtime: RuntimeService) -> None:
    """As GKE Sandbox offers it: RuntimeClass `gvisor` (handler runsc) where runsc is installed.
    One made or changed by hand before is left as it is."""
    if GVISOR_HANDLER in runtime.handlers:
        with contextlib.suppress(AlreadyExists):
            await client.create(RuntimeClass(metadata=ObjectMeta(name="gvisor"), handler=GVISOR_HANDLER,
                                             overhead=Overhead(pod_fixed={"memory": GVISOR_MEMORY_OVERHEAD})))


def _server_auth(settings: Settings, client_ca: bytes, token: str | None) -> ServerAuth:
    """The agent's server lets in client certificates signed by the cluster CA (the API server's)
    and the cluster token; its own certificate is self-signed, made once under the state root."""
    serving = ensure_self_signed(KeyPair(settings.state_root / "pki" / "agent.crt",
                                         settings.state_root / "pki" / "agent.key"),
                                 f"{settings.node_name}-agent", host_names(settings.node_name, None))
    return ServerAuth(serving, client_ca, token)


def _agent_config(settings: Settings, auth: ServerAuth | None = None) -> AgentConfig:
    return AgentConfig(node_name=settings.node_name, node_address=settings.node_ip, server_port=0, server_auth=auth,
                       state_root=settings.state_root,
                       seccomp_profile_root=settings.seccomp_profile_root,
                       backoff_base=settings.backoff_base, backoff_cap=settings.backoff_cap,
                       pod_pids_limit=settings.pod_pids_limit, eviction_hard=settings.eviction_hard,
                       max_pods=settings.max_pods,
                       housekeeping_interval=settings.housekeeping_interval,
                       metrics_interval=settings.metrics_interval,
                       eviction_pressure_transition_period=settings.eviction_pressure_transition_period,
                       # Beat well within the grace the node lifecycle controller allows.
                       heartbeat_interval=min(10.0, settings.node_grace / 4),
                       cluster_domain=settings.cluster_domain,
                       proxy=ProxyConfig(settings.proxy_chain_prefix, settings.cluster_cidr, settings.bridge,
                                         node_name=settings.node_name))


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """etcd when --etcd-servers names it, else the SQLite file in the state root."""
    if settings.etcd_servers:
        store: Store = await EtcdStore.connect(list(settings.etcd_servers), settings.etcd_prefix,
                                               compaction_interval=settings.etcd_compaction_interval)
    else:
        store = SQLiteStore(settings.state_root / "store.db")
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def serve_api(settings: Settings) -> AsyncIterator[EmbeddedServer]:
    """The API server on the store the settings name, on the unix socket and (with an API port)
    HTTPS: the all-in-one's, and `podbay apiserver`'s alone."""
    async with open_store(settings) as store, \
            serve_embedded(settings.state_root, unix_socket=settings.socket_path,
                           host=settings.api_address if settings.api_port else None, port=settings.api_port,
                           store=store, kubeconfig=settings.kubeconfig, node_name=settings.node_name,
                           service_ranges=service_ranges(settings),
                           kubernetes_endpoint=kubernetes_endpoint(settings)) as server:
        yield server


def _report_dns_failure(task: asyncio.Task[None]) -> None:
    """Pods still run without cluster DNS (their lookups fail): said, not fatal to the node."""
    if not task.cancelled() and task.exception() is not None:
        log.error("cluster DNS stopped: %s", task.exception())


async def _node_agent(client: Client, settings: Settings, config: AgentConfig,
                      registered: asyncio.Event | None = None, *, runtime_classes: bool = False,
                      informers: SharedInformerFactory | None = None) -> None:
    """The agent over a runtime whose pod network is its Node's podCIDR (node_pod_cidr), which
    may mean waiting for node IPAM; the runtime stops watching when the agent ends. With
    `runtime_classes` (the all-in-one) it also offers the RuntimeClasses its runtime can run."""
    cidr = await node_pod_cidr(client, config, settings.subnet)
    runtime = await _start_runtime(replace(settings, subnet=cidr))
    # Cluster DNS: served here on the pods' bridge address unless --cluster-dns names another server.
    cluster_dns = settings.cluster_dns or str(ipaddress.ip_network(cidr).network_address + 1)
    dns: asyncio.Task[None] | None = None
    # A separately run agent's one factory: its DNS and service proxy share the Service and
    # EndpointSlice watches, as the all-in-one's share the process's.
    factory = informers if informers is not None else SharedInformerFactory(client)
    own = factory if factory is not informers else None
    if settings.cluster_dns is None:
        dns = asyncio.create_task(DNSServer(factory, cluster_dns, domain=settings.cluster_domain,
                                             upstreams=settings.cluster_dns_upstreams).run(), name="dns")
        dns.add_done_callback(_report_dns_failure)
    try:
        if runtime_classes:
            await _default_runtime_classes(client, runtime)
        await run_agent(client, runtime, replace(config, pod_cidr=cidr, cluster_dns=(cluster_dns,),
                                                 host_gw_routes=host_masquerade(runtime.network.config)), registered,
                        informers, own)
    finally:
        if dns is not None:
            dns.cancel()
            await asyncio.gather(dns, return_exceptions=True)
        if own is not None:
            await own.shutdown()
        await runtime.shutdown()


def service_ranges(settings: Settings) -> ServiceRanges:
    return ServiceRanges(settings.service_cluster_ip_range, settings.service_node_port_range)


def kubernetes_endpoint(settings: Settings) -> tuple[str, int] | None:
    """Where the `kubernetes` Service leads: this server's HTTPS address (the node's for a wildcard);
    none on a loopback address, which pods cannot reach (kube-apiserver refuses to advertise one)."""
    if not settings.api_port:
        return None
    address = ipaddress.ip_address(settings.api_address)
    if address.is_unspecified:
        address = ipaddress.ip_address(settings.node_ip)
    return None if address.is_loopback else (str(address), settings.api_port)


async def serve(settings: Settings, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Runs until `stop` is set (or SIGTERM/SIGINT); containers keep running after it."""
    stop = _stop_on_signals(stop)
    prepare_roots(settings.runtime_config())
    if settings.subnet is None and not settings.allocate_node_cidrs:
        # Nothing would give this node a podCIDR: today's single-machine default.
        settings = replace(settings, subnet=RuntimeConfig.subnet)
    if not settings.api_port:
        # An earlier run's kubeconfig would point kubectl at a port nothing serves now.
        settings.kubeconfig.unlink(missing_ok=True)
    async with serve_api(settings) as server:
        assert server.runner.server is not None
        # The components here call the API server in-process, as the socket's user they were before.
        client = in_process_client(server.runner.server, server.url, Identity(UNIX_SOCKET_USER, (MASTERS,)))
        # One list+watch per kind for the scheduler, the controllers and the agent in this process.
        informers = SharedInformerFactory(client)
        agent_config = _agent_config(settings, await asyncio.to_thread(
            _server_auth, settings, server.pki.ca_pem(), server.token))
        registered = asyncio.Event()
        # The all-in-one holds the scheduler's and the controllers' leases too, so a `podbay scheduler`
        # or `podbay controllers` pointed at it stands by instead of acting twice.
        election = LeaderElectionConfig(identity=_installation_identity(settings))
        tasks = [
            asyncio.create_task(_scheduler(client, informers, election), name="scheduler"),
            asyncio.create_task(_controllers(client, informers, settings, election), name="controllers"),
            asyncio.create_task(_node_agent(client, settings, agent_config, registered, runtime_classes=True,
                                            informers=informers), name="agent"),
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
        await informers.shutdown()
        await client.close()
        for finished in done:
            error = None if finished is stopped or finished.cancelled() else finished.exception()
            if error is not None:
                raise error


async def _join(settings: Settings, token: str | None) -> tuple[Client, bytes, str | None]:
    """A client of `settings.server`, the cluster CA and the token's secret. Over HTTPS the server
    is verified with the CA whose hash the join token carries; this machine's socket is its own
    credential (root only) and hands over the CA."""
    if not settings.server:
        raise SystemExit("this part needs --server URL[,URL...] (the API server to join; several fail over in turn)")
    if not settings.server.startswith("https://"):
        client = Client.connect(settings.server)
        return client, await client.cluster_ca(), None
    if not token:
        raise SystemExit("joining needs --token (or PODBAY_TOKEN): the content of <state-root>/node-token "
                         "on the API server's machine")
    try:
        client, ca = await Client.join(split_servers(settings.server), token)
    except ValueError as exc:
        raise SystemExit(f"cannot join {settings.server}: {exc}") from None
    return client, ca, parse_join_token(token)[1]


async def serve_agent(settings: Settings, token: str | None = None, stop: asyncio.Event | None = None,
                      ready: asyncio.Event | None = None) -> None:
    """This machine's node agent alone, joined to the API server at `settings.server`
    (another machine's `podbay up`) with its join token, as a kubelet joins a cluster;
    `ready` is set once its Node is registered."""
    client, ca, secret = await _join(settings, token)
    stop = _stop_on_signals(stop)
    prepare_roots(settings.runtime_config())
    auth = await asyncio.to_thread(_server_auth, settings, ca, secret)
    task = asyncio.create_task(_node_agent(client, settings, _agent_config(settings, auth), ready))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    stopped.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()


async def serve_controllers(settings: Settings, token: str | None = None, *, scheduler: bool = True,
                            controllers: bool = True, stop: asyncio.Event | None = None,
                            election: LeaderElectionConfig | None = None) -> None:
    """The scheduler and/or the controllers (pod GC, node lifecycle) alone, against the API
    server at `settings.server`, as kube-scheduler and kube-controller-manager run; with
    `election`, each acts only while it holds its lease."""
    client, _, _ = await _join(settings, token)
    stop = _stop_on_signals(stop)
    informers = SharedInformerFactory(client)
    coros = []
    if scheduler:
        coros.append(_scheduler(client, informers, election))
    if controllers:
        coros.append(_controllers(client, informers, settings, election))
    tasks = [asyncio.create_task(c) for c in coros]
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
    for t in (*tasks, stopped):
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await informers.shutdown()
    await client.close()
