"""Where the local server keeps its state and how verbs reach it.

Every path and name can be set by a flag or a PODBAY_* environment variable,
so tests and several installations never share state.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from podbay.agent.upstreams import Upstream, parse_upstreams
from podbay.agent.thresholds import DEFAULT_EVICTION_HARD, parse_thresholds
from podbay.api.quantity import parse_quantity
from podbay.apiserver.ipallocator import DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, parse_port_range
from podbay.controllers.cidrs import DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_CIDR_MASK_SIZE, parse_range
from podbay.runtime.config import RUNSC_NETWORKS, RuntimeConfig


@dataclass(frozen=True)
class Settings:
    state_root: Path
    run_root: Path
    cgroup_parent: str
    network_name: str
    bridge: str
    subnet: str | None  # this node's pod subnet; None: the podCIDR node IPAM gives its Node
    node_name: str
    api_port: int  # HTTPS; 0: no TCP listener
    server: str | None  # a remote API; None: this machine's socket
    backoff_base: float = 10.0  # the kubelet's restart back-off: 10 s doubling up to 300 s
    backoff_cap: float = 300.0
    node_grace: float = 40.0  # a node silent this long becomes Ready=Unknown
    pod_eviction_timeout: float = 300.0  # ... and this much later its pods are deleted
    node_monitor_period: float = 5.0
    api_address: str = "127.0.0.1"
    write_kubeconfig: Path | None = None  # the admin kubeconfig; None: <state_root>/kubeconfig
    client_kubeconfig: Path | None = None  # credentials the CLI presents to an https `server`
    warm_sandboxes: int = 1
    # 0 here, where tests build Settings; the command line's default is 1 (--warm-gvisor-sandboxes)
    warm_gvisor_sandboxes: int = 0
    oci_runtime: str = "crun"
    runsc_network: str = "sandbox"  # the runsc handler's network: gVisor's netstack, or "host" (the pod's netns)
    runsc_platform: str = "ptrace"
    seccomp_profile_root: Path | None = None  # Localhost seccomp profiles; None: <state_root>/seccomp
    max_image_size: int = 20 << 30
    imagefs_min_available: float = 0.15
    etcd_servers: tuple[str, ...] = ()  # empty: the embedded SQLite store
    etcd_prefix: str = "/registry"
    etcd_compaction_interval: float = 300.0  # 0: this server never compacts
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR  # node IPAM's range; pods' traffic to it is not masqueraded
    node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE
    allocate_node_cidrs: bool = True  # the controllers run node IPAM
    node_ip: str = "127.0.0.1"  # the agent's InternalIP
    pod_pids_limit: int = 4096  # pids.max of each pod's cgroup; -1: none
    max_pods: int = 110  # the Node's pods capacity, as the kubelet's --max-pods
    eviction_hard: str = DEFAULT_EVICTION_HARD
    housekeeping_interval: float = 10.0
    metrics_interval: float = 10.0
    eviction_pressure_transition_period: float = 300.0
    service_cluster_ip_range: str = DEFAULT_SERVICE_CIDR
    service_node_port_range: str = DEFAULT_NODE_PORT_RANGE
    cluster_dns: str | None = None  # None: the first address of this node's pod subnet (its bridge)
    cluster_domain: str = "cluster.local"
    proxy_chain_prefix: str = "KUBE"  # the service proxy's iptables chains: KUBE-SERVICES, KUBE-SVC-...
    # Where cluster DNS forwards names outside the cluster domain; None: the host's resolv.conf
    # nameservers; empty: nowhere (SERVFAIL).
    cluster_dns_upstreams: tuple[Upstream, ...] | None = None

    @property
    def socket_path(self) -> Path:
        return self.run_root / "api.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_root / "podbay.pid"

    @property
    def logfile(self) -> Path:
        return self.state_root / "podbay.log"

    @property
    def kubeconfig(self) -> Path:
        return self.write_kubeconfig or self.state_root / "kubeconfig"

    @property
    def server_url(self) -> str:
        return self.server or f"unix://{self.socket_path}"

    def runtime_config(self) -> RuntimeConfig:
        # Without a subnet (a purge of a node whose CIDR came from node IPAM) the conflist written
        # earlier already names it, and the default only says the address family.
        return RuntimeConfig(state_root=self.state_root, run_root=self.run_root, cgroup_parent=self.cgroup_parent,
                             network_name=self.network_name, bridge=self.bridge,
                             subnet=self.subnet or RuntimeConfig.subnet, cluster_cidr=self.cluster_cidr,
                             warm_sandboxes=self.warm_sandboxes, oci_runtime=self.oci_runtime,
                             warm_gvisor_sandboxes=self.warm_gvisor_sandboxes,
                             runsc_network=self.runsc_network, runsc_platform=self.runsc_platform,
                             max_image_size=self.max_image_size, imagefs_min_available=self.imagefs_min_available)

    def as_args(self) -> list[str]:
        """The global flags that name this installation, for a child `podbay` process."""
        return ["--state-root", str(self.state_root), "--run-root", str(self.run_root),
                "--cgroup-parent", self.cgroup_parent, "--network", self.network_name, "--bridge", self.bridge,
                *(["--subnet", self.subnet] if self.subnet else []), "--node-name", self.node_name,
                "--api-port", str(self.api_port),
                "--backoff-base", str(self.backoff_base), "--backoff-cap", str(self.backoff_cap),
                "--node-grace", str(self.node_grace), "--pod-eviction-timeout", str(self.pod_eviction_timeout),
                "--api-address", self.api_address, "--warm-sandboxes", str(self.warm_sandboxes),
                "--warm-gvisor-sandboxes", str(self.warm_gvisor_sandboxes),
                "--max-image-size", str(self.max_image_size),
                "--runsc-network", self.runsc_network, "--runsc-platform", self.runsc_platform,
                "--imagefs-min-available", f"{self.imagefs_min_available * 100:g}%",
                "--cluster-cidr", self.cluster_cidr, "--node-cidr-mask-size", str(self.node_cidr_mask_size),
                "--node-ip", self.node_ip,
                "--pod-pids-limit", str(self.pod_pids_limit), "--max-pods", str(self.max_pods),
                "--eviction-hard", self.eviction_hard,
                "--housekeeping-interval", str(self.housekeeping_interval),
                "--metrics-interval", str(self.metrics_interval),
                "--eviction-pressure-transition-period", str(self.eviction_pressure_transition_period),
                "--service-cluster-ip-range", self.service_cluster_ip_range,
                "--service-node-port-range", self.service_node_port_range,
                "--cluster-domain", self.cluster_domain, "--proxy-chain-prefix", self.proxy_chain_prefix,
                *(["--cluster-dns", self.cluster_dns] if self.cluster_dns else []),
                *(["--cluster-dns-upstreams", ",".join(map(str, self.cluster_dns_upstreams))]
                  if self.cluster_dns_upstreams is not None else []),
                *(["--seccomp-profile-root", str(self.seccomp_profile_root)] if self.seccomp_profile_root else []),
                *(["--write-kubeconfig", str(self.write_kubeconfig)] if self.write_kubeconfig else []),
                *(["--etcd-servers", ",".join(self.etcd_servers), "--etcd-prefix", self.etcd_prefix,
                   "--etcd-compaction-interval", str(self.etcd_compaction_interval)] if self.etcd_servers else [])]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: not a positive integer")
    return value


def _eviction_hard(text: str) -> str:
    try:
        parse_thresholds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _upstreams(text: str) -> tuple[Upstream, ...]:
    try:
        return parse_upstreams(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _env_upstreams() -> tuple[Upstream, ...] | None:
    """PODBAY_CLUSTER_DNS_UPSTREAMS, set (even empty) or not."""
    text = os.environ.get("PODBAY_CLUSTER_DNS_UPSTREAMS")
    if text is None:
        return None
    try:
        return parse_upstreams(text)
    except ValueError as exc:
        raise SystemExit(f"error: PODBAY_CLUSTER_DNS_UPSTREAMS: {exc}") from None


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    # One group, its flags in the order `podbay --help` has always listed them.
    g = parser.add_argument_group("installation")
    _add_installation_flags(g)
    _add_node_flags(g)
    _add_serving_flags(g)
    _add_node_lifecycle_flags(g)
    _add_kubelet_flags(g)
    _add_service_flags(g)
    _add_runtime_flags(g)
    _add_store_flags(g)


def _add_installation_flags(g: argparse._ArgumentGroup) -> None:
    """Where this installation keeps its state, and the names of its cgroup and network."""
    env = os.environ.get
    g.add_argument("--state-root", default=env("PODBAY_STATE_ROOT", "/var/lib/podbay"), type=Path)
    g.add_argument("--run-root", default=env("PODBAY_RUN_ROOT", "/run/podbay"), type=Path)
    g.add_argument("--cgroup-parent", default=env("PODBAY_CGROUP_PARENT", "podbay"))
    g.add_argument("--network", dest="network_name", default=env("PODBAY_NETWORK", "podbay"))
    g.add_argument("--bridge", default=env("PODBAY_BRIDGE", "podbay0"))


def _add_node_flags(g: argparse._ArgumentGroup) -> None:
    """This node's name, address and pod subnet, and the cluster's pod network node IPAM divides."""
    env = os.environ.get
    g.add_argument("--subnet", default=env("PODBAY_SUBNET"),
                   help="this node's pod subnet, set as its Node's spec.podCIDR (default: the podCIDR node IPAM "
                        "gives the Node; the all-in-one without node IPAM: 10.244.0.0/24)")
    g.add_argument("--cluster-cidr", default=env("PODBAY_CLUSTER_CIDR", DEFAULT_CLUSTER_CIDR),
                   help="the pod network of all nodes: node IPAM gives each Node a podCIDR from it, and pods' "
                        f"traffic to it keeps its source IP (default {DEFAULT_CLUSTER_CIDR})")
    g.add_argument("--node-cidr-mask-size", type=int,
                   default=int(env("PODBAY_NODE_CIDR_MASK_SIZE", str(DEFAULT_NODE_CIDR_MASK_SIZE))),
                   help=f"prefix length of each Node's podCIDR (default {DEFAULT_NODE_CIDR_MASK_SIZE})")
    g.add_argument("--node-ip", default=env("PODBAY_NODE_IP", "127.0.0.1"),
                   help="this node's InternalIP: published in its Node, where other nodes route its pods and "
                        "the API server reaches its logs/exec server (default 127.0.0.1)")
    g.add_argument("--node-name", default=env("PODBAY_NODE_NAME", socket.gethostname().lower()))


def _add_serving_flags(g: argparse._ArgumentGroup) -> None:
    """The API's HTTPS listener and the kubeconfigs that reach it."""
    env = os.environ.get
    g.add_argument("--api-port", type=int, default=int(env("PODBAY_API_PORT", "6443")),
                   help="serve the API over HTTPS on --api-address:PORT (kubectl, the Python client; "
                        "client certificate or bearer token required); 0: only the unix socket")
    # The restart back-off is the agent's; it sits among the listener's flags only to keep the
    # order `podbay --help` has always shown.
    g.add_argument("--backoff-base", type=float, default=float(env("PODBAY_BACKOFF_BASE", "10")),
                   help="first restart back-off in seconds (doubles per restart)")
    g.add_argument("--backoff-cap", type=float, default=float(env("PODBAY_BACKOFF_CAP", "300")))
    g.add_argument("--api-address", default=env("PODBAY_API_ADDRESS", "127.0.0.1"),
                   help="address for --api-port")
    g.add_argument("--write-kubeconfig", type=Path, default=env("PODBAY_WRITE_KUBECONFIG"),
                   help="where `podbay up` writes the admin kubeconfig (mode 0600) and `podbay kubeconfig` "
                        "reads it (default: <state-root>/kubeconfig)")
    g.add_argument("--kubeconfig", type=Path, default=env("KUBECONFIG"),
                   help="credentials for an https --server (default: $KUBECONFIG)")


def _add_node_lifecycle_flags(g: argparse._ArgumentGroup) -> None:
    """When the node lifecycle controller gives up on a silent node and its pods."""
    env = os.environ.get
    g.add_argument("--node-grace", type=float, default=float(env("PODBAY_NODE_GRACE", "40")),
                   help="seconds without a node heartbeat before the node is Ready=Unknown")
    g.add_argument("--pod-eviction-timeout", type=float, default=float(env("PODBAY_POD_EVICTION_TIMEOUT", "300")),
                   help="seconds a node stays Unknown before its pods are deleted")


def _add_kubelet_flags(g: argparse._ArgumentGroup) -> None:
    """The node agent's limits, warm sandboxes, eviction thresholds and sampling periods (the kubelet's)."""
    env = os.environ.get
    g.add_argument("--max-pods", type=_positive, default=int(env("PODBAY_MAX_PODS", "110")),
                   help="pods this node runs at most (its Node's pods capacity), as the kubelet's --max-pods")
    g.add_argument("--warm-sandboxes", type=int, default=int(env("PODBAY_WARM_SANDBOXES", "1")),
                   help="pod sandboxes (namespaces and network) kept ready so the next pod starts sooner; "
                        "0 saves their memory and IP on small machines")
    g.add_argument("--warm-gvisor-sandboxes", type=int, default=int(env("PODBAY_WARM_GVISOR_SANDBOXES", "1")),
                   help="gVisor sandboxes kept booted (their kernel running) so the next runsc pod starts "
                        "sooner, as hyperd kept warm VMs; each holds its memory and an IP (0 where runsc is absent)")
    g.add_argument("--seccomp-profile-root", type=Path, default=env("PODBAY_SECCOMP_PROFILE_ROOT"),
                   help="where a Localhost seccompProfile's localhostProfile is found (default: "
                        "<state-root>/seccomp, as the kubelet's <root-dir>/seccomp)")
    g.add_argument("--pod-pids-limit", type=int, default=int(env("PODBAY_POD_PIDS_LIMIT", "4096")),
                   help="pids.max of each pod's cgroup, counting all its containers' tasks (the kubelet's "
                        "podPidsLimit); -1 for none")
    g.add_argument("--eviction-hard", type=_eviction_hard, default=env("PODBAY_EVICTION_HARD", DEFAULT_EVICTION_HARD),
                   help="the kubelet's hard eviction thresholds, e.g. memory.available<100Mi,nodefs.available<10%%;"
                        " they set the node's MemoryPressure, DiskPressure and PIDPressure conditions")
    g.add_argument("--housekeeping-interval", type=float,
                   default=float(env("PODBAY_HOUSEKEEPING_INTERVAL", "10")),
                   help="seconds between measurements of pods' ephemeral storage against their limits")
    g.add_argument("--metrics-interval", type=float, default=float(env("PODBAY_METRICS_INTERVAL", "10")),
                   help="seconds between samples of CPU and memory usage; kubectl top's CPU is the rate "
                        "between the last two")
    g.add_argument("--eviction-pressure-transition-period", type=float,
                   default=float(env("PODBAY_EVICTION_PRESSURE_TRANSITION_PERIOD", "300")),
                   help="seconds a pressure condition stays True after its threshold was last met (the kubelet's)")


def _add_service_flags(g: argparse._ArgumentGroup) -> None:
    """Services' address and port ranges, cluster DNS and the service proxy."""
    env = os.environ.get
    g.add_argument("--service-cluster-ip-range",
                   default=env("PODBAY_SERVICE_CLUSTER_IP_RANGE", DEFAULT_SERVICE_CIDR),
                   help=f"the range Services' ClusterIPs come from (kube-apiserver's flag; default "
                        f"{DEFAULT_SERVICE_CIDR}); its first address is the kubernetes Service's")
    g.add_argument("--service-node-port-range",
                   default=env("PODBAY_SERVICE_NODE_PORT_RANGE", DEFAULT_NODE_PORT_RANGE),
                   help=f"the ports NodePort Services get (kube-apiserver's flag; default {DEFAULT_NODE_PORT_RANGE})")
    g.add_argument("--cluster-dns", default=env("PODBAY_CLUSTER_DNS"),
                   help="the cluster DNS server's address, the nameserver of ClusterFirst pods (the kubelet's "
                        "flag; default: the first address of this node's pod subnet, where the all-in-one "
                        "serves DNS)")
    g.add_argument("--cluster-dns-upstreams", type=_upstreams, default=_env_upstreams(),
                   help="comma-separated resolvers (IPv4[:port]) cluster DNS forwards names outside the "
                        "cluster domain to (default: the host's /etc/resolv.conf nameservers, as CoreDNS's "
                        "`forward . /etc/resolv.conf`); empty: none, such names get SERVFAIL")
    g.add_argument("--cluster-domain", default=env("PODBAY_CLUSTER_DOMAIN", "cluster.local"),
                   help="the DNS domain of Services and pods (the kubelet's flag; default cluster.local)")
    g.add_argument("--proxy-chain-prefix", default=env("PODBAY_PROXY_CHAIN_PREFIX", "KUBE"),
                   help="the prefix of the service proxy's iptables chains (default KUBE, as kube-proxy's "
                        "KUBE-SERVICES); another lets two installations share one host")


def _add_runtime_flags(g: argparse._ArgumentGroup) -> None:
    """The OCI runtimes containers run with, and the bounds on unpacked images."""
    env = os.environ.get
    g.add_argument("--oci-runtime", default=env("PODBAY_OCI_RUNTIME", "crun"),
                   help="the OCI runtime conmon runs containers with: crun (default) or runc, a name or a path")
    g.add_argument("--runsc-network", choices=RUNSC_NETWORKS, default=env("PODBAY_RUNSC_NETWORK", "sandbox"),
                   help="the gVisor (runsc) handler's network: sandbox (gVisor's netstack, the default; falls "
                        "back to host, with an event, where runsc refuses it) or host (the pod's network "
                        "namespace through the host kernel)")
    g.add_argument("--runsc-platform", default=env("PODBAY_RUNSC_PLATFORM", "ptrace"),
                   help="runsc --platform: ptrace (default; works without KVM), systrap or kvm where the runsc "
                        "build and host have them")
    g.add_argument("--max-image-size", type=parse_size, default=parse_size(env("PODBAY_MAX_IMAGE_SIZE", "20Gi")),
                   help="most bytes one image may unpack to (e.g. 20Gi, 500Mi); a layer past it is refused "
                        "and removed (default 20Gi)")
    g.add_argument("--imagefs-min-available", type=parse_percent,
                   default=parse_percent(env("PODBAY_IMAGEFS_MIN_AVAILABLE", "15%")),
                   help="unpacking stops when the image filesystem would have less than this free (default "
                        "15%%, the kubelet's imagefs.available hard eviction threshold)")


def _add_store_flags(g: argparse._ArgumentGroup) -> None:
    """The API server the verbs talk to, and the etcd an API server keeps objects in."""
    env = os.environ.get
    g.add_argument("--server", default=env("PODBAY_SERVER"),
                   help="the API server to talk to (default: this machine's socket); several https URLs, "
                        "comma-separated, are tried in turn when one stops answering")
    g.add_argument("--etcd-servers", default=env("PODBAY_ETCD_SERVERS", ""),
                   help="keep the API's objects in etcd at these comma-separated URLs "
                        "(http://127.0.0.1:2379) instead of <state-root>/store.db")
    g.add_argument("--etcd-prefix", default=env("PODBAY_ETCD_PREFIX", "/registry"),
                   help="the prefix of every key podbay writes to etcd")
    g.add_argument("--etcd-compaction-interval", type=float,
                   default=float(env("PODBAY_ETCD_COMPACTION_INTERVAL", "300")),
                   help="seconds between compactions of etcd's history (0: never)")


def settings_from(args: argparse.Namespace) -> Settings:
    try:
        parse_range(args.cluster_cidr, args.node_cidr_mask_size)
        ipaddress.IPv4Network(args.service_cluster_ip_range)
        parse_port_range(args.service_node_port_range)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    return Settings(state_root=args.state_root.absolute(), run_root=args.run_root.absolute(),
                    cgroup_parent=args.cgroup_parent, network_name=args.network_name, bridge=args.bridge,
                    subnet=args.subnet, node_name=args.node_name, api_port=args.api_port, server=args.server,
                    backoff_base=args.backoff_base, backoff_cap=args.backoff_cap, node_grace=args.node_grace,
                    pod_eviction_timeout=args.pod_eviction_timeout, api_address=args.api_address,
                    warm_sandboxes=args.warm_sandboxes, client_kubeconfig=args.kubeconfig,
                    warm_gvisor_sandboxes=args.warm_gvisor_sandboxes,
                    runsc_network=args.runsc_network, runsc_platform=args.runsc_platform,
                    write_kubeconfig=Path(args.write_kubeconfig).absolute() if args.write_kubeconfig else None,
                    max_image_size=args.max_image_size,
                    imagefs_min_available=args.imagefs_min_available,
                    pod_pids_limit=args.pod_pids_limit, max_pods=args.max_pods,
                    eviction_hard=args.eviction_hard, housekeeping_interval=args.housekeeping_interval,
                    metrics_interval=args.metrics_interval,
                    eviction_pressure_transition_period=args.eviction_pressure_transition_period,
                    seccomp_profile_root=Path(args.seccomp_profile_root).absolute() if args.seccomp_profile_root
                    else None, cluster_cidr=args.cluster_cidr, node_cidr_mask_size=args.node_cidr_mask_size,
                    # `up` and `controllers` take it; other verbs never run node IPAM.
                    allocate_node_cidrs=getattr(args, "allocate_node_cidrs", True), node_ip=args.node_ip,
                    etcd_servers=tuple(u.strip() for u in args.etcd_servers.split(",") if u.strip()),
                    etcd_prefix=args.etcd_prefix, etcd_compaction_interval=args.etcd_compaction_interval,
                    service_cluster_ip_range=args.service_cluster_ip_range,
                    service_node_port_range=args.service_node_port_range, cluster_dns=args.cluster_dns,
                    cluster_domain=args.cluster_domain, proxy_chain_prefix=args.proxy_chain_prefix,
                    cluster_dns_upstreams=args.cluster_dns_upstreams)


def parse_size(text: str) -> int:
    """Bytes, as a Kubernetes quantity: 500Mi, 20Gi, 1G or plain bytes."""
    try:
        value = int(parse_quantity(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: not a quantity of bytes: {e}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


def parse_percent(text: str) -> float:
    """A fraction of a filesystem, as the kubelet's thresholds write it: "15%"."""
    try:
        value = float(text.removesuffix("%")) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want a percentage such as 15%") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want a percentage from 0% to below 100%")
    return value
