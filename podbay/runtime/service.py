"""The runtime service: CRI's RuntimeService and ImageService as Python methods.

State lives in files (records under the state root, bundles and namespace
files under the run root), so a fresh process lists every sandbox and
container and their states, and a restarted agent re-adopts them.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

from podbay.api.errors import NotFound
from podbay.runtime import cgroups
from podbay.runtime.attach import AttachSession, attach as attach_container
from podbay.runtime.config import RuntimeConfig, prepare_roots
from podbay.runtime.diskusage import disk_usage
from podbay.runtime.etcfiles import write_pod_etc
from podbay.runtime.execsession import ExecSession, start_exec
from podbay.runtime.files import write_json_atomic
from podbay.runtime.gvisor import GVISOR_BUNDLE, GVISOR_HANDLER, GVisorConfig, GVisorHandler
from podbay.runtime.handler import DEFAULT_HANDLER, OCIHandler, RuntimeHandler, SandboxSpec, no_runtime
from podbay.runtime.host import check_host
from podbay.runtime.images import Image, ImageLimits, ImageStore, pull
from podbay.runtime.images.devices import make_devices
from podbay.runtime.namespaces import pin_namespaces, start_pid_holder, stop_pid_holder, unpin_namespaces
from podbay.runtime import hostgw
from podbay.runtime.network import NetworkConfig, NetworkError, PodNetwork
from podbay.runtime.network import PortMapping as CNIPortMapping
from podbay.runtime.oci import OCIRuntime, process_start_time
from podbay.runtime.seccomp import load_profile
from podbay.runtime.spec import SandboxPaths, oci_spec
from podbay.runtime.syscalls import MS_NODEV, MS_NOSUID, is_mountpoint, mount, umount
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, ContainerRuntimeError, ContainerStats, ContainerState, ContainerUsage, ContainerStatus, Mount,
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStats, PodSandboxStatus, PortMapping, SandboxState,
)
from podbay.runtime.users import resolve_user
from podbay.runtime.volumes import VolumeSource, pod_volumes_dir, remove_pod_volumes, setup_volume

SHM_SIZE = 64 * 1024 * 1024
# A taken warm sandbox is replaced once a container has started in it, or after this pause if
# none does: refilling execs the CNI plugins, which would otherwise take the CPU from the pod that
# was just handed one while its containers are created.
WARM_REFILL_DELAY = 1.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _new_id() -> str:
    return secrets.token_hex(32)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class RuntimeService:
    def __init__(self, config: RuntimeConfig, images: ImageStore | None = None) -> None:
        self.config = config
        prepare_roots(config)
        self.images = images or ImageStore(config.images_root, ImageLimits(config.max_image_size,
                                                                           config.imagefs_min_available))
        runtime_path = shutil.which(config.oci_runtime) or config.oci_runtime
        self.oci = OCIRuntime(runtime_path, config.conmon, config.crun_root, config.exits_root)
        self.handlers = self._make_handlers()
        self.network = PodNetwork(NetworkConfig(
            name=config.network_name, bridge=config.bridge, subnet=config.subnet, conf_dir=config.cni_dir,
            bin_dirs=config.cni_bin_dirs, cache_dir=config.state_root / "cni" / "cache",
            cluster_cidr=config.cluster_cidr))
        self._exits: asyncio.Queue[str] = asyncio.Queue()
        self._warm_ips: dict[str, list[str]] = {}  # warm sandbox id -> its IPs
        # warm sandboxes whose gVisor kernel is booted too: id -> (its IPs, the handler's notes)
        self._warm_booted: dict[str, tuple[list[str], list[str]]] = {}
        self._sandboxes: dict[str, dict] = {}
        self._containers: dict[str, dict] = {}
        self._exited: set[str] = set()  # containers whose conmon has exited
        self._warming: asyncio.Task[None] | None = None
        self._container_started = asyncio.Event()  # ends a refill's pause
        # hostPort mappings of a just-taken warm sandbox, made while its containers are created
        self._ports_pending: dict[str, asyncio.Task[None]] = {}
        # each container's OCI process, which every exec (and so every exec probe) starts from
        self._processes: dict[str, dict[str, Any]] = {}
        self._watched: dict[str, asyncio.Future[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _make_handlers(self) -> dict[str, RuntimeHandler]:
        """The handlers by the names RuntimeClasses give: the OCI runtime as containerd's default
        ("" or "runc") and by its own name, and "runsc" where runsc is installed."""
        default = OCIHandler(Path(self.config.oci_runtime).name, self.oci)
        handlers: dict[str, RuntimeHandler] = {"": default, DEFAULT_HANDLER: default, default.name: default}
        runsc = shutil.which(self.config.runsc) if self.config.runsc else None
        if runsc:
            handlers[GVISOR_HANDLER] = GVisorHandler(GVisorConfig(
                runsc, self.config.run_root / "runsc", self.config.exits_root, platform=self.config.runsc_platform,
                network=self.config.runsc_network))
        return handlers

    def _handler(self, name: str) -> RuntimeHandler:
        try:
            return self.handlers[name]
        except KeyError:
            raise no_runtime(name) from None

    def _handler_of(self, record: dict) -> RuntimeHandler:
        """A sandbox's or container's handler (records from before handlers had the default)."""
        return self._handler(record.get("handler", ""))

    def _sandbox_spec(self, record: dict) -> SandboxSpec:
        return SandboxSpec(
            id=record["id"], hostname=record["hostname"], directory=self._sandbox_dir(record["id"]),
            netns=record["netns"], cgroup=record["cgroup"], share_pid=record["share_pid"],
            host_network=record["host_network"], host_pid=record["host_pid"], host_ipc=record["host_ipc"])

    async def start(self) -> None:
        """Checks the host and prepares the roots; watches containers that are still running."""
        check_host(self.config.oci_runtime, self.config.conmon)
        prepare_roots(self.config)  # again: a purging shutdown removed the run root's directories
        self.network.ensure_conflist()
        await self.network.ensure_masquerade()
        self._load_records()
        await self._remove_unrecorded_containers()
        await self._adopt_started()
        await self._remove_unowned()
        self._refill_warm()
        for record in self._container_records():
            if record["state"] == ContainerState.RUNNING.value:
                self._watch_exit(record["id"], record.get("conmon_pid"))

    # -- sandboxes -------------------------------------------------------------

    def _sandbox_file(self, sandbox_id: str) -> Path:
        return self.config.sandboxes_root / f"{sandbox_id}.json"

    def _sandbox_dir(self, sandbox_id: str) -> Path:
        return self.config.run_root / "sandboxes" / sandbox_id

    def _sandbox(self, sandbox_id: str) -> dict:
        try:
            return self._sandboxes[sandbox_id]
        except KeyError:
            raise NotFound(f"pod sandbox {sandbox_id} not found") from None

    def _save_sandbox(self, record: dict) -> None:
        self._sandboxes[record["id"]] = record
        write_json_atomic(self._sandbox_file(record["id"]), record)

    def _forget_sandbox(self, sandbox_id: str) -> None:
        self._sandboxes.pop(sandbox_id, None)
        self._sandbox_file(sandbox_id).unlink(missing_ok=True)

    def _sandbox_cgroup(self, sandbox_id: str) -> str:
        return f"{self.config.cgroup_parent}/pod-{sandbox_id[:16]}"

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        """Namespaces, network, shared /dev/shm and /etc files of a new pod sandbox.
        A warm sandbox is taken when the pod can use one. Anything made before a failure is undone.
        The sandbox's handler then starts what it needs (gVisor: the pod's kernel)."""
        handler = self._handler(config.runtime_handler)
        booted = self._take_booted(config)
        warm = booted[:2] if booted else self._take_warm(config)
        sandbox_id = warm[0] if warm else _new_id()
        directory = self._sandbox_dir(sandbox_id)
        record: dict[str, Any] = {
            "id": sandbox_id, "metadata": asdict(config.metadata), "state": SandboxState.READY.value,
            "created_at": _now().isoformat(), "ip": None, "ips": [], "labels": config.labels,
            "annotations": config.annotations, "host_network": config.host_network,
            "host_ipc": config.host_ipc, "host_pid": config.host_pid,
            "share_pid": config.share_process_namespace, "hostname": config.hostname,
            "port_mappings": [asdict(p) for p in config.port_mappings],
            "netns": None if config.host_network else str(directory / "ns" / "net"),
            "cgroup": self._sandbox_cgroup(sandbox_id), "handler": config.runtime_handler, "notes": [],
        }
        ports = [_cni_port(p) for p in config.port_mappings]
        try:
            cgroups.set_pids_limit(record["cgroup"], config.pids_limit)
            if warm:
                await pin_namespaces(directory / "ns", config.hostname, ("uts",))
                self._save_sandbox(record)
                record["ips"] = warm[1]
                if ports:
                    # The portmap plugin takes tens of milliseconds; nothing before a container
                    # starts needs the mappings, so start_container waits for them instead.
                    self._ports_pending[sandbox_id] = asyncio.create_task(
                        self.network.add_port_mappings(sandbox_id, Path(record["netns"]), ports))
            else:
                directory.mkdir(parents=True)
                kinds = tuple(k for k, host in (("net", config.host_network), ("ipc", config.host_ipc),
                                                ("uts", config.host_network)) if not host)
                if kinds:
                    await pin_namespaces(directory / "ns", config.hostname, kinds)
                if not config.host_ipc:
                    self._mount_shm(directory)
                self._save_sandbox(record)
                if not config.host_network:
                    status = await self.network.attach(
                        sandbox_id, Path(record["netns"]), port_mappings=ports, pod_name=config.metadata.name,
                        pod_namespace=config.metadata.namespace, pod_uid=config.metadata.uid)
                    record["ips"] = list(status.ips)
            record["ip"] = record["ips"][0] if record["ips"] else None
            if config.share_process_namespace and not config.host_pid and handler.host_kernel:
                record["pid_holder"] = await start_pid_holder(directory)
            write_pod_etc(directory / "etc", pod_ip=record["ip"], hostname=config.hostname,
                          fqdn=config.subdomain_fqdn, aliases=config.host_aliases, dns=config.dns,
                          host_network=config.host_network)
            self._save_sandbox(record)
            if booted:
                await handler.set_hostname(self._sandbox_spec(record), config.hostname)
                record["notes"] = booted[2]
            else:
                record["notes"] = await handler.start_sandbox(self._sandbox_spec(record))
            self._save_sandbox(record)
        except BaseException:
            await self._teardown_sandbox(sandbox_id, record)
            self._forget_sandbox(sandbox_id)
            with contextlib.suppress(OSError):
                cgroups.remove_cgroup(record["cgroup"])
            raise
        finally:
            if warm:
                self._refill_warm(WARM_REFILL_DELAY)
        return sandbox_id

    @staticmethod
    def _mount_shm(directory: Path) -> None:
        (directory / "shm").mkdir()
        mount("shm", str(directory / "shm"), "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={SHM_SIZE}")

    # -- warm sandboxes ----------------------------------------------------------
    #
    # A pod's network costs tens of milliseconds of plugin execs; the network and IPC
    # namespaces, /dev/shm and the CNI attachment of a few sandboxes are made ahead of
    # use and handed to the next pods that can use them (not hostNetwork or hostIPC).
    # The hostname (UTS) and the hostPort mappings are added when a pod takes one.

    def _take_warm(self, config: PodSandboxConfig) -> tuple[str, list[str]] | None:
        if config.host_network or config.host_ipc or not self._warm_ips:
            return None
        sandbox_id = next(iter(self._warm_ips))
        return sandbox_id, self._warm_ips.pop(sandbox_id)

    def _refill_warm(self, delay: float = 0.0) -> None:
        if (self.config.warm_sandboxes or self._booted_wanted()) and (self._warming is None or self._warming.done()):
            self._warming = asyncio.create_task(self._fill_warm(delay))

    async def _fill_warm(self, delay: float) -> None:
        if delay:
            self._container_started.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._container_started.wait(), delay)
        while len(self._warm_ips) < self.config.warm_sandboxes + self._booted_wanted():
            sandbox_id = _new_id()
            directory = self._sandbox_dir(sandbox_id)
            try:
                directory.mkdir(parents=True)
                await pin_namespaces(directory / "ns", "", ("net", "ipc"))
                self._mount_shm(directory)
                status = await self.network.attach(sandbox_id, directory / "ns" / "net")
            except BaseException as exc:
                # Cancelled too (a shutdown while it is being made): half a sandbox is in no pool
                # that _drop_warm or a purge would find, so it goes here.
                await asyncio.shield(self._teardown_sandbox(sandbox_id, self._unowned_record(sandbox_id)))
                if not isinstance(exc, Exception):
                    raise
                return
            self._warm_ips[sandbox_id] = list(status.ips)
        await self._boot_warm()

    # A runsc pod's sandbox costs gVisor's boot besides: a few warm sandboxes get their kernel
    # booted ahead too (hyperd's warm VMs). The hostname is set when a pod takes one.

    def _booted_wanted(self) -> int:
        if GVISOR_HANDLER not in self.handlers:
            return 0
        return max(0, self.config.warm_gvisor_sandboxes - len(self._warm_booted))

    def _take_booted(self, config: PodSandboxConfig) -> tuple[str, list[str], list[str]] | None:
        # Booted without shareProcessNamespace: the sandbox's own process is in no shared PID namespace.
        if config.runtime_handler != GVISOR_HANDLER or config.share_process_namespace or not self._warm_booted:
            return None
        sandbox_id = next(iter(self._warm_booted))
        ips, notes = self._warm_booted.pop(sandbox_id)
        return sandbox_id, ips, notes

    async def _boot_warm(self) -> None:
        handler = self.handlers.get(GVISOR_HANDLER)
        while handler is not None and self._booted_wanted() and self._warm_ips:
            sandbox_id = next(iter(self._warm_ips))
            ips = self._warm_ips.pop(sandbox_id)
            try:
                notes = await handler.start_sandbox(self._sandbox_spec(self._warm_record(sandbox_id)))
            except BaseException as exc:
                await asyncio.shield(self._teardown_sandbox(sandbox_id, self._unowned_record(sandbox_id)))
                if not isinstance(exc, Exception):
                    raise
                return
            self._warm_booted[sandbox_id] = (ips, notes)

    def _warm_record(self, sandbox_id: str) -> dict:
        """A sandbox record for no pod yet: the pod's hostname comes when one takes it."""
        return {**self._unowned_record(sandbox_id), "id": sandbox_id, "hostname": "",
                "cgroup": self._sandbox_cgroup(sandbox_id), "share_pid": False, "host_network": False,
                "host_pid": False, "host_ipc": False}

    async def wait_warm(self) -> None:
        """Until the warm sandboxes being made are ready (they are made in the background)."""
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)

    async def _drop_warm(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
        for sandbox_id in [*self._warm_ips, *self._warm_booted]:
            self._warm_ips.pop(sandbox_id, None)
            self._warm_booted.pop(sandbox_id, None)
            await self._teardown_sandbox(sandbox_id, self._unowned_record(sandbox_id))
            with contextlib.suppress(OSError):
                cgroups.remove_cgroup(self._sandbox_cgroup(sandbox_id))  # a booted one's (runsc made it)

    def _unowned_record(self, sandbox_id: str) -> dict:
        """What teardown needs of a sandbox no pod owns (a warm one): its network namespace, and
        the handler that booted it, if one did (its directory says)."""
        booted = (self._sandbox_dir(sandbox_id) / GVISOR_BUNDLE).is_dir()
        return {"netns": str(self._sandbox_dir(sandbox_id) / "ns" / "net"), "port_mappings": [],
                "handler": GVISOR_HANDLER if booted else ""}

    async def _remove_unowned(self) -> None:
        """Sandbox directories without a record were warm when a previous process ended; pod
        cgroups without a sandbox were being made when it was killed."""
        root = self.config.run_root / "sandboxes"
        for directory in root.iterdir() if root.is_dir() else ():
            if directory.name not in self._sandboxes:
                await self._teardown_sandbox(directory.name, self._unowned_record(directory.name))
        cgroups.remove_unowned_pod_cgroups(self.config.cgroup_parent, {
            self._sandbox_cgroup(sandbox_id).rpartition("/")[2] for sandbox_id in self._sandboxes})

    async def _teardown_sandbox(self, sandbox_id: str, record: dict) -> None:
        pending = self._ports_pending.pop(sandbox_id, None)
        if pending is not None:  # its ADD must be over before the DEL that undoes it
            await asyncio.gather(pending, return_exceptions=True)
        directory = self._sandbox_dir(sandbox_id)
        handler = self.handlers.get(record.get("handler", ""))
        if handler is not None:  # first: a handler's sandbox may hold the namespaces and files below
            await handler.stop_sandbox(sandbox_id)
        stop_pid_holder(record.get("pid_holder"))
        if not record.get("host_network"):
            await self.network.detach(sandbox_id, Path(record["netns"]) if record.get("netns") else None,
                                      port_mappings=[_cni_port(PortMapping(**p)) for p in record["port_mappings"]])
        umount(str(directory / "shm"))
        unpin_namespaces(directory / "ns")
        shutil.rmtree(directory, ignore_errors=True)

    async def _sandbox_network_ready(self, sandbox_id: str) -> None:
        """Waits for the sandbox's pending hostPort mappings; if they failed the sandbox is
        NOTREADY (the agent makes a new one) and no container starts in it."""
        record = self._sandbox(sandbox_id)
        pending = self._ports_pending.get(sandbox_id)
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
            self._ports_pending.pop(sandbox_id, None)
            if not pending.cancelled() and pending.exception() is not None \
                    and record["state"] == SandboxState.READY.value:
                await self.stop_pod_sandbox(sandbox_id)
                record["message"] = f"hostPort mappings failed: {pending.exception()}"
                self._save_sandbox(record)
        if record["state"] != SandboxState.READY.value:
            raise ContainerRuntimeError(f"pod sandbox {sandbox_id} is not ready" +
                                        (f": {record['message']}" if record.get("message") else ""))

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stops the sandbox's containers and releases its network and namespaces (CRI's StopPodSandbox)."""
        record = self._sandbox(sandbox_id)
        for c in self._container_records():
            if c["sandbox_id"] == sandbox_id and self._state(c) is ContainerState.RUNNING:
                await self.stop_container(c["id"], 0)
        # What outlived its container's init (exec'd or orphaned processes in a shared PID
        # namespace) goes with the pod, however many tasks there are.
        await asyncio.to_thread(cgroups.kill_cgroup, record["cgroup"])
        if record["state"] == SandboxState.READY.value:
            await self._teardown_sandbox(sandbox_id, record)
            record["state"] = SandboxState.NOTREADY.value
            self._save_sandbox(record)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        try:
            record = self._sandbox(sandbox_id)
        except NotFound:
            return
        for c in self._container_records():
            if c["sandbox_id"] == sandbox_id:
                await self.remove_container(c["id"])
        if record["state"] == SandboxState.READY.value:
            await self.stop_pod_sandbox(sandbox_id)
        cgroups.remove_cgroup(record["cgroup"])
        self._forget_sandbox(sandbox_id)

    async def pod_sandbox_stats(self, sandbox_id: str) -> PodSandboxStats:
        cgroup = self._sandbox(sandbox_id)["cgroup"]
        return PodSandboxStats(sandbox_id, cgroups.memory_working_set(cgroup), cgroups.pids_current(cgroup))

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        return self._sandbox_status(self._sandbox(sandbox_id))

    def _sandbox_status(self, r: dict) -> PodSandboxStatus:
        state = SandboxState(r["state"])
        if state is SandboxState.READY and not self._handler_of(r).sandbox_running(self._sandbox_spec(r)):
            state = SandboxState.NOTREADY  # its handler's sandbox died; stop_pod_sandbox still tears it down
        return PodSandboxStatus(
            id=r["id"], metadata=PodSandboxMetadata(**r["metadata"]), state=state,
            created_at=datetime.fromisoformat(r["created_at"]), ip=r["ip"], ips=r["ips"], labels=r["labels"],
            annotations=r["annotations"], host_network=r["host_network"], netns_path=r["netns"],
            runtime_handler=r.get("handler", ""), notes=list(r.get("notes", [])))

    async def list_pod_sandboxes(self, label_selector: dict[str, str] | None = None) -> list[PodSandboxStatus]:
        """Every sandbox, or those whose labels include `label_selector` (CRI's filter)."""
        return [self._sandbox_status(r) for r in list(self._sandboxes.values())
                if not label_selector or label_selector.items() <= r["labels"].items()]

    async def update_pod_sandbox(self, sandbox_id: str, labels: dict[str, str], annotations: dict[str, str],
                                 hostname: str | None = None) -> None:
        """Hands a sandbox to another pod (HyperContainer's replace): new owner labels and
        hostname, the same namespaces and IP."""
        record = self._sandbox(sandbox_id)
        record["labels"], record["annotations"] = dict(labels), dict(annotations)
        if hostname and hostname != record["hostname"] and not record["host_network"]:
            await self._handler_of(record).set_hostname(self._sandbox_spec(record), hostname)
            etc = self._sandbox_dir(sandbox_id) / "etc"
            (etc / "hostname").write_text(hostname + "\n")
            hosts = (etc / "hosts").read_text().replace(f"\t{record['hostname']}\n", f"\t{hostname}\n")
            (etc / "hosts").write_text(hosts)
            record["hostname"] = hostname
        self._save_sandbox(record)

    # -- containers ------------------------------------------------------------

    def _container_dir(self, container_id: str) -> Path:
        return self.config.containers_root / container_id

    def _bundle(self, container_id: str) -> Path:
        return self.config.bundles_root / container_id

    def _container(self, container_id: str) -> dict:
        try:
            return self._containers[container_id]
        except KeyError:
            raise NotFound(f"container {container_id} not found") from None

    def _save(self, record: dict) -> None:
        self._containers[record["id"]] = record
        write_json_atomic(self._container_dir(record["id"]) / "record.json", record)

    def _container_records(self) -> list[dict]:
        return list(self._containers.values())

    def _load_records(self) -> None:
        """Records are kept in memory; the files make them outlive this process."""
        for path in self.config.sandboxes_root.glob("*.json"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                record = json.loads(path.read_text())
                self._sandboxes[record["id"]] = record
        for path in self.config.containers_root.glob("*/record.json"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                record = json.loads(path.read_text())
                self._containers[record["id"]] = record

    async def _remove_unrecorded_containers(self) -> None:
        """A container's directories and rootfs mount without a record were being made when a
        previous process died (create_container writes the record once they exist): nothing
        refers to them, so they would stay until the host reboots."""
        for root in (self.config.bundles_root, self.config.containers_root):
            for directory in list(root.iterdir()):
                if directory.name not in self._containers:
                    await self._discard_container(directory.name)

    async def _adopt_started(self) -> None:
        """A container recorded as created may have been started by a process that died between
        `crun start` and writing the record; crun knows. Left as created, the agent would start a
        second instance beside the one that runs."""
        for record in self._container_records():
            if record["state"] != ContainerState.CREATED.value or not record.get("conmon_pid"):
                continue
            state = await self._handler_of(record).state(record["id"])
            if state is not None and state.get("status") in ("running", "stopped"):
                # The start's moment was never recorded; now is the closest this process knows.
                record.update(state=ContainerState.RUNNING.value, started_at=_now().isoformat())
                self._save(record)

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def log_path(self, sandbox: dict, name: str, attempt: int) -> Path:
        m = sandbox["metadata"]
        return self.config.state_root / "logs" / f"{m['namespace']}_{m['name']}_{m['uid']}" / name / f"{attempt}.log"

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        """The container's rootfs (overlay of its image's layers), bundle and conmon-held process,
        stopped before its command runs (CRI's CreateContainer)."""
        sandbox = self._sandbox(sandbox_id)
        if sandbox["state"] != SandboxState.READY.value:
            raise ContainerRuntimeError(f"pod sandbox {sandbox_id} is not ready")
        handler = self._handler_of(sandbox)
        image = self.images.image_status(config.image)
        if image is None:
            raise ContainerRuntimeError(f'image "{config.image}" not present')
        seccomp_profile = None if config.security.privileged else load_profile(config.security.seccomp)
        container_id = _new_id()
        directory, bundle = self._container_dir(container_id), self._bundle(container_id)
        log_path = self.log_path(sandbox, config.metadata.name, config.metadata.attempt)
        record = {
            "id": container_id, "sandbox_id": sandbox_id, "metadata": asdict(config.metadata),
            "state": ContainerState.CREATED.value, "created_at": _now().isoformat(), "started_at": None,
            "finished_at": None, "exit_code": None, "reason": "", "message": "", "image": config.image,
            "image_ref": image.id, "labels": config.labels, "annotations": config.annotations,
            "log_path": str(log_path), "pid": None, "conmon_pid": None,
            "stop_signal": config.stop_signal, "termination_message_path": config.termination_message_path,
            "handler": sandbox.get("handler", ""),
        }
        rootfs = bundle / "rootfs"
        try:
            for d in (directory / "upper", directory / "work", rootfs):
                d.mkdir(parents=True)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            layers = self.images.mount_layers(config.image)
            mount("overlay", str(rootfs), "overlay", 0,
                  f"lowerdir={':'.join(map(str, layers))},upperdir={directory / 'upper'},workdir={directory / 'work'}")
            make_devices(rootfs, layers, self.images.layer_devices(config.image))
            uid, gid, groups = resolve_user(rootfs, config.security)
            mounts = self._sandbox_mounts(sandbox, config, directory)
            paths = self._sandbox_paths(sandbox, container_id, config.pid_target_id)
            full = ContainerConfig(**{**config.__dict__, "mounts": mounts + list(config.mounts)})
            spec = handler.container_spec(oci_spec(full, paths, str(rootfs), uid, gid, groups, seccomp_profile),
                                          self._sandbox_spec(sandbox))
            (bundle / "config.json").write_text(json.dumps(spec))
            self._processes[container_id] = spec["process"]
            self._save(record)
        except BaseException:
            await self._discard_container(container_id)
            raise
        try:
            created = await handler.create(container_id, bundle, log_path, tty=config.tty, stdin=config.stdin,
                                         stdin_once=config.stdin_once)
            record["pid"], record["conmon_pid"] = created.pid, created.monitor_pid
            record["pid_start_time"] = process_start_time(record["pid"]) if record["pid"] else None
        except ContainerRuntimeError as exc:
            # The process could not be made (no such executable, a mount refused...): as containerd
            # reports it, the container exists and failed to start, so restartPolicy decides what next.
            await self._failed_to_start(record, exc)
            return container_id
        except BaseException:
            await self._discard_container(container_id)
            raise
        self._save(record)
        if created.monitor_pid is not None:
            self._watch_exit(container_id, created.monitor_pid)
        return container_id

    async def _failed_to_start(self, record: dict, exc: ContainerRuntimeError) -> None:
        record.update(state=ContainerState.EXITED.value, exit_code=128, reason="StartError", message=str(exc),
                      finished_at=_now().isoformat())
        self._save(record)
        await self._handler_of(record).delete(record["id"])
        self._release_rootfs(record["id"])

    def _sandbox_paths(self, sandbox: dict, container_id: str, pid_target_id: str = "") -> SandboxPaths:
        ns = self._sandbox_dir(sandbox["id"]) / "ns"
        shm = self._sandbox_dir(sandbox["id"]) / "shm"
        return SandboxPaths(
            net=None if sandbox["host_network"] else str(ns / "net"),
            ipc=None if sandbox["host_ipc"] else str(ns / "ipc"),
            uts=None if sandbox["host_network"] else str(ns / "uts"),
            pid=self._pid_namespace_of(pid_target_id) if pid_target_id else self._shared_pid(sandbox),
            host_pid=sandbox["host_pid"],
            shm=None if sandbox["host_ipc"] else str(shm),
            cgroups_path=f"{sandbox['cgroup']}/{container_id[:16]}",
        )

    def _pid_namespace_of(self, container_id: str) -> str:
        """The PID namespace of a running container, for another to join (by path in the OCI spec)."""
        target = self._container(container_id)
        if self._state(target) is not ContainerState.RUNNING or not target.get("pid"):
            raise ContainerRuntimeError(f"target container {container_id[:12]} is not running")
        return f"/proc/{target['pid']}/ns/pid"

    @staticmethod
    def _shared_pid(sandbox: dict) -> str | None:
        """With shareProcessNamespace the containers join the sandbox's PID namespace holder's."""
        holder = sandbox.get("pid_holder")
        return f"/proc/{holder}/ns/pid" if holder else None

    def _sandbox_mounts(self, sandbox: dict, config: ContainerConfig, directory: Path) -> list[Mount]:
        etc = self._sandbox_dir(sandbox["id"]) / "etc"
        mounts = [Mount("/etc/hosts", str(etc / "hosts")), Mount("/etc/resolv.conf", str(etc / "resolv.conf"))]
        if not sandbox["host_network"]:
            mounts.append(Mount("/etc/hostname", str(etc / "hostname")))
        if config.termination_message_path:
            log = directory / "termination-log"
            log.touch()
            log.chmod(0o666)
            mounts.append(Mount(config.termination_message_path, str(log)))
        return mounts

    async def start_container(self, container_id: str) -> None:
        async with self._lock(container_id):
            record = self._container(container_id)
            if record["reason"] == "StartError":
                raise ContainerRuntimeError(record["message"])
            if record["state"] != ContainerState.CREATED.value:
                raise ContainerRuntimeError(f"container {container_id} is {record['state']}, not created")
            await self._sandbox_network_ready(record["sandbox_id"])
            try:
                monitor = await self._handler_of(record).start(container_id, self._bundle(container_id),
                                                               Path(record["log_path"]))
            except ContainerRuntimeError as exc:
                await self._failed_to_start(record, exc)
                raise
            if monitor is not None:
                record["conmon_pid"] = monitor
                self._watch_exit(container_id, monitor)
            record["state"] = ContainerState.RUNNING.value
            self._container_started.set()
            record["started_at"] = _now().isoformat()
            self._save(record)

    def _state(self, record: dict) -> ContainerState:
        """A running record whose monitor has exited has exited (its exit file says how)."""
        if record["state"] == ContainerState.RUNNING.value and record["id"] in self._exited:
            return ContainerState.EXITED
        return ContainerState(record["state"])

    def _settle(self, record: dict) -> dict:
        """Moves a record to EXITED once conmon has written the exit file."""
        if record["state"] != ContainerState.RUNNING.value or record["id"] not in self._exited:
            return record
        code = self._handler_of(record).exit_code(record["id"])
        if code is None:
            return record
        exit_file = self.config.exits_root / record["id"]
        finished = datetime.fromtimestamp(exit_file.stat().st_mtime, timezone.utc)
        oom = (self._bundle(record["id"]) / "oom").exists()
        reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        record.update(state=ContainerState.EXITED.value, exit_code=code, finished_at=finished.isoformat(),
                      reason=reason, message=self._termination_message(record))
        self._save(record)
        self._release_rootfs(record["id"])
        return record

    def _termination_message(self, record: dict) -> str:
        path = self._container_dir(record["id"]) / "termination-log"
        try:
            return path.read_bytes()[:4096].decode(errors="replace")
        except OSError:
            return ""

    def _release_rootfs(self, container_id: str) -> None:
        """An exited container's process and mounts go; its record, writable layer and log stay."""
        rootfs = self._bundle(container_id) / "rootfs"
        if is_mountpoint(str(rootfs)):
            umount(str(rootfs), lazy=True)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """The stop signal, then SIGKILL after `timeout` seconds (CRI's StopContainer)."""
        async with self._lock(container_id):
            record = self._settle(self._container(container_id))
            handler = self._handler_of(record)
            if record["state"] == ContainerState.CREATED.value:
                await handler.delete(container_id)
                record.update(state=ContainerState.EXITED.value, exit_code=0, finished_at=_now().isoformat(),
                              reason="Completed")
                self._save(record)
                self._release_rootfs(container_id)
                return
            if record["state"] != ContainerState.RUNNING.value:
                return
            exited = self._watch_exit(container_id, record["conmon_pid"])
            process = (record["pid"], record["pid_start_time"]) if record.get("pid_start_time") else None
            if timeout > 0:
                await handler.kill(container_id, record.get("stop_signal") or "SIGTERM", process)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), timeout)
            if not exited.done():
                await handler.kill(container_id, signal.SIGKILL, process)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), 10)
            self._settle(self._container(container_id))

    async def remove_container(self, container_id: str) -> None:
        try:
            record = self._settle(self._container(container_id))
        except NotFound:
            return
        if record["state"] == ContainerState.RUNNING.value:
            await self.stop_container(container_id, 0)
        await self._discard_container(container_id)

    async def _discard_container(self, container_id: str) -> None:
        known = self._containers.get(container_id)
        await (self._handler_of(known) if known else self.oci).delete(container_id)
        bundle = self._bundle(container_id)
        umount(str(bundle / "rootfs"), lazy=True)
        record = self._containers.pop(container_id, None)
        self._processes.pop(container_id, None)
        if record is not None:
            Path(record["log_path"]).unlink(missing_ok=True)
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(self._container_dir(container_id), ignore_errors=True)
        (self.config.exits_root / container_id).unlink(missing_ok=True)
        watcher = self._watched.pop(container_id, None)
        if watcher is not None and not watcher.done():
            watcher.cancel()
        self._exited.discard(container_id)
        self._locks.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        r = self._settle(self._container(container_id))
        return ContainerStatus(
            id=r["id"], sandbox_id=r["sandbox_id"], metadata=ContainerMetadata(**r["metadata"]),
            state=ContainerState(r["state"]), created_at=datetime.fromisoformat(r["created_at"]),
            started_at=_time(r["started_at"]), finished_at=_time(r["finished_at"]), exit_code=r["exit_code"],
            signal=(r["exit_code"] - 128) if (r["exit_code"] or 0) > 128 else None, reason=r["reason"],
            message=r["message"], image=r["image"], image_ref=r["image_ref"], labels=r["labels"],
            annotations=r["annotations"], log_path=r["log_path"], pid=r["pid"])

    async def list_containers(self, sandbox_id: str | None = None,
                              label_selector: dict[str, str] | None = None) -> list[ContainerStatus]:
        out = []
        for r in self._container_records():
            if sandbox_id is not None and r["sandbox_id"] != sandbox_id:
                continue
            if label_selector and not label_selector.items() <= r["labels"].items():
                continue
            with contextlib.suppress(NotFound):
                out.append(await self.container_status(r["id"]))
        return out

    async def container_log_path(self, container_id: str) -> str:
        return self._container(container_id)["log_path"]

    # -- exits -------------------------------------------------------------------

    def _watch_exit(self, container_id: str, conmon_pid: int | None) -> asyncio.Future[None]:
        """A future that resolves when the container's conmon exits (after the exit file is
        written): a pidfd becomes readable then, so nothing polls."""
        existing = self._watched.get(container_id)
        if existing is not None:
            return existing
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._watched[container_id] = done
        try:
            fd = os.pidfd_open(conmon_pid) if conmon_pid else -1
        except ProcessLookupError:
            fd = -1
        if fd < 0:
            self._exited.add(container_id)
            done.set_result(None)
            self._exits.put_nowait(container_id)
            return done

        def on_exit() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._exited.add(container_id)
            if not done.done():
                done.set_result(None)
            self._exits.put_nowait(container_id)

        loop.add_reader(fd, on_exit)
        done.add_done_callback(lambda f: _close_reader(loop, fd) if f.cancelled() else None)
        return done

    async def exit_events(self) -> AsyncIterator[str]:
        """Ids of containers as they exit."""
        while True:
            yield await self._exits.get()

    async def wait_container(self, container_id: str) -> ContainerStatus:
        record = self._container(container_id)
        await self._watch_exit(container_id, record.get("conmon_pid"))
        return await self.container_status(container_id)

    # -- exec --------------------------------------------------------------------

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float | None = None
                        ) -> tuple[int, bytes, bytes]:
        """Runs a command in the container; a command that overruns `timeout` is killed."""
        record = self._settle(self._container(container_id))
        if record["state"] != ContainerState.RUNNING.value:
            raise ContainerRuntimeError(f"container {container_id} is not running")
        handler = self._handler_of(record)
        proc = await handler.exec(container_id, self._exec_process(container_id, argv, tty=False))
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout or None)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode and ((await handler.state(container_id)) or {}).get("status") != "running":
            # It stopped after the check above, so crun could not enter it: crun's own failure is
            # not the command's answer (a chaos run got exit 1 and "the container is not running").
            raise ContainerRuntimeError(f"container {container_id} is not running")
        return proc.returncode or 0, out, err

    async def exec(self, container_id: str, argv: list[str], *, tty: bool = False, stdin: bool = False,
                   stdout: bool = True, stderr: bool = True) -> ExecSession:
        """A streamed exec: the streams asked for (with `tty`, one terminal for all); the
        caller must `close()` it."""
        record = self._settle(self._container(container_id))
        if record["state"] != ContainerState.RUNNING.value:
            raise ContainerRuntimeError(f"container {container_id} is not running")
        return await start_exec(self._handler_of(record), container_id, self._exec_process(container_id, argv, tty),
                                self.config.run_root / "exec" / secrets.token_hex(8), stdin=stdin, stdout=stdout,
                                stderr=stderr)

    async def attach(self, container_id: str, *, tty: bool = False, stdin: bool = False, stdout: bool = True,
                     stderr: bool = True) -> AttachSession:
        """The running container's own stdio through conmon; the caller must `close()` it."""
        record = self._settle(self._container(container_id))
        if record["state"] != ContainerState.RUNNING.value:
            raise ContainerRuntimeError(f"container {container_id} is not running")
        return await attach_container(self._bundle(container_id), tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)

    def _exec_process(self, container_id: str, argv: list[str], tty: bool) -> dict[str, Any]:
        """The container's own process (user and groups, env, cwd, capabilities, no_new_privs,
        rlimits) running `argv`, as CRI-O execs; with a terminal, TERM as CRI-O sets it."""
        base = self._processes.get(container_id)
        if base is None:  # made by an earlier podbay process: its bundle says
            base = json.loads((self._bundle(container_id) / "config.json").read_text())["process"]
            self._processes[container_id] = base
        process = {k: v for k, v in base.items() if k != "consoleSize"}
        process.update(args=argv, terminal=tty)
        if tty and not any(e.startswith("TERM=") for e in process.get("env", [])):
            process["env"] = [*process.get("env", []), "TERM=xterm"]
        return process

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
            return {d.name: disk_usage(d) for d in volumes.iterdir() if d.is_dir() and not is_mountpoint(str(d))}
        return await asyncio.to_thread(measure)

    async def container_stats(self, container_id: str) -> ContainerStats:
        """The container's writable layer usage (CRI's ContainerStats), walked off the event loop."""
        self._container(container_id)
        upper = self._container_dir(container_id) / "upper"
        return ContainerStats(container_id, await asyncio.to_thread(disk_usage, upper))

    async def container_usage(self, container_id: str) -> ContainerUsage:
        """The container's CPU time and memory working set, from the cgroup crun made for it."""
        record = self._container(container_id)
        cgroup = f"{self._sandbox(record['sandbox_id'])['cgroup']}/{container_id[:16]}"
        return ContainerUsage(container_id, cgroups.cpu_usage_nanoseconds(cgroup), cgroups.memory_working_set(cgroup))

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
        for fut in list(self._watched.values()):
            if not fut.done():
                fut.cancel()
        self._watched.clear()
        await self._drop_warm()
        if purge:
            for sb in await self.list_pod_sandboxes():
                await self.remove_pod_sandbox(sb.id)
            await self._remove_unowned()
            for c in self._container_records():
                await self.remove_container(c["id"])
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


def _close_reader(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    with contextlib.suppress(Exception):
        loop.remove_reader(fd)
    with contextlib.suppress(OSError):
        os.close(fd)


def _cni_port(p: PortMapping) -> CNIPortMapping:
    return CNIPortMapping(host_port=p.host_port, container_port=p.container_port, protocol=p.protocol,
                          host_ip=p.host_ip)
