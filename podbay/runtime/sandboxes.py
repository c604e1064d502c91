"""Pod sandboxes: their namespaces, network, /dev/shm and /etc files, and their records (CRI's
RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox), taking warm
sandboxes from the pool where a pod can use one. Their containers are `containers.py`'s."""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable, Mapping

from podbay.api.errors import NotFound
from podbay.runtime import cgroups
from podbay.runtime.config import RuntimeConfig
from podbay.runtime.etcfiles import write_pod_etc
from podbay.runtime.files import remove_json
from podbay.runtime.gvisor import GVISOR_BUNDLE, GVISOR_HANDLER
from podbay.runtime.labelindex import LabelIndex
from podbay.runtime.handler import RuntimeHandler, SandboxSpec, no_runtime
from podbay.runtime.namespaces import pin_namespaces, start_pid_holder, stop_pid_holder, unpin_namespaces
from podbay.runtime.network import PodNetwork
from podbay.runtime.network import PortMapping as CNIPortMapping
from podbay.runtime.records import SandboxRecord
from podbay.runtime.syscalls import all_done, finished_before_cancel, umount
from podbay.runtime.types import (
    ContainerRuntimeError, PodSandboxConfig, PodSandboxMetadata, PodSandboxStats, PodSandboxStatus, PortMapping, SandboxState,
)
from podbay.runtime.warmpool import WARM_REFILL_DELAY, WarmPool, WarmSandbox, mount_shm


def cni_port(p: PortMapping) -> CNIPortMapping:
    return CNIPortMapping(host_port=p.host_port, container_port=p.container_port, protocol=p.protocol,
                          host_ip=p.host_ip)


class Sandboxes:
    def __init__(self, config: RuntimeConfig, handlers: Mapping[str, RuntimeHandler], network: PodNetwork) -> None:
        self.config = config
        self.handlers = handlers
        self.network = network
        self.warm = WarmPool(config, handlers, network, self)
        self._records: dict[str, SandboxRecord] = {}
        self._labels = LabelIndex()
        # hostPort mappings of a just-taken warm sandbox, made while its containers are created
        self._ports_pending: dict[str, asyncio.Task[None]] = {}
        # the hostname of a just-taken booted sandbox (an exec in its kernel), set meanwhile too
        self._hostname_pending: dict[str, asyncio.Task[None]] = {}

    # -- where a sandbox lives ---------------------------------------------------

    def handler(self, name: str) -> RuntimeHandler:
        try:
            return self.handlers[name]
        except KeyError:
            raise no_runtime(name) from None

    def sandbox_dir(self, sandbox_id: str) -> Path:
        return self.config.run_root / "sandboxes" / sandbox_id

    def sandbox_cgroup(self, sandbox_id: str) -> str:
        return f"{self.config.cgroup_parent}/pod-{sandbox_id[:16]}"

    def get(self, sandbox_id: str) -> SandboxRecord:
        try:
            return self._records[sandbox_id]
        except KeyError:
            raise NotFound(f"pod sandbox {sandbox_id} not found") from None

    def records(self) -> list[SandboxRecord]:
        return list(self._records.values())

    def spec(self, record: SandboxRecord) -> SandboxSpec:
        return SandboxSpec(
            id=record.id, hostname=record.hostname, directory=self.sandbox_dir(record.id), netns=record.netns,
            cgroup=record.cgroup, share_pid=record.share_pid, host_network=record.host_network,
            host_pid=record.host_pid, host_ipc=record.host_ipc)

    def _remember(self, record: SandboxRecord) -> None:
        self._records[record.id] = record
        self._labels.put(record.id, record.labels)

    def _save(self, record: SandboxRecord) -> None:
        self._remember(record)
        record.save()

    def _forget(self, sandbox_id: str) -> None:
        self._records.pop(sandbox_id, None)
        self._labels.discard(sandbox_id)
        remove_json(self.config.sandboxes_root / f"{sandbox_id}.json")

    def load(self) -> None:
        """Records are kept in memory; the files make them outlive this process."""
        for path in self.config.sandboxes_root.glob("*.json"):
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
                self._remember(SandboxRecord.load(path))

    # -- sandboxes no pod owns (warm, or left half-made) ---------------------------

    def _unowned(self, sandbox_id: str) -> SandboxRecord:
        """What teardown needs of a sandbox no pod owns (a warm one): its network namespace, and
        the handler that booted it, if one did (its directory says). The pod's hostname comes
        when one takes it."""
        directory = self.sandbox_dir(sandbox_id)
        booted = (directory / GVISOR_BUNDLE).is_dir()
        return SandboxRecord(
            path=self.config.sandboxes_root / f"{sandbox_id}.json", id=sandbox_id,
            metadata=PodSandboxMetadata("", "", ""), created_at=datetime.now(timezone.utc), cgroup=self.sandbox_cgroup(sandbox_id),
            netns=str(directory / "ns" / "net"), handler=GVISOR_HANDLER if booted else "")

    def warm_spec(self, sandbox_id: str) -> SandboxSpec:
        return self.spec(self._unowned(sandbox_id))

    async def teardown_unowned(self, sandbox_id: str) -> None:
        await self._teardown(self._unowned(sandbox_id))

    async def remove_unowned(self) -> None:
        """Sandbox directories without a record were warm when a previous process ended; pod
        cgroups without a sandbox were being made when it was killed."""
        root = self.config.run_root / "sandboxes"
        for directory in root.iterdir() if root.is_dir() else ():
            if directory.name not in self._records:
                await self.teardown_unowned(directory.name)
        cgroups.remove_unowned_pod_cgroups(self.config.cgroup_parent, {
            self.sandbox_cgroup(sandbox_id).rpartition("/")[2] for sandbox_id in self._records})

    # -- CRI's verbs -------------------------------------------------------------

    async def run(self, config: PodSandboxConfig) -> str:
        """Namespaces, network, shared /dev/shm and /etc files of a new pod sandbox.
        A warm sandbox is taken when the pod can use one. Anything made before a failure is undone.
        The sandbox's handler then starts what it needs (gVisor: the pod's kernel)."""
        handler = self.handler(config.runtime_handler)
        warm = self.warm.take(config)
        record = self._new_record(warm.id if warm else secrets.token_hex(32), config)
        directory = self.sandbox_dir(record.id)
        try:
            cgroups.set_pids_limit(record.cgroup, config.pids_limit)
            if not handler.host_kernel:
                # Its kernel and every container live in one host process tree, whose only limit
                # is the pod's (the kubelet's pod cgroup); crun's containers keep their own.
                cgroups.set_memory_limit(record.cgroup, config.memory_limit)
            if warm:
                record.ips = warm.ips
                record.ip = record.ips[0] if record.ips else None
                # The /etc files need only the warm sandbox's IP: written while its hostname is set.
                await all_done(self._adopt_warm(record, warm, config), self._write_etc(record, config))
            else:
                await self._make_namespaces(record, config)
                record.ip = record.ips[0] if record.ips else None
                await self._write_etc(record, config)
            if config.share_process_namespace and not config.host_pid and handler.host_kernel:
                record.pid_holder = await start_pid_holder(directory)
            self._save(record)
            if warm and warm.booted:
                # Nothing before a container starts needs it: start_container waits for it.
                self._hostname_pending[record.id] = asyncio.create_task(
                    handler.set_hostname(self.spec(record), config.hostname))
                notes = warm.notes
            else:
                notes = await handler.start_sandbox(self.spec(record))
            if notes != record.notes:  # none (crun's): the record saved above is this one
                record.notes = notes
                self._save(record)
        except BaseException:
            await self._teardown(record)
            self._forget(record.id)
            with contextlib.suppress(OSError):
                cgroups.remove_cgroup(record.cgroup)
            raise
        finally:
            if warm:
                self.warm.refill(WARM_REFILL_DELAY)
        return record.id

    async def _write_etc(self, record: SandboxRecord, config: PodSandboxConfig) -> None:
        # In a worker thread: a directory and three new files, each a wait on ext4's journal.
        await finished_before_cancel(asyncio.to_thread(
            write_pod_etc, self.sandbox_dir(record.id) / "etc", pod_ip=record.ip, hostname=config.hostname,
            fqdn=config.subdomain_fqdn, aliases=config.host_aliases, dns=config.dns,
            host_network=config.host_network))

    def _new_record(self, sandbox_id: str, config: PodSandboxConfig) -> SandboxRecord:
        return SandboxRecord(
            path=self.config.sandboxes_root / f"{sandbox_id}.json", id=sandbox_id,
            metadata=replace(config.metadata), created_at=datetime.now(timezone.utc),
            cgroup=self.sandbox_cgroup(sandbox_id),
            netns=None if config.host_network else str(self.sandbox_dir(sandbox_id) / "ns" / "net"),
            labels=config.labels, annotations=config.annotations, host_network=config.host_network,
            host_ipc=config.host_ipc, host_pid=config.host_pid, share_pid=config.share_process_namespace,
            hostname=config.hostname, port_mappings=[replace(p) for p in config.port_mappings],
            handler=config.runtime_handler)

    async def _adopt_warm(self, record: SandboxRecord, warm: WarmSandbox, config: PodSandboxConfig) -> None:
        """A warm sandbox becomes the pod's: its hostname, and its hostPort mappings on the side."""
        await pin_namespaces(self.sandbox_dir(record.id) / "ns", config.hostname, ("uts",))
        self._save(record)
        if record.port_mappings and record.netns:
            # The portmap plugin takes tens of milliseconds; nothing before a container
            # starts needs the mappings, so start_container waits for them instead.
            self._ports_pending[record.id] = asyncio.create_task(self.network.add_port_mappings(
                record.id, Path(record.netns), [cni_port(p) for p in record.port_mappings]))

    async def _make_namespaces(self, record: SandboxRecord, config: PodSandboxConfig) -> None:
        directory = self.sandbox_dir(record.id)
        directory.mkdir(parents=True)
        kinds = tuple(k for k, host in (("net", config.host_network), ("ipc", config.host_ipc),
                                        ("uts", config.host_network)) if not host)
        if kinds:
            await pin_namespaces(directory / "ns", config.hostname, kinds)
        if not config.host_ipc:
            await mount_shm(directory)
        self._save(record)
        if record.netns is not None:
            status = await self.network.attach(
                record.id, Path(record.netns), port_mappings=[cni_port(p) for p in record.port_mappings],
                pod_name=config.metadata.name, pod_namespace=config.metadata.namespace, pod_uid=config.metadata.uid)
            record.ips = list(status.ips)

    async def _teardown(self, record: SandboxRecord) -> None:
        pending = self._ports_pending.pop(record.id, None)
        if pending is not None:  # its ADD must be over before the DEL that undoes it
            await asyncio.gather(pending, return_exceptions=True)
        hostname = self._hostname_pending.pop(record.id, None)
        if hostname is not None:  # its exec must be over before the sandbox goes
            await asyncio.gather(hostname, return_exceptions=True)
        directory = self.sandbox_dir(record.id)
        handler = self.handlers.get(record.handler)
        if handler is not None:  # first: a handler's sandbox may hold the namespaces and files below
            await handler.stop_sandbox(record.id)
        stop_pid_holder(record.pid_holder)
        if not record.host_network:
            await self.network.detach(record.id, Path(record.netns) if record.netns else None,
                                      port_mappings=[cni_port(p) for p in record.port_mappings])
        umount(str(directory / "shm"))
        unpin_namespaces(directory / "ns")
        shutil.rmtree(directory, ignore_errors=True)

    async def network_ready(self, sandbox_id: str, stop_pod: Callable[[str], Awaitable[None]]) -> None:
        """Waits for the sandbox's pending hostPort mappings and hostname; if they failed the
        sandbox is stopped with `stop_pod` (CRI's StopPodSandbox, containers and all) and is
        NOTREADY (the agent makes a new one), and no container starts in it."""
        record = self.get(sandbox_id)
        for pending_of, failed in ((self._ports_pending, "hostPort mappings failed"),
                                   (self._hostname_pending, "setting its hostname failed")):
            pending = pending_of.get(sandbox_id)
            if pending is None:
                continue
            await asyncio.gather(pending, return_exceptions=True)
            pending_of.pop(sandbox_id, None)
            if not pending.cancelled() and pending.exception() is not None and record.state is SandboxState.READY:
                await stop_pod(sandbox_id)
                record.message = f"{failed}: {pending.exception()}"
                self._save(record)
        if record.state is not SandboxState.READY:
            raise ContainerRuntimeError(f"pod sandbox {sandbox_id} is not ready" +
                                        (f": {record.message}" if record.message else ""))

    async def stop(self, sandbox_id: str) -> None:
        """Kills what is left in the pod's cgroup and releases its network and namespaces; its
        containers are stopped first by the caller."""
        record = self.get(sandbox_id)
        # What outlived its container's init (exec'd or orphaned processes in a shared PID
        # namespace) goes with the pod, however many tasks there are.
        await asyncio.to_thread(cgroups.kill_cgroup, record.cgroup)
        if record.state is SandboxState.READY:
            await self._teardown(record)
            record.state = SandboxState.NOTREADY
            self._save(record)

    def remove(self, sandbox_id: str) -> None:
        """The record and cgroup of a stopped sandbox whose containers are gone."""
        record = self.get(sandbox_id)
        cgroups.remove_cgroup(record.cgroup)
        self._forget(sandbox_id)

    def stats(self, sandbox_id: str) -> PodSandboxStats:
        cgroup = self.get(sandbox_id).cgroup
        return PodSandboxStats(sandbox_id, cgroups.memory_working_set(cgroup), cgroups.pids_current(cgroup))

    def status(self, r: SandboxRecord) -> PodSandboxStatus:
        state = r.state
        if state is SandboxState.READY and not self.handler(r.handler).sandbox_running(self.spec(r)):
            state = SandboxState.NOTREADY  # its handler's sandbox died; stop_pod_sandbox still tears it down
        return PodSandboxStatus(
            id=r.id, metadata=replace(r.metadata), state=state, created_at=r.created_at, ip=r.ip, ips=r.ips,
            labels=r.labels, annotations=r.annotations, host_network=r.host_network, netns_path=r.netns,
            runtime_handler=r.handler, notes=list(r.notes))

    def statuses(self, label_selector: dict[str, str] | None = None) -> list[PodSandboxStatus]:
        """Every sandbox, or those whose labels include `label_selector` (CRI's filter)."""
        if not label_selector:
            return [self.status(r) for r in self.records()]
        return [self.status(self._records[i]) for i in self._labels.select(label_selector)]

    def update_resources(self, sandbox_id: str, memory_limit: int | None) -> None:
        """A handed-over sandbox takes its new pod's memory limit (CRI's
        UpdatePodSandboxResources). Only a handler with its own kernel has a pod-level limit (see
        `run`); one below what the sandbox already uses is refused."""
        record = self.get(sandbox_id)
        if not self.handler(record.handler).host_kernel:
            cgroups.set_memory_limit(record.cgroup, memory_limit)

    async def update(self, sandbox_id: str, labels: dict[str, str], annotations: dict[str, str],
                     hostname: str | None = None) -> None:
        """Hands a sandbox to another pod (HyperContainer's replace): new owner labels and
        hostname, the same namespaces and IP."""
        record = self.get(sandbox_id)
        record.labels, record.annotations = dict(labels), dict(annotations)
        self._labels.put(record.id, record.labels)
        if hostname and hostname != record.hostname and not record.host_network:
            await self.handler(record.handler).set_hostname(self.spec(record), hostname)
            etc = self.sandbox_dir(sandbox_id) / "etc"
            (etc / "hostname").write_text(hostname + "\n")
            hosts = (etc / "hosts").read_text().replace(f"\t{record.hostname}\n", f"\t{hostname}\n")
            (etc / "hosts").write_text(hosts)
            record.hostname = hostname
        self._save(record)

