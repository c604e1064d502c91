"""Warm sandboxes: made ahead of use and handed to the next pods that can use them.

A pod's network costs tens of milliseconds of plugin execs; the network and IPC namespaces,
/dev/shm and the CNI attachment of a few sandboxes are made ahead and handed to the next pods
that can use them (not hostNetwork or hostIPC). The hostname (UTS) and the hostPort mappings are
added when a pod takes one. A runsc pod's sandbox costs gVisor's boot besides: a few warm
sandboxes get their kernel booted ahead too (hyperd's warm VMs).
"""
from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Mapping, Protocol

from podbay.runtime import cgroups
from podbay.runtime.config import RuntimeConfig
from podbay.runtime.gvisor import GVISOR_HANDLER
from podbay.runtime.handler import RuntimeHandler, SandboxSpec
from podbay.runtime.namespaces import pin_namespaces
from podbay.runtime.network import PodNetwork
from podbay.runtime.syscalls import MS_NODEV, MS_NOSUID, mount_off_loop
from podbay.runtime.types import PodSandboxConfig

SHM_SIZE = 64 * 1024 * 1024
# A taken warm sandbox is replaced once a container has started in it, or after this pause if
# none does: refilling execs the CNI plugins, which would otherwise take the CPU from the pod that
# was just handed one while its containers are created.
WARM_REFILL_DELAY = 1.0


async def mount_shm(directory: Path) -> None:
    (directory / "shm").mkdir()
    await mount_off_loop("shm", str(directory / "shm"), "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={SHM_SIZE}")


class UnownedSandboxes(Protocol):
    """What the pool needs of the sandboxes: where one lives and how one no pod owns goes."""

    def sandbox_dir(self, sandbox_id: str) -> Path: ...

    def sandbox_cgroup(self, sandbox_id: str) -> str: ...

    def warm_spec(self, sandbox_id: str) -> SandboxSpec: ...

    async def teardown_unowned(self, sandbox_id: str) -> None: ...


@dataclass
class WarmSandbox:
    id: str
    ips: list[str]
    notes: list[str]  # the handler's, for a booted one
    booted: bool


class Refill:
    """One kind of warm sandbox topped up by one task at a time: after a pause that the next
    container start ends early, so the work takes no CPU from the pod that was just handed one."""

    def __init__(self, top_up: Callable[[], Awaitable[bool]]) -> None:
        self._top_up = top_up  # False: one could not be made, the pool stays short until asked again
        self._task: asyncio.Task[None] | None = None
        self._again: tuple[float, asyncio.Event] | None = None  # asked for while the task ran

    def ask(self, delay: float, started: asyncio.Event) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(delay, started))
        elif self._again is None or delay < self._again[0]:
            # Only a take asks for a refill, so one dropped here would leave the pool short for good.
            self._again = (delay, started)

    async def _run(self, delay: float, started: asyncio.Event) -> None:
        while True:
            if delay:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(started.wait(), delay)
            if not await self._top_up() or self._again is None:
                return
            (delay, started), self._again = self._again, None

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def cancel(self) -> None:
        self._again = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class WarmPool:
    def __init__(self, config: RuntimeConfig, handlers: Mapping[str, RuntimeHandler], network: PodNetwork,
                 sandboxes: UnownedSandboxes) -> None:
        self.config = config
        self.handlers = handlers
        self.network = network
        self.sandboxes = sandboxes
        self._ips: dict[str, list[str]] = {}  # warm sandbox id -> its IPs
        self._booted: dict[str, tuple[list[str], list[str]]] = {}  # booted sandbox id -> IPs, notes
        # Two loops: a gVisor boot takes a second or more, during which crun pods must still find
        # warm sandboxes.
        self._warm = Refill(self._make)
        self._boots = Refill(self._boot)
        # Set by the next container start after it was handed out: each refill asked for holds
        # the one current when it was asked, so a start before its pause began is not missed.
        self._container_started = asyncio.Event()

    @property
    def ready(self) -> int:
        """Warm (not booted) sandboxes ready to be taken."""
        return len(self._ips)

    def container_started(self) -> None:
        self._container_started.set()
        self._container_started = asyncio.Event()

    def take(self, config: PodSandboxConfig) -> WarmSandbox | None:
        """A booted sandbox for a runsc pod that can use one, else a warm one for a pod that can."""
        # Booted without shareProcessNamespace: the sandbox's own process is in no shared PID namespace.
        if config.runtime_handler == GVISOR_HANDLER and not config.share_process_namespace and self._booted:
            sandbox_id = next(iter(self._booted))
            ips, notes = self._booted.pop(sandbox_id)
            return WarmSandbox(sandbox_id, ips, notes, booted=True)
        if config.host_network or config.host_ipc or not self._ips:
            return None
        sandbox_id = next(iter(self._ips))
        return WarmSandbox(sandbox_id, self._ips.pop(sandbox_id), [], booted=False)

    def refill(self, delay: float = 0.0) -> None:
        if self.config.warm_sandboxes:
            self._warm.ask(delay, self._container_started)
        if self._booted_wanted():
            self._boots.ask(delay, self._container_started)

    async def wait(self) -> None:
        """Until the warm sandboxes being made are ready (they are made in the background)."""
        await asyncio.gather(self._warm.wait(), self._boots.wait())

    async def _make(self) -> bool:
        """Warm sandboxes up to the number wanted; False if one could not be made."""
        while len(self._ips) < self.config.warm_sandboxes:
            made = await self._make_one()
            if made is None:
                return False
            self._ips[made[0]] = made[1]
        return True

    async def _make_one(self) -> tuple[str, list[str]] | None:
        """A sandbox's namespaces, /dev/shm and network: its id and IPs, None if it failed."""
        sandbox_id = secrets.token_hex(32)
        directory = self.sandboxes.sandbox_dir(sandbox_id)
        try:
            directory.mkdir(parents=True)
            await pin_namespaces(directory / "ns", "", ("net", "ipc"))
            await mount_shm(directory)
            status = await self.network.attach(sandbox_id, directory / "ns" / "net")
        except BaseException as exc:
            # Cancelled too (a shutdown while it is being made): half a sandbox is in no pool
            # that drop() or a purge would find, so it goes here.
            await asyncio.shield(self.sandboxes.teardown_unowned(sandbox_id))
            if not isinstance(exc, Exception):
                raise
            return None
        return sandbox_id, list(status.ips)

    def _booted_wanted(self) -> int:
        if GVISOR_HANDLER not in self.handlers:
            return 0
        return max(0, self.config.warm_gvisor_sandboxes - len(self._booted))

    async def _boot(self) -> bool:
        """Boots warm sandboxes for gVisor up to the number wanted; False if one failed."""
        handler = self.handlers.get(GVISOR_HANDLER)
        while handler is not None and self._booted_wanted():
            made = await self._make_one()
            if made is None:
                return False
            sandbox_id, ips = made
            try:
                notes = await handler.start_sandbox(self.sandboxes.warm_spec(sandbox_id))
            except BaseException as exc:
                await asyncio.shield(self.sandboxes.teardown_unowned(sandbox_id))
                if not isinstance(exc, Exception):
                    raise
                return False
            self._booted[sandbox_id] = (ips, notes)
        return True

    async def drop(self) -> None:
        await asyncio.gather(self._warm.cancel(), self._boots.cancel())
        for sandbox_id in [*self._ips, *self._booted]:
            self._ips.pop(sandbox_id, None)
            self._booted.pop(sandbox_id, None)
            await self.sandboxes.teardown_unowned(sandbox_id)
            with contextlib.suppress(OSError):
                cgroups.remove_cgroup(self.sandboxes.sandbox_cgroup(sandbox_id))  # a booted one's (runsc made it)
