"""This machine as a Node object: capacity, addresses, nodeInfo, the Ready condition, images."""
from __future__ import annotations

import os
import platform
import uuid
from datetime import datetime
from pathlib import Path
from typing import Iterable

from podbay.agent.config import AgentConfig
from podbay.api import (
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeRuntimeHandler,
    NodeRuntimeHandlerFeatures, NodeSpec, NodeStatus, NodeSystemInfo, ObjectMeta,
)
from podbay.runtime.images import Image

# The kubelet's defaults: --node-status-max-images, and names kept per image.
MAX_NODE_IMAGES = 50
MAX_NAMES_PER_IMAGE = 5


def machine_capacity(state_root: Path, max_pods: int) -> dict[str, str]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    probe = state_root if state_root.exists() else Path("/")
    st = os.statvfs(probe)
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{mem_kib}Ki",
            "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki", "pods": str(max_pods)}


def _machine_id() -> str:
    for p in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        if p.exists():
            return p.read_text().strip()
    return uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex


def ready_condition(now: datetime, since: datetime) -> NodeCondition:
    return NodeCondition(type="Ready", status="True", reason="KubeletReady",
                         message="podbay agent is posting ready status", last_heartbeat_time=now,
                         last_transition_time=since)


def node_status(config: AgentConfig, port: int, now: datetime, ready_since: datetime) -> NodeStatus:
    capacity = machine_capacity(config.state_root, config.max_pods)
    os_release = {}
    osr = Path("/etc/os-release")
    if osr.exists():
        for line in osr.read_text().splitlines():
            k, _, v = line.partition("=")
            os_release[k] = v.strip('"')
    return NodeStatus(
        capacity=capacity,
        allocatable=dict(capacity),
        conditions=[ready_condition(now, ready_since)],
        addresses=[NodeAddress(type="InternalIP", address=config.node_address),
                   NodeAddress(type="Hostname", address=config.node_name)],
        daemon_endpoints=NodeDaemonEndpoints(kubelet_endpoint=DaemonEndpoint(Port=port)),
        node_info=NodeSystemInfo(machineID=_machine_id(), systemUUID=_machine_id(), bootID=_boot_id(),
                                 kernel_version=platform.release(), os_image=os_release.get("PRETTY_NAME", "Linux"),
                                 container_runtime_version="crun://podbay", kubelet_version="v1.32.0-podbay",
                                 kube_proxy_version="", operating_system="linux", architecture=_arch()),
    )


def node_images(images: list[Image]) -> list[ContainerImage]:
    """status.images as the kubelet reports them: the largest first, each named by its repo
    digests then tags, with its size (here the unpacked size, what it takes on disk)."""
    largest = sorted(images, key=lambda i: i.size, reverse=True)[:MAX_NODE_IMAGES]
    return [ContainerImage(names=[*i.repo_digests, *i.repo_tags][:MAX_NAMES_PER_IMAGE] or [i.id], size_bytes=i.size)
            for i in largest]


def node_runtime_handlers(names: Iterable[str]) -> list[NodeRuntimeHandler]:
    """status.runtimeHandlers as the kubelet reports its runtime's: each handler name a
    RuntimeClass may give ("" the default), sorted. Neither feature is podbay's yet: no user
    namespaces (hostUsers: false) and no recursive read-only mounts."""
    return [NodeRuntimeHandler(name=n, features=NodeRuntimeHandlerFeatures(recursive_read_only_mounts=False,
                                                                          user_namespaces=False))
            for n in sorted(set(names))]


def _boot_id() -> str:
    p = Path("/proc/sys/kernel/random/boot_id")
    return p.read_text().strip() if p.exists() else ""


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def node_object(config: AgentConfig, port: int, now: datetime) -> Node:
    labels = {"kubernetes.io/hostname": config.node_name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": _arch(), **config.labels}
    spec = NodeSpec(podCIDR=config.pod_cidr, podCIDRs=[config.pod_cidr]) if config.pod_cidr else NodeSpec()
    return Node(metadata=ObjectMeta(name=config.node_name, labels=labels), spec=spec,
                status=node_status(config, port, now, now))
