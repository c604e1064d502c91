"""Containers in pod sandboxes: their rootfs, bundle and records (CRI's CreateContainer,
StartContainer, StopContainer, RemoveContainer, ContainerStatus, ListContainers) and their exits.
Exec and attach are `execs.py`'s; the sandboxes are `sandboxes.py`'s."""
from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from podbay.api.errors import NotFound
from podbay.runtime import cgroups
from podbay.runtime.bundles import container_log_path, make_bundle
from podbay.runtime.config import RuntimeConfig
from podbay.runtime.containerstatus import record_exit, status_of
from podbay.runtime.diskusage import disk_usage
from podbay.runtime.exits import ExitWatcher
from podbay.runtime.handler import RuntimeHandler
from podbay.runtime.images import ImageStore
from podbay.runtime.labelindex import LabelIndex
from podbay.runtime.oci import OCIRuntime, process_start_time
from podbay.runtime.records import ContainerRecord
from podbay.runtime.rootfsahead import RootfsAhead
from podbay.runtime.sandboxes import Sandboxes
from podbay.runtime.seccomp import load_profile
from podbay.runtime.syscalls import finished_before_cancel, is_mountpoint, umount
from podbay.runtime.types import (
    ContainerConfig, ContainerRuntimeError, ContainerState, ContainerStats, ContainerStatus, ContainerUsage,
    SandboxState,
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _release_rootfs(bundle: Path) -> None:
    """An exited container's process and mounts go; its record, writable layer and log stay."""
    rootfs = bundle / "rootfs"
    if is_mountpoint(str(rootfs)):
        umount(str(rootfs), lazy=True)


class Containers:
    def __init__(self, config: RuntimeConfig, images: ImageStore, oci: OCIRuntime, sandboxes: Sandboxes,
                 sandbox_ready: Callable[[str], Awaitable[None]]) -> None:
        self.config = config
        self.images = images
        self.oci = oci
        self.sandboxes = sandboxes
        self._sandbox_ready = sandbox_ready  # waits for the sandbox's network before a start
        self.exits = ExitWatcher()
        self._records: dict[str, ContainerRecord] = {}
        self._labels = LabelIndex()
        # each container's OCI process, which every exec (and so every exec probe) starts from
        self._processes: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.ahead = RootfsAhead(images, self._container_dir, self.bundle, self._remove_files)

    # -- records -------------------------------------------------------------------

    def _container_dir(self, container_id: str) -> Path:
        return self.config.containers_root / container_id

    def bundle(self, container_id: str) -> Path:
        return self.config.bundles_root / container_id

    def get(self, container_id: str) -> ContainerRecord:
        try:
            return self._records[container_id]
        except KeyError:
            raise NotFound(f"container {container_id} not found") from None

    def records(self) -> list[ContainerRecord]:
        return list(self._records.values())

    def _remember(self, record: ContainerRecord) -> None:
        self._records[record.id] = record
        self._labels.put(record.id, record.labels)

    def _save(self, record: ContainerRecord) -> None:
        self._remember(record)
        record.save()

    def handler_of(self, record: ContainerRecord) -> RuntimeHandler:
        return self.sandboxes.handler(record.handler)

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def load(self) -> None:
        for path in self.config.containers_root.glob("*/record.json"):
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
                self._remember(ContainerRecord.load(path))

    async def remove_unrecorded(self) -> None:
        """A container's directories and rootfs mount without a record were being made when a
        previous process died (create writes the record once they exist): nothing refers to
        them, so they would stay until the host reboots. A record created without a pid is one
        whose `crun create` never finished: nothing will start it."""
        for record in self.records():
            if record.state is ContainerState.CREATED and record.pid is None:
                await self._discard(record.id)
        for root in (self.config.bundles_root, self.config.containers_root):
            for directory in list(root.iterdir()):
                if directory.name not in self._records:
                    await self._discard(directory.name)

    async def adopt_started(self) -> None:
        """A container recorded as created may have been started by a process that died between
        `crun start` and writing the record; crun knows. Left as created, the agent would start a
        second instance beside the one that runs."""
        for record in self.records():
            if record.state is not ContainerState.CREATED or not record.conmon_pid:
                continue
            state = await self.handler_of(record).state(record.id)
            if state is not None and state.get("status") in ("running", "stopped"):
                # The start's moment was never recorded; now is the closest this process knows.
                record.state, record.started_at = ContainerState.RUNNING, _now()
                self._save(record)

    def watch_running(self) -> None:
        for record in self.records():
            if record.state is ContainerState.RUNNING:
                self.exits.watch(record.id, record.conmon_pid)

    # -- create and start ----------------------------------------------------------

    async def create(self, sandbox_id: str, config: ContainerConfig, rootfs_ahead: str | None = None) -> str:
        """The container's rootfs (overlay of its image's layers; `rootfs_ahead`: the one
        `self.ahead` made, if of this image), bundle and conmon-held process, stopped before its
        command runs (CRI's CreateContainer)."""
        try:
            sandbox = self.sandboxes.get(sandbox_id)
            if sandbox.state is not SandboxState.READY:
                raise ContainerRuntimeError(f"pod sandbox {sandbox_id} is not ready")
            handler = self.sandboxes.handler(sandbox.handler)
            image = self.images.image_status(config.image)
            if image is None:
                raise ContainerRuntimeError(f'image "{config.image}" not present')
            seccomp_profile = None if config.security.privileged else load_profile(config.security.seccomp)
        except BaseException:
            self.ahead.release(rootfs_ahead)
            raise
        made = self.ahead.claim(rootfs_ahead, image.id)
        container_id = made or secrets.token_hex(32)
        record = ContainerRecord(
            path=self._container_dir(container_id) / "record.json", id=container_id, sandbox_id=sandbox_id,
            metadata=replace(config.metadata), created_at=_now(), image=config.image, image_ref=image.id,
            log_path=str(container_log_path(self.config, sandbox, config.metadata)),
            labels=config.labels, annotations=config.annotations, stop_signal=config.stop_signal,
            termination_message_path=config.termination_message_path, handler=sandbox.handler)
        try:
            pid = self._pid_namespace_of(config.pid_target_id) if config.pid_target_id else None
            self._processes[container_id] = await make_bundle(
                self.images, handler, self.sandboxes, sandbox, record, config, pid, seccomp_profile, made is not None)
            self._remember(record)  # saved by make_bundle
        except BaseException:
            await finished_before_cancel(self._discard(container_id))
            raise
        try:
            # A cancel while conmon runs `crun create` waits for it: the discard below then finds the
            # container made or not, rather than deleting before crun makes it and leaving it behind.
            created = await finished_before_cancel(handler.create(
                container_id, self.bundle(container_id), Path(record.log_path), tty=config.tty,
                stdin=config.stdin, stdin_once=config.stdin_once))
            record.pid, record.conmon_pid = created.pid, created.monitor_pid
            record.pid_start_time = process_start_time(record.pid) if record.pid else None
        except ContainerRuntimeError as exc:
            # The process could not be made (no such executable, a mount refused...): as containerd
            # reports it, the container exists and failed to start, so restartPolicy decides what next.
            await self._failed_to_start(record, exc)
            return container_id
        except BaseException:
            # Shielded: a second cancel during the discard would leave the record listed, pid None.
            await finished_before_cancel(self._discard(container_id))
            raise
        self._save(record)
        if created.monitor_pid is not None:
            self.exits.watch(container_id, created.monitor_pid)
        return container_id

    async def _failed_to_start(self, record: ContainerRecord, exc: ContainerRuntimeError) -> None:
        record.state, record.exit_code, record.reason = ContainerState.EXITED, 128, "StartError"
        record.message, record.finished_at = str(exc), _now()
        self._save(record)
        await self.handler_of(record).delete(record.id)
        _release_rootfs(self.bundle(record.id))

    def _pid_namespace_of(self, container_id: str) -> str:
        """The PID namespace of a running container, for another to join (by path in the OCI spec)."""
        target = self.get(container_id)
        if self.state(target) is not ContainerState.RUNNING or not target.pid:
            raise ContainerRuntimeError(f"target container {container_id[:12]} is not running")
        return f"/proc/{target.pid}/ns/pid"

    async def start(self, container_id: str, on_started: Callable[[], None]) -> None:
        async with self._lock(container_id):
            record = self.get(container_id)
            if record.reason == "StartError":
                raise ContainerRuntimeError(record.message)
            if record.state is not ContainerState.CREATED:
                raise ContainerRuntimeError(f"container {container_id} is {record.state.value}, not created")
            await self._sandbox_ready(record.sandbox_id)
            try:
                monitor = await self.handler_of(record).start(container_id, self.bundle(container_id),
                                                               Path(record.log_path))
            except ContainerRuntimeError as exc:
                await self._failed_to_start(record, exc)
                raise
            if monitor is not None:
                record.conmon_pid = monitor
                self.exits.watch(container_id, monitor)
            record.state = ContainerState.RUNNING
            on_started()
            record.started_at = _now()
            self._save(record)

    # -- state and exits -------------------------------------------------------------

    def state(self, record: ContainerRecord) -> ContainerState:
        """A running record whose monitor has exited has exited (its exit file says how)."""
        if record.state is ContainerState.RUNNING and self.exits.exited(record.id):
            return ContainerState.EXITED
        return record.state

    def settle(self, record: ContainerRecord) -> ContainerRecord:
        """Moves a record to EXITED once conmon has written the exit file."""
        if record.state is not ContainerState.RUNNING or not self.exits.exited(record.id):
            return record
        code = self.handler_of(record).exit_code(record.id)
        if code is None:
            return record
        record_exit(record, code, self.config.exits_root / record.id, self.bundle(record.id),
                    self._container_dir(record.id))
        self._save(record)
        _release_rootfs(self.bundle(record.id))
        return record

    async def wait(self, container_id: str) -> ContainerStatus:
        record = self.get(container_id)
        await self.exits.watch(container_id, record.conmon_pid)
        return self.status(container_id)

    # -- stop and remove ---------------------------------------------------------------

    async def stop(self, container_id: str, timeout: float) -> None:
        """The stop signal, then SIGKILL after `timeout` seconds (CRI's StopContainer)."""
        async with self._lock(container_id):
            record = self.settle(self.get(container_id))
            handler = self.handler_of(record)
            if record.state is ContainerState.CREATED:
                await handler.delete(container_id)
                record.state, record.exit_code, record.reason = ContainerState.EXITED, 0, "Completed"
                record.finished_at = _now()
                self._save(record)
                _release_rootfs(self.bundle(container_id))
                return
            if record.state is not ContainerState.RUNNING:
                return
            exited = self.exits.watch(container_id, record.conmon_pid)
            process = (record.pid, record.pid_start_time) if record.pid and record.pid_start_time else None
            if timeout > 0:
                await handler.kill(container_id, record.stop_signal or "SIGTERM", process)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), timeout)
            if not exited.done():
                await handler.kill(container_id, signal.SIGKILL, process)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), 10)
            self.settle(self.get(container_id))

    async def remove(self, container_id: str) -> None:
        try:
            record = self.settle(self.get(container_id))
        except NotFound:
            return
        if record.state is ContainerState.RUNNING:
            await self.stop(container_id, 0)
        await self._discard(container_id)

    async def _discard(self, container_id: str) -> None:
        known = self._records.get(container_id)
        await (self.handler_of(known) if known else self.oci).delete(container_id)
        record = self._records.pop(container_id, None)
        self._labels.discard(container_id)
        self._processes.pop(container_id, None)
        if record is not None:
            Path(record.log_path).unlink(missing_ok=True)
        self._remove_files(container_id)
        (self.config.exits_root / container_id).unlink(missing_ok=True)
        self.exits.forget(container_id)
        self._locks.pop(container_id, None)

    def _remove_files(self, container_id: str) -> None:
        """The container's rootfs mount, bundle and directory (writable layer, record)."""
        bundle = self.bundle(container_id)
        umount(str(bundle / "rootfs"), lazy=True)
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(self._container_dir(container_id), ignore_errors=True)

    # -- status --------------------------------------------------------------------------

    def status(self, container_id: str) -> ContainerStatus:
        return status_of(self.settle(self.get(container_id)))

    def statuses(self, sandbox_id: str | None = None, label_selector: dict[str, str] | None = None
             ) -> list[ContainerStatus]:
        records = [self._records[i] for i in self._labels.select(label_selector)] if label_selector else self.records()
        out = []
        for r in records:
            if sandbox_id is None or r.sandbox_id == sandbox_id:
                with contextlib.suppress(NotFound):
                    out.append(self.status(r.id))
        return out

    async def stats(self, container_id: str) -> ContainerStats:
        """The container's writable layer usage (CRI's ContainerStats), walked off the event loop."""
        self.get(container_id)
        upper = self._container_dir(container_id) / "upper"
        return ContainerStats(container_id, await asyncio.to_thread(disk_usage, upper))

    def usage(self, container_id: str) -> ContainerUsage:
        """The container's CPU time and memory working set, from the cgroup crun made for it."""
        record = self.get(container_id)
        cgroup = f"{self.sandboxes.get(record.sandbox_id).cgroup}/{container_id[:16]}"
        return ContainerUsage(container_id, cgroups.cpu_usage_nanoseconds(cgroup), cgroups.memory_working_set(cgroup))

    # -- what exec and attach start from ------------------------------------------------

    def running(self, container_id: str) -> ContainerRecord:
        record = self.settle(self.get(container_id))
        if record.state is not ContainerState.RUNNING:
            raise ContainerRuntimeError(f"container {container_id} is not running")
        return record

    def process(self, container_id: str) -> dict[str, Any]:
        """The container's OCI process, which every exec (and so every exec probe) starts from."""
        base = self._processes.get(container_id)
        if base is None:  # made by an earlier podbay process: its bundle says
            base = json.loads((self.bundle(container_id) / "config.json").read_text())["process"]
            self._processes[container_id] = base
        return base
