"""Runtime handlers: what runs a pod's containers once the service has made its sandbox
(namespace files, CNI network, /etc files, /dev/shm). A RuntimeClass names one by its
`handler`, as containerd's `runtimes.<name>` and CRI-O's `runtimes` tables do.

The seam is CRI's container verbs plus the sandbox's own start and stop, so a handler
with its own kernel fits: gVisor boots one sandbox per pod in `start_sandbox` and runs
each container inside it; a VM handler (QEMU or Cloud Hypervisor with a guest agent,
where KVM works) would boot the VM there and speak to its agent in the container verbs.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from podbay.runtime.files import read_pid_file
from podbay.runtime.oci import OCIRuntime
from podbay.runtime.seccompbpf import CompiledFilters
from podbay.runtime.types import ContainerRuntimeError

_PIPE = asyncio.subprocess.PIPE
DEFAULT_HANDLER = "runc"  # containerd's name for its default runtime, whichever binary it runs


@dataclass(frozen=True)
class SandboxSpec:
    """What a handler is told of a pod sandbox the service has made."""

    id: str
    hostname: str
    directory: Path  # the sandbox's run directory: ns/ (namespace files), etc/, shm/; removed with it
    netns: str | None  # the pod's network namespace file; None: the host's network
    cgroup: str  # the pod's cgroup (relative to the hierarchies' roots)
    share_pid: bool  # shareProcessNamespace
    host_network: bool
    host_pid: bool
    host_ipc: bool


@dataclass(frozen=True)
class Created:
    pid: int  # the container's process as the host sees it (for gVisor: its sandbox's)
    monitor_pid: int | None  # the process whose exit means the container's; None until start


class RuntimeHandler(Protocol):
    name: str
    # True: the containers are host processes joining the pod's pinned namespaces (so the
    # service makes the shared PID namespace); False: the handler brings its own kernel.
    host_kernel: bool

    async def start_sandbox(self, sandbox: SandboxSpec) -> list[str]:
        """Boots what the handler needs per pod; returns notes worth an event (a fallback taken).
        Anything made is undone by stop_sandbox, which the service calls after a failure too."""
        ...

    async def stop_sandbox(self, sandbox_id: str) -> None:
        """Idempotent; also for a sandbox whose start failed half-way."""
        ...

    def sandbox_running(self, sandbox: SandboxSpec) -> bool:
        """False once what start_sandbox booted has died (gVisor's Sentry killed): the sandbox is
        then NOTREADY, so the agent makes a new one, as containerd reports a dead sandbox."""
        ...

    async def set_hostname(self, sandbox: SandboxSpec, hostname: str) -> None: ...

    def container_spec(self, spec: dict[str, Any], sandbox: SandboxSpec) -> dict[str, Any]:
        """The OCI spec the service built, as this handler runs it."""
        ...

    async def create(self, container_id: str, bundle: Path, log_path: Path, *, tty: bool,
                     stdin: bool, stdin_once: bool = False) -> Created: ...

    async def start(self, container_id: str, bundle: Path, log_path: Path) -> int | None:
        """Runs the created container; returns its monitor's pid if one begins only now."""
        ...

    async def kill(self, container_id: str, sig: int | str, process: tuple[int, int] | None = None) -> None: ...

    async def delete(self, container_id: str) -> None: ...

    async def exec(self, container_id: str, process: dict[str, Any], *, console_socket: Path | None = None,
                   pid_file: Path | None = None,
                   stdio: tuple[int, int, int] = (_PIPE, _PIPE, _PIPE)) -> asyncio.subprocess.Process: ...

    def exit_code(self, container_id: str) -> int | None: ...

    async def state(self, container_id: str) -> dict[str, object] | None:
        """The OCI runtime's `state` of the container; None when it knows no such container."""
        ...


class OCIHandler:
    """crun (or runc) under conmon: the containers are host processes in the pod's namespaces."""

    host_kernel = True

    def __init__(self, name: str, oci: OCIRuntime, filters: CompiledFilters | None = None) -> None:
        self.name = name
        self.oci = oci
        self.filters = filters  # crun's: it loads a compiled filter from an annotation

    async def start_sandbox(self, sandbox: SandboxSpec) -> list[str]:
        return []  # the service's namespaces are the sandbox

    async def stop_sandbox(self, sandbox_id: str) -> None:
        return None

    def sandbox_running(self, sandbox: SandboxSpec) -> bool:
        return True  # the pinned namespaces live as long as the sandbox's record

    async def set_hostname(self, sandbox: SandboxSpec, hostname: str) -> None:
        uts = sandbox.directory / "ns" / "uts"
        proc = await asyncio.create_subprocess_exec("nsenter", f"--uts={uts}", "hostname", hostname)
        if await proc.wait() != 0:
            raise ContainerRuntimeError(f"could not set the hostname of pod sandbox {sandbox.id}")

    def container_spec(self, spec: dict[str, Any], sandbox: SandboxSpec) -> dict[str, Any]:
        return self.filters.annotate(spec) if self.filters else spec

    async def create(self, container_id: str, bundle: Path, log_path: Path, *, tty: bool,
                     stdin: bool, stdin_once: bool = False) -> Created:
        pid = await self.oci.create(container_id, bundle, log_path, tty=tty, stdin=stdin, stdin_once=stdin_once)
        if self.filters:
            self.filters.learn(container_id, bundle)
        return Created(pid, read_pid_file(bundle / "conmon.pid"))

    async def start(self, container_id: str, bundle: Path, log_path: Path) -> int | None:
        await self.oci.start(container_id)
        return None  # conmon has watched it since create

    async def kill(self, container_id: str, sig: int | str, process: tuple[int, int] | None = None) -> None:
        await self.oci.kill(container_id, sig, process)

    async def delete(self, container_id: str) -> None:
        await self.oci.delete(container_id)

    async def exec(self, container_id: str, process: dict[str, Any], *, console_socket: Path | None = None,
                   pid_file: Path | None = None,
                   stdio: tuple[int, int, int] = (_PIPE, _PIPE, _PIPE)) -> asyncio.subprocess.Process:
        return await self.oci.exec(container_id, process, console_socket=console_socket, pid_file=pid_file,
                                   stdio=stdio)

    def exit_code(self, container_id: str) -> int | None:
        return self.oci.exit_code(container_id)

    async def state(self, container_id: str) -> dict[str, object] | None:
        return await self.oci.state(container_id)


def no_runtime(name: str) -> ContainerRuntimeError:
    """containerd's words for a handler it has no runtime for, which the kubelet's event carries."""
    return ContainerRuntimeError(f'failed to get sandbox runtime: no runtime for "{name}" is configured')
