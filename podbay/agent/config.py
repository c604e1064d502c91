"""Agent settings."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from podbay.agent.thresholds import DEFAULT_EVICTION_HARD
from podbay.agent.imagegc import ImageGCPolicy
from podbay.agent.proxy import ProxyConfig
from podbay.runtime.images.busybox import TAGS as BUSYBOX_TAGS
from podbay.security.pki import KeyPair


@dataclass(frozen=True)
class ServerAuth:
    """Who the logs/exec server lets in (the kubelet's 10250 role): a client certificate
    signed by `client_ca` (the API server's), or the bearer `token`; nobody else."""
    serving: KeyPair  # the server's own certificate
    client_ca: bytes  # PEM
    token: str | None


@dataclass
class AgentConfig:
    node_name: str = field(default_factory=socket.gethostname)
    node_address: str = "127.0.0.1"  # InternalIP published in the Node; the logs/exec server listens here
    server_port: int = 10250  # 0: any free port (tests)
    server_auth: ServerAuth | None = None  # required to serve logs and exec
    state_root: Path = Path("/var/lib/podbay")  # capacity of ephemeral-storage is read here
    seccomp_profile_root: Path | None = None  # Localhost seccomp profiles; None: <state_root>/seccomp
    heartbeat_interval: float = 10.0
    relist_interval: float = 5.0  # safety net behind the runtime's exit events
    backoff_base: float = 10.0
    backoff_cap: float = 300.0
    backoff_reset: float | None = None  # None: 2 * cap (10 minutes), as the kubelet
    max_pods: int = 110
    # pids.max of every pod's cgroup; -1: none. The kubelet's default is none, but one pod could then
    # take every pid on the host (a fork bomb); 4096 is far above what real workloads start.
    pod_pids_limit: int = 4096
    # The kubelet's --eviction-hard, in its syntax; also what sets the node's pressure conditions.
    eviction_hard: str = DEFAULT_EVICTION_HARD
    housekeeping_interval: float = 10.0  # how often ephemeral storage is measured and limits checked
    metrics_interval: float = 10.0  # how often CPU and memory are sampled for kubectl top (cAdvisor's 10s)
    eviction_pressure_transition_period: float = 300.0  # a pressure condition stays True this long after
    labels: dict[str, str] = field(default_factory=dict)
    # Route every other Node's podCIDR via its InternalIP (host-gw); the runtime must not masquerade
    # pod-to-pod traffic for the receiver to see the sender's pod IP.
    host_gw_routes: bool = False
    # The runtime's pod network; a Node registered again (deleted while the agent runs) asks for it back.
    pod_cidr: str | None = None
    # The project's own busybox is pinned as the kubelet pins its sandbox image: it is built here, not pulled.
    image_gc: ImageGCPolicy = field(default_factory=lambda: ImageGCPolicy(pinned=frozenset(BUSYBOX_TAGS)))
    # The kubelet's --cluster-dns and --cluster-domain: ClusterFirst pods' nameserver and search path;
    # without a server, ClusterFirst falls back to the host's resolv.conf as the kubelet's does.
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    proxy: ProxyConfig | None = None  # the service proxy (kube-proxy's role); None: not run

    @property
    def seccomp_root(self) -> Path:
        """Where a Localhost seccompProfile's localhostProfile is looked up (the kubelet's <root-dir>/seccomp)."""
        return self.seccomp_profile_root or self.state_root / "seccomp"
