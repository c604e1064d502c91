"""The runtime's vocabulary, shaped like Kubernetes' CRI messages."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class SandboxState(str, Enum):
    READY = "SANDBOX_READY"
    NOTREADY = "SANDBOX_NOTREADY"


class ContainerState(str, Enum):
    CREATED = "CONTAINER_CREATED"
    RUNNING = "CONTAINER_RUNNING"
    EXITED = "CONTAINER_EXITED"
    UNKNOWN = "CONTAINER_UNKNOWN"


@dataclass
class PodSandboxMetadata:
    name: str
    namespace: str
    uid: str
    attempt: int = 0


@dataclass
class PortMapping:
    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass
class DNSConfig:
    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


@dataclass
class HostAlias:
    ip: str
    hostnames: list[str]


@dataclass
class PodSandboxConfig:
    metadata: PodSandboxMetadata
    hostname: str
    dns: DNSConfig | None = None  # None: the host's resolv.conf
    host_aliases: list[HostAlias] = field(default_factory=list)
    port_mappings: list[PortMapping] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    host_ipc: bool = False
    host_pid: bool = False
    share_process_namespace: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    subdomain_fqdn: str = ""  # hostname.subdomain.namespace.svc.cluster.local when a subdomain is set
    cpu_shares: int | None = None  # the pod cgroup's share: sum of the requests
    pids_limit: int | None = None  # pids.max of the pod's cgroup (the kubelet's podPidsLimit); None: max
    # The pod cgroup's memory limit (the kubelet's: every container's limit summed, plus the
    # overhead); None when a container has none.
    memory_limit: int | None = None
    runtime_handler: str = ""  # the RuntimeClass's handler; "": the default (crun)


@dataclass
class PodSandboxStatus:
    id: str
    metadata: PodSandboxMetadata
    state: SandboxState
    created_at: datetime
    ip: str | None
    ips: list[str]
    labels: dict[str, str]
    annotations: dict[str, str]
    host_network: bool
    netns_path: str | None
    runtime_handler: str = ""
    notes: list[str] = field(default_factory=list)  # what the handler reported at start (a fallback taken)


@dataclass
class Mount:
    container_path: str
    host_path: str
    readonly: bool = False
    propagation: str = "private"


@dataclass
class LinuxContainerResources:
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    memory_limit_in_bytes: int = 0
    pids_limit: int = 0


class ProfileType(str, Enum):
    RUNTIME_DEFAULT = "RuntimeDefault"
    UNCONFINED = "Unconfined"
    LOCALHOST = "Localhost"


@dataclass
class SecurityProfile:
    """CRI's SecurityProfile, for seccomp."""

    profile_type: ProfileType = ProfileType.UNCONFINED
    localhost_ref: str = ""  # Localhost: the profile file's absolute path, resolved by the agent as the kubelet does


@dataclass
class LinuxContainerSecurity:
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_username: str = ""  # the image's User when no uid is given
    supplemental_groups: list[int] = field(default_factory=list)
    privileged: bool = False
    readonly_rootfs: bool = False
    add_capabilities: list[str] = field(default_factory=list)
    drop_capabilities: list[str] = field(default_factory=list)
    no_new_privs: bool = False
    masked_paths: list[str] | None = None  # None: the defaults
    readonly_paths: list[str] | None = None
    seccomp: SecurityProfile = field(default_factory=SecurityProfile)  # privileged: always unconfined


@dataclass
class ContainerMetadata:
    name: str
    attempt: int = 0


@dataclass
class ContainerConfig:
    metadata: ContainerMetadata
    image: str
    argv: list[str]  # command and args already combined with the image's Entrypoint and Cmd
    env: list[str] = field(default_factory=list)  # KEY=VALUE, image env merged
    working_dir: str = ""
    mounts: list[Mount] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    resources: LinuxContainerResources = field(default_factory=LinuxContainerResources)
    security: LinuxContainerSecurity = field(default_factory=LinuxContainerSecurity)
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False  # an attach's end of input ends the container's stdin for good
    stop_signal: str = "SIGTERM"
    termination_message_path: str = ""  # in the container; the runtime mounts a file it keeps there
    # CRI's NamespaceOption pid TARGET: the id of a running container whose PID namespace this one
    # joins (an ephemeral container's targetContainerName); "": the sandbox's choice.
    pid_target_id: str = ""


@dataclass
class ContainerStatus:
    id: str
    sandbox_id: str
    metadata: ContainerMetadata
    state: ContainerState
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    signal: int | None
    reason: str
    message: str
    image: str
    image_ref: str
    labels: dict[str, str]
    annotations: dict[str, str]
    log_path: str
    pid: int | None


class ContainerRuntimeError(Exception):
    """A runtime operation failed; the message carries the OCI runtime's words."""


@dataclass
class PodSandboxStats:
    """CRI's PodSandboxStats, the part the eviction manager ranks pods by."""

    id: str
    memory_working_set_bytes: int
    processes: int  # tasks in the pod's cgroup


@dataclass
class ContainerUsage:
    """CRI's ContainerStats' cpu and memory: what `kubectl top` reports, read from the container's cgroup."""

    id: str
    cpu_usage_core_nanoseconds: int | None  # cumulative; None: the cgroup is gone
    memory_working_set_bytes: int


@dataclass
class ContainerStats:
    """CRI's ContainerStats, the part the eviction manager reads: the disk its writable layer takes."""

    id: str
    writable_layer_bytes: int

