"""Where the local server keeps its state and how verbs reach it.

Every path and name can be set by a flag or a PODBAY_* environment variable,
so tests and several installations never share state.
"""
from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from podbay.agent.eviction import DEFAULT_EVICTION_HARD, parse_thresholds
from podbay.runtime.config import RuntimeConfig


@dataclass(frozen=True)
class Settings:
    state_root: Path
    run_root: Path
    cgroup_parent: str
    network_name: str
    bridge: str
    subnet: str
    node_name: str
    api_port: int  # 0: no TCP listener
    server: str | None  # a remote API; None: this machine's socket
    backoff_base: float = 10.0  # the kubelet's restart back-off: 10 s doubling up to 300 s
    backoff_cap: float = 300.0
    node_grace: float = 40.0  # a node silent this long becomes Ready=Unknown
    pod_eviction_timeout: float = 300.0  # ... and this much later its pods are deleted
    node_monitor_period: float = 5.0
    api_address: str = "127.0.0.1"  # beyond loopback, clients need the token in <state_root>/api-token
    warm_sandboxes: int = 1
    oci_runtime: str = "crun"
    seccomp_profile_root: Path | None = None  # Localhost seccomp profiles; None: <state_root>/seccomp
    pod_pids_limit: int = 4096  # pids.max of each pod's cgroup; -1: none
    eviction_hard: str = DEFAULT_EVICTION_HARD
    housekeeping_interval: float = 10.0
    eviction_pressure_transition_period: float = 300.0

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
    def server_url(self) -> str:
        return self.server or f"unix://{self.socket_path}"

    def runtime_config(self) -> RuntimeConfig:
        return RuntimeConfig(state_root=self.state_root, run_root=self.run_root, cgroup_parent=self.cgroup_parent,
                             network_name=self.network_name, bridge=self.bridge, subnet=self.subnet,
                             warm_sandboxes=self.warm_sandboxes, oci_runtime=self.oci_runtime)

    def as_args(self) -> list[str]:
        """The global flags that name this installation, for a child `podbay` process."""
        return ["--state-root", str(self.state_root), "--run-root", str(self.run_root),
                "--cgroup-parent", self.cgroup_parent, "--network", self.network_name, "--bridge", self.bridge,
                "--subnet", self.subnet, "--node-name", self.node_name, "--api-port", str(self.api_port),
                "--backoff-base", str(self.backoff_base), "--backoff-cap", str(self.backoff_cap),
                "--node-grace", str(self.node_grace), "--pod-eviction-timeout", str(self.pod_eviction_timeout),
                "--api-address", self.api_address, "--warm-sandboxes", str(self.warm_sandboxes),
                "--pod-pids-limit", str(self.pod_pids_limit), "--eviction-hard", self.eviction_hard,
                "--housekeeping-interval", str(self.housekeeping_interval),
                "--eviction-pressure-transition-period", str(self.eviction_pressure_transition_period),
                *(["--seccomp-profile-root", str(self.seccomp_profile_root)] if self.seccomp_profile_root else [])]


def _eviction_hard(text: str) -> str:
    try:
        parse_thresholds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    g = parser.add_argument_group("installation")
    g.add_argument("--state-root", default=env("PODBAY_STATE_ROOT", "/var/lib/podbay"), type=Path)
    g.add_argument("--run-root", default=env("PODBAY_RUN_ROOT", "/run/podbay"), type=Path)
    g.add_argument("--cgroup-parent", default=env("PODBAY_CGROUP_PARENT", "podbay"))
    g.add_argument("--network", dest="network_name", default=env("PODBAY_NETWORK", "podbay"))
    g.add_argument("--bridge", default=env("PODBAY_BRIDGE", "podbay0"))
    g.add_argument("--subnet", default=env("PODBAY_SUBNET", "10.244.0.0/24"))
    g.add_argument("--node-name", default=env("PODBAY_NODE_NAME", socket.gethostname().lower()))
    g.add_argument("--api-port", type=int, default=int(env("PODBAY_API_PORT", "0")),
                   help="also serve the API on 127.0.0.1:PORT (kubectl, the Python client)")
    g.add_argument("--backoff-base", type=float, default=float(env("PODBAY_BACKOFF_BASE", "10")),
                   help="first restart back-off in seconds (doubles per restart)")
    g.add_argument("--backoff-cap", type=float, default=float(env("PODBAY_BACKOFF_CAP", "300")))
    g.add_argument("--api-address", default=env("PODBAY_API_ADDRESS", "127.0.0.1"),
                   help="address for --api-port; any non-loopback address requires the bearer token that "
                        "podbay writes to <state-root>/api-token (mode 0600)")
    g.add_argument("--node-grace", type=float, default=float(env("PODBAY_NODE_GRACE", "40")),
                   help="seconds without a node heartbeat before the node is Ready=Unknown")
    g.add_argument("--pod-eviction-timeout", type=float, default=float(env("PODBAY_POD_EVICTION_TIMEOUT", "300")),
                   help="seconds a node stays Unknown before its pods are deleted")
    g.add_argument("--warm-sandboxes", type=int, default=int(env("PODBAY_WARM_SANDBOXES", "1")),
                   help="pod sandboxes (namespaces and network) kept ready so the next pod starts sooner; "
                        "0 saves their memory and IP on small machines")
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
    g.add_argument("--eviction-pressure-transition-period", type=float,
                   default=float(env("PODBAY_EVICTION_PRESSURE_TRANSITION_PERIOD", "300")),
                   help="seconds a pressure condition stays True after its threshold was last met (the kubelet's)")
    g.add_argument("--oci-runtime", default=env("PODBAY_OCI_RUNTIME", "crun"),
                   help="the OCI runtime conmon runs containers with: crun (default) or runc, a name or a path")
    g.add_argument("--server", default=env("PODBAY_SERVER"),
                   help="the API server to talk to (default: this machine's socket)")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(state_root=args.state_root.absolute(), run_root=args.run_root.absolute(),
                    cgroup_parent=args.cgroup_parent, network_name=args.network_name, bridge=args.bridge,
                    subnet=args.subnet, node_name=args.node_name, api_port=args.api_port, server=args.server,
                    backoff_base=args.backoff_base, backoff_cap=args.backoff_cap, node_grace=args.node_grace,
                    pod_eviction_timeout=args.pod_eviction_timeout, api_address=args.api_address,
                    warm_sandboxes=args.warm_sandboxes, pod_pids_limit=args.pod_pids_limit,
                    eviction_hard=args.eviction_hard, housekeeping_interval=args.housekeeping_interval,
                    eviction_pressure_transition_period=args.eviction_pressure_transition_period,
                    seccomp_profile_root=Path(args.seccomp_profile_root).absolute() if args.seccomp_profile_root
                    else None)
