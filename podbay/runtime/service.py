"""The runtime service: CRI's RuntimeService and ImageService as Python methods, over the
sandboxes (`sandboxes.py`, with the warm pool of `warmpool.py`), their containers
(`containers.py`, with the exits of `exits.py` and the bundles of `bundles.py`) and the paths
into those (`execs.py`).

State lives in files (records under the state root, bundles and namespace
files under the run root), so a fresh process lists every sandbox and
container and their states, and a restarted agent re-adopts them.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import AsyncIterator

from podbay.api.errors import NotFound
from podbay.runtime import cgroups, hostgw
from podbay.runtime.attach import AttachSession
from podbay.runtime.config import RuntimeConfig, prepare_roots
from podbay.runtime.containers import Containers
from podbay.runtime.diskusage import disk_usage
from podbay.runtime.execs import Execs
from podbay.runtime.execsession import ExecSession
from podbay.runtime.gvisor import GVISOR_HANDLER, GVisorConfig, GVisorHandler
from podbay.runtime.handler import DEFAULT_HANDLER, OCIHandler, RuntimeHandler
from podbay.runtime.host import check_host
from podbay.runtime.images import Image, ImageLimits, ImageStore, pull
from podbay.runtime.network import NetworkConfig, NetworkError, PodNetwork
from podbay.runtime.oci import OCIRuntime
from podbay.runtime.sandboxes import Sandboxes
from podbay.runtime.sealedbinary import runtime_path as sealed_runtime_path
from podbay.runtime.seccompbpf import CompiledFilters
from podbay.runtime.types import (
    ContainerConfig, ContainerState, ContainerStats, ContainerStatus, ContainerUsage, PodSandboxConfig,
    PodSandboxStats, PodSandboxStatus, SandboxState,
)
from podbay.runtime.volumes import VolumeSource, pod_volumes_dir, remove_pod_volumes, setup_volume


class RuntimeService:
    """The CRI-facing verbs; where one verb spans both, the sandbox's containers go first."""

    def __init__(self, config: RuntimeConfig, images: ImageStore | None = None) -> None:
        self.config = config
        prepare_roots(config)
        self.images = images or ImageStore(config.images_root, ImageLimits(config.max_image_size,
                                                                           config.imagefs_min_available))
        runtime_path = shutil.which(config.oci_runtime) or config.oci_runtime
        self.oci = OCIRuntime(sealed_runtime_path(runtime_path), config.conmon, config.crun_root, config.exits_root,
                              fifo_start=Path(config.oci_runtime).name == "crun")
        self.handlers = self._make_handlers()
        self.network = PodNetwork(NetworkConfig(
            name=config.network_name, bridge=config.bridge, subnet=config.subnet, conf_dir=config.cni_dir,
            bin_dirs=config.cni_bin_dirs, cache_dir=config.state_root / "cni" / "cache",
            cluster_cidr=config.cluster_cidr))
        self.sandboxes = Sandboxes(config, self.handlers, self.network)
        self.containers = Containers(config, self.images, self.oci, self.sandboxes, self._sandbox_network_ready)
        self.execs = Execs(self.containers)

    def _make_handlers(self) -> dict[str, RuntimeHandler]:
        """The handlers by the names RuntimeClasses give: the OCI runtime as containerd's default
        ("" or "runc") and by its own name, and "runsc" where runsc is installed."""
        name = Path(self.config.oci_runtime).name
        default = OCIHandler(name, self.oci, CompiledFilters(self.config.crun_root) if name == "crun" else None)
        handlers: dict[str, RuntimeHandler] = {"": default, DEFAULT_HANDLER: default, default.name: default}
        runsc = shutil.which(self.config.runsc) if self.config.runsc else None
        if runsc:
            handlers[GVISOR_HANDLER] = GVisorHandler(GVisorConfig(
                runsc, self.config.run_root / "runsc", self.config.exits_root, platform=self.config.runsc_platform,
                network=self.config.runsc_network))
        return handlers

    async def start(self) -> None:
        """Checks the host and prepares the roots; watches containers that are still running."""
        check_host(self.config.oci_runtime, self.config.conmon)
        prepare_roots(self.config)  # again: a purging shutdown removed the run root's directories
        self.network.ensure_conflist()
        await self.network.ensure_masquerade()
        self.sandboxes.load()
        self.containers.load()
        await self.containers.remove_unrecorded()
        await self.containers.adopt_started()
        await self.sandboxes.remove_unowned()
        self.sandboxes.warm.refill()
        self.containers.watch_running()

    async def wait_warm(self) -> None:
        """Until the warm sandboxes being made are ready (they are made in the background)."""
        await self.sandboxes.warm.wait()

    # -- sandboxes -------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        return await self.sandboxes.run(config)

    async def _sandbox_network_ready(self, sandbox_id: str) -> None:
        await self.sandboxes.network_ready(sandbox_id, self.stop_pod_sandbox)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stops the sandbox's containers and releases its network and namespaces (CRI's StopPodSandbox)."""
        self.sandboxes.get(sandbox_id)
        for c in self.containers.records():
            if c.sandbox_id == sandbox_id and self.containers.state(c) is ContainerState.RUNNING:
                await self.containers.stop(c.id, 0)
        await self.sandboxes.stop(sandbox_id)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        try:
            record = self.sandboxes.get(sandbox_id)
        except NotFound:
            return
        for c in self.containers.records():
            if c.sandbox_id == sandbox_id:
                await self.containers.remove(c.id)
        if record.state is SandboxState.READY:
            await self.stop_pod_sandbox(sandbox_id)
        self.sandboxes.remove(sandbox_id)

    async def pod_sandbox_stats(self, sandbox_id: str) -> PodSandboxStats:
        return self.sandboxes.stats(sandbox_id)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        return self.sandboxes.status(self.sandboxes.get(sandbox_id))

    async def list_pod_sandboxes(self, label_selector: dict[str, str] | None = None) -> list[PodSandboxStatus]:
        """Every sandbox, or those whose labels include `label_selector` (CRI's filter)."""
        return self.sandboxes.statuses(label_selector)

    async def update_pod_sandbox(self, sandbox_id: str, labels: dict[str, str], annotations: dict[str, str],
                                 hostname: str | None = None) -> None:
        """Hands a sandbox to another pod (HyperContainer's replace): new owner labels and
        hostname, the same namespaces and IP."""
        await self.sandboxes.update(sandbox_id, labels, annotations, hostname)

    async def update_pod_sandbox_resources(self, sandbox_id: str, memory_limit: int | None) -> None:
        """The pod-level limits of a sandbox handed to another pod (CRI's UpdatePodSandboxResources)."""
        self.sandboxes.update_resources(sandbox_id, memory_limit)

    # -- containers ------------------------------------------------------------

    async def make_rootfs_ahead(self, image: str) -> str:
        """A container's rootfs made before its CreateContainer (runtime/rootfsahead.py)."""
        return await self.containers.ahead.make(image)

    async def release_rootfs(self, rootfs: str) -> None:
        self.containers.ahead.release(rootfs)

    async def create_container(self, sandbox_id: str, config: ContainerConfig, rootfs_ahead: str | None = None) -> str:
        return await self.containers.create(sandbox_id, config, rootfs_ahead)

    async def start_container(self, container_id: str) -> None:
        await self.containers.start(container_id, self.sandboxes.warm.container_started)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        await self.containers.stop(container_id, timeout)

    async def remove_container(self, container_id: str) -> None:
        await self.containers.remove(container_id)

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self.containers.status(container_id)

    async def list_containers(self, sandbox_id: str | None = None,
                              label_selector: dict[str, str] | None = None) -> list[ContainerStatus]:
        return self.containers.statuses(sandbox_id, label_selector)

    async def container_log_path(self, container_id: str) -> str:
        return self.containers.get(container_id).log_path

    def exit_events(self) -> AsyncIterator[str]:
        """Ids of containers as they exit."""
        return self.containers.exits.events()

    async def wait_container(self, container_id: str) -> ContainerStatus:
        return await self.containers.wait(container_id)

    async def container_stats(self, container_id: str) -> ContainerStats:
        return await self.containers.stats(container_id)

    async def container_usage(self, container_id: str) -> ContainerUsage:
        return self.containers.usage(container_id)

    # -- exec --------------------------------------------------------------------

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float | None = None
                        ) -> tuple[int, bytes, bytes]:
        """Runs a command in the container; a command that overruns `timeout` is killed."""
        return await self.execs.exec_sync(container_id, argv, timeout)

    async def exec(self, container_id: str, argv: list[str], *, tty: bool = False, stdin: bool = False,
                   stdout: bool = True, stderr: bool = True) -> ExecSession:
        """A streamed exec: the streams asked for (with `tty`, one terminal for all); the
        caller must `close()` it."""
        return await self.execs.exec(container_id, argv, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)

    async def attach(self, container_id: str, *, tty: bool = False, stdin: bool = False, stdout: bool = True,
                     stderr: bool = True) -> AttachSession:
        """The running container's own stdio through conmon; the caller must `close()` it."""
        return await self.execs.attach(container_id, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)

    # -- volumes -----------------------------------------------------------------

    async def setup_pod_volumes(self, pod_uid: str, sources: dict[str, VolumeSource]) -> dict[str, Path]:
        """The pod's volumes on this node (idempotent), by name: host paths to bind-mount."""
        return {name: setup_volume(self.config.pods_root, pod_uid, name, source) for name, source in sources.items()}

    async def pod_volume_usage(self, pod_uid: str) -> dict[str, int]:
        """Bytes each of the pod's disk-backed volumes takes, by name; volumes in memory (tmpfs)
        are left out, as their size is bounded by the mount and counted as memory."""
        volumes = pod_volumes_dir(self.config.pods_root, pod_uid)

        def measure() -> dict[str, int]:
            if not volumes.is_dir():
                return {}
            # A tmpfs is the only thing mounted here, so a device apart from the parent's says it:
            # reading the mount table per volume made each housekeeping pass quadratic in the pods.
            return {d.name: disk_usage(d) for d in volumes.iterdir() if d.is_dir() and not os.path.ismount(d)}
        return await asyncio.to_thread(measure)

    async def remove_pod_volumes(self, pod_uid: str) -> None:
        remove_pod_volumes(self.config.pods_root, pod_uid)

    # -- images ------------------------------------------------------------------

    async def pull_image(self, ref: str) -> Image:
        return await pull(self.images, ref)

    async def image_status(self, ref: str) -> Image | None:
        return self.images.image_status(ref)

    async def list_images(self) -> list[Image]:
        return self.images.list_images()

    async def remove_image(self, ref: str) -> None:
        self.images.remove_image(ref)

    async def image_fs_info(self) -> tuple[int, int]:
        """(used, capacity) in bytes of the filesystem that holds the images (CRI's ImageFsInfo)."""
        st = os.statvfs(self.config.images_root)
        return (st.f_blocks - st.f_bavail) * st.f_frsize, st.f_blocks * st.f_frsize

    # -- shutdown ----------------------------------------------------------------

    async def shutdown(self, *, purge: bool = False) -> None:
        """Stops watching. With `purge` also removes every sandbox and container and what
        the network made on the host (the bridge); otherwise containers keep running."""
        self.containers.exits.stop()
        self.containers.ahead.release_all()
        await self.sandboxes.warm.drop()
        if purge:
            await self._purge()

    async def _purge(self) -> None:
        for sb in await self.list_pod_sandboxes():
            await self.remove_pod_sandbox(sb.id)
        await self.sandboxes.remove_unowned()
        for c in self.containers.records():
            await self.remove_container(c.id)
        if self.config.pods_root.is_dir():
            for pod_dir in self.config.pods_root.iterdir():
                remove_pod_volumes(self.config.pods_root, pod_dir.name)
        await self.network.shutdown()
        if self.config.cluster_cidr is not None:
            # The agent's host-gw routes lead to pods of the cluster this host is leaving. Not
            # host_masquerade: a purge may not know the subnet node IPAM gave.
            if errors := await hostgw.remove_owned_routes():
                raise NetworkError("; ".join(errors))
        for d in (self.config.bundles_root, self.config.netns_root, self.config.exits_root,
                  self.config.crun_root, self.config.run_root / "sandboxes", self.config.run_root / "runsc"):
            shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            cgroups.remove_cgroup(self.config.cgroup_parent)
