"""A Pod and its containers in the runtime's CRI-shaped terms (the kubelet's
kuberuntime_sandbox.go and kuberuntime_container.go)."""
from __future__ import annotations

import posixpath
from pathlib import Path

from podbay.agent.config import AgentConfig
from podbay.agent.envvars import EnvError, PodFacts, container_argv, container_env, merge_image_env
from podbay.agent.runtimeview import (
    CONTAINER_KIND, CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID, RESTART_COUNT, SANDBOX_ATTEMPT, SPEC_IMAGE,
)
from podbay.api import Container, EphemeralContainer, Pod, SeccompProfile
from podbay.api.models import is_restartable_init
from podbay.api.quantity import parse_quantity
from podbay.api.resources import pod_limits
from podbay.runtime import cgroups
from podbay.runtime.files import ParsedFile
from podbay.runtime.images import Image
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, DNSConfig, HostAlias, LinuxContainerResources, LinuxContainerSecurity,
    Mount, PodSandboxConfig, PodSandboxMetadata, PortMapping, ProfileType, SecurityProfile,
)
from podbay.runtime.volumes import sub_path

__all__ = ["POD_UID", "sandbox_config", "container_config", "seccomp_profile"]

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32


def _hostname(pod: Pod) -> str:
    """spec.hostname, or the pod name cut to a 63-character label (the kubelet's GeneratePodHostNameAndDomain)."""
    name = pod.spec.hostname or pod.metadata.name or ""
    return name[:63].rstrip("-.")


def _fqdn(pod: Pod) -> str:
    if not pod.spec.subdomain:
        return ""
    return f"{_hostname(pod)}.{pod.spec.subdomain}.{pod.metadata.namespace}.svc.cluster.local"


# The host's resolv.conf by path, parsed once per change rather than once per pod, on the event loop.
_host_resolvs: dict[Path, ParsedFile[DNSConfig]] = {}


def host_resolv(path: Path = Path("/etc/resolv.conf")) -> DNSConfig:
    """The host's resolvers (the kubelet's getHostDNSConfig); a copy the caller may change."""
    dns = _host_resolvs.setdefault(path, ParsedFile(path, _parse_resolv)).read()
    if dns is None:
        return DNSConfig()
    return DNSConfig(list(dns.servers), list(dns.searches), list(dns.options))


def _parse_resolv(path: Path) -> DNSConfig:
    dns = DNSConfig()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return dns
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            dns.servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            dns.searches = fields[1:]
        elif fields[0] == "options":
            dns.options += fields[1:]
    return dns


def dns_config(pod: Pod, host: DNSConfig | None = None, cluster_dns: tuple[str, ...] = (),
               cluster_domain: str = "cluster.local") -> DNSConfig | None:
    """dnsPolicy and dnsConfig as the kubelet applies them (None: the host's resolv.conf as it is).
    ClusterFirst (ClusterFirstWithHostNet for a hostNetwork pod) uses `cluster_dns` with the search
    path <ns>.svc.<domain> svc.<domain> <domain> before the host's, and ndots:5; without a cluster
    DNS, or for a hostNetwork pod with ClusterFirst, it falls back to Default as the kubelet does."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    extra = pod.spec.dns_config
    cluster_first = bool(cluster_dns) and (
        policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not pod.spec.host_network))
    if cluster_first:
        resolv = host or host_resolv()
        base = DNSConfig(list(cluster_dns), [f"{pod.metadata.namespace}.svc.{cluster_domain}",
                                             f"svc.{cluster_domain}", cluster_domain, *resolv.searches], ["ndots:5"])
    elif policy != "None" and extra is None:
        return None
    else:
        base = DNSConfig() if policy == "None" else (host or host_resolv())
    if extra is None:
        return base
    servers = list(dict.fromkeys(base.servers + extra.nameservers))[:MAX_NAMESERVERS]
    searches = list(dict.fromkeys(base.searches + extra.searches))[:MAX_SEARCHES]
    options: dict[str, str | None] = {}
    for opt in base.options:
        name, _, value = opt.partition(":")
        options[name] = value or None
    for option in extra.options:
        options[option.name or ""] = option.value
    return DNSConfig(servers, searches, [f"{k}:{v}" if v else k for k, v in options.items() if k])


def sandbox_config(pod: Pod, attempt: int, config: AgentConfig, runtime_handler: str = "") -> PodSandboxConfig:
    host_network = bool(pod.spec.host_network)
    ports = [] if host_network else [
        PortMapping(container_port=p.container_port, host_port=p.host_port, protocol=p.protocol or "TCP",
                    host_ip=p.host_ip or "")
        for c in pod.spec.init_containers + pod.spec.containers for p in c.ports if p.host_port]
    sc = pod.spec.security_context
    milli = sum(int(parse_quantity(c.resources.requests["cpu"]) * 1000)
                for c in pod.spec.containers if c.resources and "cpu" in c.resources.requests)
    return PodSandboxConfig(
        metadata=PodSandboxMetadata(pod.metadata.name or "", pod.metadata.namespace or "default",
                                    pod.metadata.uid or "", attempt),
        hostname=_hostname(pod),
        dns=dns_config(pod, cluster_dns=config.cluster_dns, cluster_domain=config.cluster_domain),
        host_aliases=[HostAlias(a.ip, list(a.hostnames)) for a in pod.spec.host_aliases],
        port_mappings=ports,
        labels={POD_NAME: pod.metadata.name or "", POD_NAMESPACE: pod.metadata.namespace or "",
                POD_UID: pod.metadata.uid or "", SANDBOX_ATTEMPT: str(attempt)},
        annotations=dict(pod.metadata.annotations),
        host_network=host_network,
        host_ipc=bool(pod.spec.host_ipc),
        host_pid=bool(pod.spec.host_pid),
        share_process_namespace=bool(pod.spec.share_process_namespace),
        sysctls={s.name: s.value for s in (sc.sysctls if sc else [])},
        subdomain_fqdn=_fqdn(pod),
        cpu_shares=cgroups.cpu_shares(milli) if milli else None,
        # As the kubelet: only a positive podPidsLimit limits; -1 (or 0) leaves pids.max at max.
        pids_limit=config.pod_pids_limit if config.pod_pids_limit > 0 else None,
        memory_limit=pod_memory_limit(pod),
        runtime_handler=runtime_handler,
    )


def pod_memory_limit(pod: Pod) -> int | None:
    """The kubelet's ResourceConfigForPod: the pod's effective memory limit (main and sidecar
    containers summed, or the largest init step, plus the overhead), only when every container
    declares one; a pod with an unlimited container gets no pod-level limit."""
    if not all(c.resources and parse_quantity(c.resources.limits.get("memory", "0")) > 0
               for c in pod.spec.init_containers + pod.spec.containers):
        return None
    return int(pod_limits(pod)["memory"])


def _kind(pod: Pod, container: Container, init: bool) -> str:
    if isinstance(container, EphemeralContainer):
        return "ephemeral"
    if not init:
        return "main"
    return "sidecar" if is_restartable_init(container) else "init"


def seccomp_profile(pod: Pod, container: Container, root: Path) -> SecurityProfile:
    """The container's seccompProfile, else the pod's, else Unconfined (the kubelet without
    --seccomp-default); a Localhost profile is a file under `root`, as the kubelet joins it."""
    csc, psc = container.security_context, pod.spec.security_context
    field: SeccompProfile | None = (csc.seccomp_profile if csc is not None and csc.seccomp_profile is not None
                                    else psc.seccomp_profile if psc is not None else None)
    if field is None:
        return SecurityProfile(ProfileType.UNCONFINED)
    kind = ProfileType(field.type)
    if kind is not ProfileType.LOCALHOST or not field.localhost_profile:
        return SecurityProfile(kind)  # a Localhost without a file fails in the runtime (CreateContainerError)
    return SecurityProfile(kind, posixpath.normpath(f"{root}/{field.localhost_profile}"))


def _first(container_value: int | None, pod_value: int | None) -> int | None:
    """The container's security context wins over the pod's."""
    return container_value if container_value is not None else pod_value


def _security(pod: Pod, container: Container, image_user: str, seccomp_root: Path) -> LinuxContainerSecurity:
    psc = pod.spec.security_context
    csc = container.security_context
    caps = csc.capabilities if csc is not None else None
    groups = list(psc.supplemental_groups) if psc is not None else []
    if psc is not None and psc.fs_group is not None:
        groups.append(psc.fs_group)
    privileged = bool(csc.privileged) if csc is not None else False
    ape = csc.allow_privilege_escalation if csc is not None else None
    return LinuxContainerSecurity(
        run_as_user=_first(csc.run_as_user if csc is not None else None, psc.run_as_user if psc is not None else None),
        run_as_group=_first(csc.run_as_group if csc is not None else None, psc.run_as_group if psc is not None else None),
        run_as_username=image_user,
        supplemental_groups=groups, privileged=privileged,
        readonly_rootfs=bool(csc.read_only_root_filesystem) if csc is not None else False,
        add_capabilities=list(caps.add) if caps else [], drop_capabilities=list(caps.drop) if caps else [],
        no_new_privs=ape is False, seccomp=seccomp_profile(pod, container, seccomp_root))


def _resources(container: Container) -> LinuxContainerResources:
    r = container.resources
    if r is None:
        return LinuxContainerResources(cpu_shares=2)
    cpu_request = int(parse_quantity(r.requests["cpu"]) * 1000) if "cpu" in r.requests else 0
    cpu_limit = int(parse_quantity(r.limits["cpu"]) * 1000) if "cpu" in r.limits else 0
    memory = int(parse_quantity(r.limits["memory"])) if "memory" in r.limits else 0
    return LinuxContainerResources(cpu_period=100_000 if cpu_limit else 0, cpu_quota=cgroups.cpu_quota(cpu_limit),
                                   cpu_shares=cgroups.cpu_shares(cpu_request), memory_limit_in_bytes=memory)


def _mounts(container: Container, volume_paths: dict[str, Path]) -> list[Mount]:
    mounts = []
    for vm in container.volume_mounts:
        source = volume_paths[vm.name]
        if vm.sub_path:
            source = sub_path(source, vm.sub_path)
        propagation = {"HostToContainer": "rslave", "Bidirectional": "rshared"}.get(vm.mount_propagation or "", "private")
        mounts.append(Mount(vm.mount_path, str(source), bool(vm.read_only), propagation.removeprefix("r")))
    return mounts


def container_config(pod: Pod, container: Container, *, attempt: int, init: bool, pod_ip: str, host_ip: str,
                     image_info: Image, seccomp_root: Path,
                     volume_paths: dict[str, Path] | None = None, pid_target_id: str = "",
                     service_env: dict[str, str] | None = None) -> ContainerConfig:
    """`pid_target_id`: the running target of an ephemeral container, whose PID namespace it joins."""
    image_config = image_info.config
    env, _ = container_env(pod, container, PodFacts(pod_ip=pod_ip, host_ip=host_ip, service_env=service_env))
    argv = container_argv(container, image_config.entrypoint, image_config.cmd, env)
    if not argv:
        raise EnvError("no command specified: the container has no command and its image none")
    stop_signal = (container.lifecycle.stop_signal if container.lifecycle and container.lifecycle.stop_signal
                   else image_config.stop_signal) or "SIGTERM"
    return ContainerConfig(
        metadata=ContainerMetadata(container.name, attempt),
        image=container.image or "",
        argv=argv,
        env=merge_image_env(image_config.env, env),
        working_dir=container.working_dir or image_config.working_dir or "",
        mounts=_mounts(container, volume_paths or {}),
        labels={POD_NAME: pod.metadata.name or "", POD_NAMESPACE: pod.metadata.namespace or "",
                POD_UID: pod.metadata.uid or "", CONTAINER_NAME: container.name, RESTART_COUNT: str(attempt),
                SPEC_IMAGE: container.image or "", CONTAINER_KIND: _kind(pod, container, init)},
        annotations={},
        resources=_resources(container),
        security=_security(pod, container, image_config.user, seccomp_root),
        tty=bool(container.tty),
        stdin=bool(container.stdin),
        stdin_once=bool(container.stdin_once),
        stop_signal=stop_signal,
        termination_message_path=container.termination_message_path or "/dev/termination-log",
        pid_target_id=pid_target_id,
    )
