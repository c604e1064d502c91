"""The `runsc` handler: each pod in its own gVisor kernel, as containerd's runsc shim runs it.

One gVisor sandbox per pod: its first container is a pause process (the sandbox container,
annotated `io.kubernetes.cri.container-type: sandbox`), and the pod's containers join it
(`container`, with `io.kubernetes.cri.sandbox-id`), which runsc reads to start them in the
same sandbox. So they share one kernel, its UTS and IPC namespaces and the pod's network;
each has its own mount namespace, and its own PID namespace unless the pod shares one
(runsc puts containers whose PID namespace path is the same into one PID namespace).

The sandbox boots in the pod's network namespace. With `network="sandbox"` (runsc's default)
gVisor's own netstack serves it, so the pod's packets never reach the host's TCP/IP stack;
where runsc refuses that ("cannot run with network enabled in root network namespace": it
compares with PID 1's namespace, which some hosts hide) the handler falls back to
`--network=host`, the pod's namespace through the host kernel, and says so.

conmon cannot monitor a container inside the sandbox; `gvisormon` does (logs, exit file).
Signals and the hostname go through the sandbox's control server (`gvisorctl`), as `runsc kill`
and `runsc exec` would send them, without executing runsc.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import py_compile
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podbay.runtime import cgroups
from podbay.runtime.config import RUNSC_NETWORKS
from podbay.runtime import gvisormon
from podbay.runtime.gvisorctl import Capabilities, ControlError, Exec, SandboxControl
from podbay.runtime.console import ConsoleSocket
from podbay.runtime.files import read_pid_file
from podbay.runtime.handler import Created, SandboxSpec
from podbay.runtime.oci import OCIRuntime, read_sync_pipe, signal_number
from podbay.runtime.types import ContainerRuntimeError

GVISOR_HANDLER = "runsc"  # the handler name containerd's and GKE's gVisor RuntimeClasses use
# The RuntimeClass's overhead.podFixed memory: the pod's limit holds its kernel too. Measured on
# ptrace: a booted sandbox 12 MiB, and about 5 MiB more for each idle container (its gofer).
GVISOR_MEMORY_OVERHEAD = "32Mi"
GVISOR_BUNDLE = "gvisor"  # the sandbox container's bundle, in the sandbox's directory
CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
PAUSE = "/.pause/busybox"  # busybox-static bind-mounted read-only: the sandbox container's sleep
NETSTACK_REFUSED = "cannot run with network enabled in root network namespace"
_PIPE = asyncio.subprocess.PIPE
_CONSOLE_SECONDS = 10.0  # runsc sends the terminal before its create returns
_CAP_SYS_ADMIN = 1 << 21  # sethostname's, held in the sandbox's kernel only
_SYS_ADMIN = Capabilities(permitted=_CAP_SYS_ADMIN, effective=_CAP_SYS_ADMIN, bounding=_CAP_SYS_ADMIN)


@dataclass
class _Monitor:
    """A container's gvisormon, started at create and waiting to run `runsc start`: its
    interpreter's start is then off the path of the container's start."""
    process: asyncio.subprocess.Process
    go: int  # a byte written starts the container; closed without one, the monitor ends
    sync: int  # where the monitor answers once `runsc start` has run


@dataclass(frozen=True)
class GVisorConfig:
    runsc: str
    root: Path  # runsc --root: its state
    exits: Path  # one file per exited container, as conmon's --exit-dir
    platform: str = "ptrace"  # KVM needs /dev/kvm, which nested hosts may not give
    network: str = "sandbox"  # RUNSC_NETWORKS
    pause_binary: str = "/bin/busybox"  # static: it runs inside the sandbox


class GVisorHandler:
    name = GVISOR_HANDLER
    host_kernel = False

    def __init__(self, config: GVisorConfig) -> None:
        if config.network not in RUNSC_NETWORKS:
            raise ValueError(f"runsc network must be one of {', '.join(RUNSC_NETWORKS)}, not {config.network!r}")
        self.config = config
        self.network = config.network  # becomes "host" once the netstack is found refused here
        # Between create and start: each container's monitor, waiting for its start.
        self._monitors: dict[str, _Monitor] = {}
        self._monitor_compiled = False
        config.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _oci(self) -> OCIRuntime:
        # conmon is never used: runsc subcontainers are gvisormon's.
        return OCIRuntime(self.config.runsc, "", self.config.root, self.config.exits,
                          (f"--platform={self.config.platform}", f"--network={self.network}"))

    def _runsc(self) -> list[str]:
        oci = self._oci()
        return [oci.runtime, f"--root={oci.root}", *oci.global_args]

    async def _runsc_call(self, *args: str) -> None:
        # stderr into a file, not a pipe: the sandbox and gofer processes `runsc create` leaves
        # behind inherit it, so a pipe would not end with runsc.
        with tempfile.TemporaryFile() as err:
            proc = await asyncio.create_subprocess_exec(*self._runsc(), *args, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.DEVNULL, stderr=err)
            if await proc.wait() != 0:
                err.seek(0)
                raise ContainerRuntimeError(err.read().decode(errors="replace").strip() or f"runsc {args[0]} failed")

    # -- the sandbox -------------------------------------------------------------

    def _sandbox_bundle(self, sandbox: SandboxSpec) -> Path:
        return sandbox.directory / GVISOR_BUNDLE

    def _pid_namespace(self, sandbox: SandboxSpec) -> dict[str, str]:
        # runsc compares PID namespace paths between containers and never opens them: one name
        # per pod puts the pod's containers in one PID namespace.
        return {"type": "pid", "path": str(sandbox.directory / "gvisor-pid")} if sandbox.share_pid else {"type": "pid"}

    def _namespaces(self, sandbox: SandboxSpec) -> list[dict[str, str]]:
        network = {"type": "network", "path": sandbox.netns} if sandbox.netns else {"type": "network"}
        return [{"type": "mount"}, network, self._pid_namespace(sandbox), {"type": "ipc"}, {"type": "uts"}]

    def _sandbox_config(self, sandbox: SandboxSpec, rootfs: Path) -> dict[str, Any]:
        return {
            "ociVersion": "1.0.2",
            "process": {"args": [PAUSE, "sleep", "2147483647"], "cwd": "/", "env": ["PATH=/"],
                        "user": {"uid": 65535, "gid": 65535}, "terminal": False, "noNewPrivileges": True},
            "root": {"path": str(rootfs), "readonly": True},
            "hostname": sandbox.hostname,
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec"]},
                       {"destination": PAUSE, "type": "bind", "source": self.config.pause_binary,
                        "options": ["rbind", "ro"]}],
            "linux": {"namespaces": self._namespaces(sandbox), "cgroupsPath": _sandbox_cgroup(sandbox.cgroup)},
            "annotations": {CONTAINER_TYPE: "sandbox", SANDBOX_ID: sandbox.id},
        }

    async def start_sandbox(self, sandbox: SandboxSpec) -> list[str]:
        if sandbox.host_network or sandbox.host_pid or sandbox.host_ipc:
            # As GKE Sandbox: a pod in the host's namespaces would not be in its own kernel.
            raise ContainerRuntimeError("the runsc handler runs no pod in the host's network, PID or IPC "
                                        "namespaces (hostNetwork, hostPID, hostIPC)")
        bundle = self._sandbox_bundle(sandbox)
        (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(self._sandbox_config(sandbox, bundle / "rootfs")))
        try:
            await self._boot(sandbox.id, bundle)
        except ContainerRuntimeError as exc:
            if self.network != "sandbox" or NETSTACK_REFUSED not in str(exc):
                raise
            await self.stop_sandbox(sandbox.id)
            self.network = "host"
            await self._boot(sandbox.id, bundle)
        if self.network == "host" and sandbox.netns:
            await _unprivileged_ports(sandbox.netns)
        if self.network != self.config.network:
            return [f"gVisor's netstack (--runsc-network=sandbox) cannot run on this host ({NETSTACK_REFUSED}); "
                    "the sandbox uses the pod's network namespace through the host kernel (--network=host)"]
        return []

    async def _boot(self, sandbox_id: str, bundle: Path) -> None:
        await self._runsc_call("create", "--bundle", str(bundle), "--pid-file", str(bundle / "pidfile"), sandbox_id)
        await self._runsc_call("start", sandbox_id)

    async def stop_sandbox(self, sandbox_id: str) -> None:
        # Kills the sandbox and with it every container still in it, their gofers included.
        await self._oci().delete(sandbox_id)

    def sandbox_running(self, sandbox: SandboxSpec) -> bool:
        pid = read_pid_file(self._sandbox_bundle(sandbox) / "pidfile")
        if pid is None:
            return False
        try:
            # The id in its command line: a pid the kernel has given to another process is not it.
            return sandbox.id.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    async def set_hostname(self, sandbox: SandboxSpec, hostname: str) -> None:
        # The UTS namespace is the sandbox kernel's, one for all its containers (runsc ignores a
        # subcontainer's `hostname`): set from inside, as `hostname` would, by the pause container.
        process = Exec(sandbox.id, PAUSE, (PAUSE, "hostname", hostname), env=("PATH=/",), capabilities=_SYS_ADMIN)
        try:
            code = await asyncio.to_thread(SandboxControl(sandbox.id, str(self.config.root)).run, process)
        except ControlError as exc:
            raise ContainerRuntimeError(f"could not set the hostname of pod sandbox {sandbox.id}: {exc}") from exc
        if code != 0:
            raise ContainerRuntimeError(f"could not set the hostname of pod sandbox {sandbox.id}: "
                                        f"`hostname` exited with {code}")

    # -- containers --------------------------------------------------------------

    def container_spec(self, spec: dict[str, Any], sandbox: SandboxSpec) -> dict[str, Any]:
        linux = {**spec["linux"], "namespaces": self._namespaces(sandbox),
                 "cgroupsPath": _absolute(spec["linux"]["cgroupsPath"])}
        annotations = {**spec.get("annotations", {}), CONTAINER_TYPE: "container", SANDBOX_ID: sandbox.id}
        return {**spec, "linux": linux, "annotations": annotations}

    async def create(self, container_id: str, bundle: Path, log_path: Path, *, tty: bool,
                     stdin: bool, stdin_once: bool = False) -> Created:
        (self.config.exits / container_id).unlink(missing_ok=True)
        args = ["create", "--bundle", str(bundle), "--pid-file", str(bundle / "pidfile")]
        stdin_flags = ("--stdin-once",) if stdin_once else ("--stdin",) if stdin else ()
        if tty:
            # runsc makes the terminal, hands its slave to the sandbox and sends the master to the
            # console socket, as crun does to conmon; gvisormon holds it from start on.
            console = ConsoleSocket(self.config.root / f"console-{container_id[:16]}.sock")
            try:
                receiving = asyncio.ensure_future(console.receive())
                try:
                    await self._runsc_call(*args, f"--console-socket={console.path}", container_id)
                    master = await asyncio.wait_for(receiving, _CONSOLE_SECONDS)
                finally:
                    receiving.cancel()
            finally:
                console.close()
            try:
                self._monitors[container_id] = await self._monitor(container_id, bundle, log_path,
                                                                   ("--terminal", str(master), *stdin_flags), master)
            finally:
                os.close(master)  # the monitor's now
        else:
            # The monitor's interpreter starts while runsc creates the container.
            monitor = asyncio.ensure_future(self._monitor(container_id, bundle, log_path, stdin_flags))
            try:
                await self._runsc_call(*args, container_id)
            except BaseException:
                await self._end_monitor(await monitor)
                raise
            self._monitors[container_id] = await monitor
        return Created(read_pid_file(bundle / "pidfile") or 0, None)

    async def _monitor(self, container_id: str, bundle: Path, log_path: Path, flags: tuple[str, ...],
                       terminal: int | None = None) -> _Monitor:
        spec = json.loads((bundle / "config.json").read_text())
        go_read, go_write = os.pipe()
        sync_read, sync_write = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", str(await self._monitor_program()), str(sync_write), str(log_path),
                str(self.config.exits / container_id), "--sandbox", spec["annotations"][SANDBOX_ID],
                "--runsc-root", str(self.config.root),
                "--go-fd", str(go_read), *flags, "--oom-events", str(_sandbox_oom_events(spec)),
                "--", *self._runsc(), container_id,
                pass_fds=(sync_write, go_read, *(() if terminal is None else (terminal,))),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, cwd=str(bundle))
        except BaseException:
            for fd in (go_write, sync_read):
                os.close(fd)
            raise
        finally:
            for fd in (go_read, sync_write):
                os.close(fd)
        return _Monitor(proc, go_write, sync_read)

    async def _monitor_program(self) -> Path:
        """gvisormon compiled, beside runsc's root: a script run from source is compiled in each
        monitor, whose heap then holds 1.3 MiB more for its container's life. Python runs a
        compiled file as it runs a script."""
        compiled = self.config.root.parent / "gvisormon.pyc"
        # Compiled anew by each runtime process: a run root that outlived an upgrade keeps the old.
        if not self._monitor_compiled or not compiled.exists():
            await asyncio.to_thread(py_compile.compile, gvisormon.__file__, str(compiled), doraise=True)
            self._monitor_compiled = True
        return compiled

    async def _end_monitor(self, monitor: _Monitor) -> None:
        """A monitor whose container never starts: the closed pipe ends it."""
        os.close(monitor.go)
        os.close(monitor.sync)
        await monitor.process.wait()

    async def start(self, container_id: str, bundle: Path, log_path: Path) -> int | None:
        monitor = self._monitors.pop(container_id, None)
        if monitor is None:
            # Created by an earlier agent process: a monitor of its own now (a terminal made at
            # create went with that process).
            monitor = await self._monitor(container_id, bundle, log_path, ())
        try:
            with contextlib.suppress(BrokenPipeError):  # a monitor that has died says nothing below
                os.write(monitor.go, b"1")
            reply = await read_sync_pipe(monitor.sync)
        finally:
            os.close(monitor.go)
            os.close(monitor.sync)
        await monitor.process.wait()  # the monitor's first process, which ends once the monitor has detached
        pid = int(str(reply.get("data", -1))) if reply else -1
        if pid < 0:
            raise ContainerRuntimeError(str(reply.get("message") or "runsc start failed") if reply
                                        else f"the gVisor monitor of container {container_id} did not start")
        return pid

    async def kill(self, container_id: str, sig: int | str, process: tuple[int, int] | None = None) -> None:
        # Never by host pid: every container of the pod is the one sandbox process to the host.
        signo = signal_number(sig if isinstance(sig, str) else signal.Signals(sig).name)
        if signo is None:  # a name Python does not know (SIGRTMIN+3): runsc parses it
            await self._oci().kill(container_id, sig)
            return
        sandbox_id = self._sandbox_of(container_id)
        # Ignored as `runsc kill`'s exit is: a container or sandbox already gone has nothing to stop.
        if sandbox_id is not None:
            with contextlib.suppress(ControlError):
                await asyncio.to_thread(SandboxControl(sandbox_id, str(self.config.root)).signal, container_id, signo)

    def _sandbox_of(self, container_id: str) -> str | None:
        """The id of the sandbox runsc runs the container in, from the name of runsc's state
        file for it (`<container id>_sandbox:<sandbox id>.state`)."""
        prefix, suffix = f"{container_id}_sandbox:", ".state"
        for entry in os.scandir(self.config.root):
            if entry.name.startswith(prefix) and entry.name.endswith(suffix):
                return entry.name[len(prefix):-len(suffix)]
        return None

    async def delete(self, container_id: str) -> None:
        monitor = self._monitors.pop(container_id, None)
        if monitor is not None:  # created, never started
            await self._end_monitor(monitor)
        await self._oci().delete(container_id)

    async def exec(self, container_id: str, process: dict[str, Any], *, console_socket: Path | None = None,
                   pid_file: Path | None = None,
                   stdio: tuple[int, int, int] = (_PIPE, _PIPE, _PIPE)) -> asyncio.subprocess.Process:
        if console_socket is None:
            return await self._oci().exec(container_id, process, pid_file=pid_file, stdio=stdio)
        # runsc 20221219 never sends an exec's terminal to a console socket, but takes a terminal
        # as its stdio for one (it tells the sandbox its stdio is a pty): the master goes to the
        # console socket from here, so the caller gets it as from crun.
        master, slave = os.openpty()
        try:
            proc = await self._oci().exec(container_id, process, pid_file=pid_file, stdio=(slave, slave, slave))
            try:
                await asyncio.to_thread(_send_terminal, console_socket, master)
            except OSError:
                proc.kill()
                await proc.wait()
                raise
            return proc
        finally:
            os.close(slave)
            os.close(master)

    def exit_code(self, container_id: str) -> int | None:
        return self._oci().exit_code(container_id)

    async def state(self, container_id: str) -> dict[str, object] | None:
        return await self._oci().state(container_id)



def _absolute(cgroup: str) -> str:
    """A cgroupsPath from the hierarchies' roots, where the pod's cgroup and its limits are: runsc
    reads a relative one below its own cgroup (which is not the root when podbay runs in one)."""
    return "/" + cgroup.lstrip("/")


def _sandbox_cgroup(pod_cgroup: str) -> str:
    """The sandbox container's cgroup, where runsc puts the whole pod: its kernel, the gofers and
    the ptrace stubs (a container's own cgroup stays empty)."""
    return _absolute(f"{pod_cgroup}/sandbox")


def _sandbox_oom_events(spec: dict[str, Any]) -> Path:
    """Where the OOM kills of the sandbox a container runs in are counted: the container's
    cgroupsPath names its pod's cgroup, under which runsc keeps the sandbox's."""
    pod_cgroup = spec["linux"]["cgroupsPath"].rpartition("/")[0]
    return cgroups.oom_events_file(_sandbox_cgroup(pod_cgroup))


def _send_terminal(console_socket: Path, master: int) -> None:
    """The terminal's master to a console socket, as an OCI runtime sends it (SCM_RIGHTS)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(console_socket))
        socket.send_fds(sock, [b"terminal"], [master])


async def _unprivileged_ports(netns: str) -> None:
    """On the host's stack the sandbox's sockets are those of an unprivileged host process, so a
    pod could not bind a port below 1024; in the pod's own network namespace any port is free to
    take, as Docker and containerd set for containers (net.ipv4.ip_unprivileged_port_start=0)."""
    proc = await asyncio.create_subprocess_exec("nsenter", f"--net={netns}", "sysctl", "-qw",
                                                "net.ipv4.ip_unprivileged_port_start=0",
                                                stdout=asyncio.subprocess.DEVNULL, stderr=_PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise ContainerRuntimeError(f"could not open the low ports of the pod's network: {err.decode().strip()}")
