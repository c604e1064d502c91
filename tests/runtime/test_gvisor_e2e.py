"""The runsc handler on the real runtime: one gVisor kernel per pod, its containers inside it,
logs, exec and exit codes as under crun, and nothing left on the host afterwards."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import platform
import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest

from podbay.agent.containerlogs import parse_cri_line
from podbay.runtime.service import RuntimeService
from podbay.runtime.types import ContainerRuntimeError, ContainerState
from tests.conftest import HostEnv
from tests.runtime.conftest import running_runtime, runtime_config
from tests.runtime.test_runtime_e2e import container, run, sandbox

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


@pytest.fixture
async def gvisor_runtime(host_env: HostEnv) -> AsyncIterator[RuntimeService]:
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/setup.sh installs it)")
    async with running_runtime(dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)) as service:
        yield service


async def exited(runtime: RuntimeService, cid: str) -> int | None:
    status = await asyncio.wait_for(runtime.wait_container(cid), 60)
    assert status.state is ContainerState.EXITED
    return status.exit_code


def log_lines(path: str) -> list[bytes]:
    return [line.content for raw in Path(path).read_bytes().splitlines(keepends=True)
            if (line := parse_cri_line(raw)) is not None]


async def test_containers_share_one_gvisor_kernel(gvisor_runtime: RuntimeService) -> None:
    runtime = gvisor_runtime
    sid = await runtime.run_pod_sandbox(sandbox("gv", runtime_handler="runsc"))
    status = await runtime.pod_sandbox_status(sid)
    assert status.runtime_handler == "runsc" and status.ip
    # Where runsc refuses its netstack (hosts that hide PID 1's network namespace) the sandbox runs
    # on the host's stack in the pod's namespace, and the status says so for the agent's event.
    assert all("(--network=host)" in note for note in status.notes)
    server = await run(runtime, sid, container("web", "echo serving; exec sleep 600"))
    # The host's kernel is not the pod's: gVisor reports its own.
    code, out, _ = await runtime.exec_sync(server, ["uname", "-r"], 30)
    assert (code, out) == (0, b"4.4.0\n") and platform.release() != "4.4.0"
    assert (await runtime.exec_sync(server, ["sh", "-c", "exit 7"], 30))[0] == 7
    assert (await runtime.exec_sync(server, ["hostname"], 30))[1] == b"gv\n"

    # A second container: its own PID namespace (no shareProcessNamespace), the pod's localhost.
    talker = await run(runtime, sid, container("talk", "ps -o comm; echo to stderr >&2; exit 3"))
    assert await exited(runtime, talker) == 3
    lines = log_lines((await runtime.container_status(talker)).log_path)
    assert b"sleep" not in b"".join(lines) and b"to stderr" in lines
    assert log_lines((await runtime.container_status(server)).log_path) == [b"serving"]

    await runtime.stop_container(server, 10)
    # gVisor's init takes SIGTERM's default action, where Linux would ignore it for a pid 1.
    assert (await runtime.container_status(server)).exit_code == 143
    await runtime.remove_pod_sandbox(sid)


async def test_shared_process_namespace_and_start_errors(gvisor_runtime: RuntimeService) -> None:
    runtime = gvisor_runtime
    sid = await runtime.run_pod_sandbox(sandbox("share", runtime_handler="runsc", share_process_namespace=True))
    sleeper = await run(runtime, sid, container("sleeper", "exec sleep 600"))
    code, out, _ = await runtime.exec_sync(sleeper, ["ps", "-o", "comm"], 30)
    assert code == 0 and b"sleep" in out and b"busybox" in out  # the sandbox's pause process too
    session = await runtime.exec(sleeper, ["sh", "-c", "read x; echo got $x; exit 4"], stdin=True)
    try:
        await session.write_stdin(b"hello\n")
        out = b"".join([chunk async for chunk in session.output(1)])
        assert (out, await asyncio.wait_for(session.wait(), 30)) == (b"got hello\n", 4)
    finally:
        await session.close()
    bad = await runtime.create_container(sid, dataclasses.replace(container("bad", ""), argv=["/no/such/binary"]))
    with pytest.raises(ContainerRuntimeError):
        await runtime.start_container(bad)
    assert (await runtime.container_status(bad)).reason == "StartError"
    await runtime.remove_pod_sandbox(sid)



def processes_naming(word: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and word.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


async def test_a_container_removed_before_its_start_leaves_no_monitor(gvisor_runtime: RuntimeService) -> None:
    # A container's monitor starts with its create and waits there for the start.
    runtime = gvisor_runtime
    sid = await runtime.run_pod_sandbox(sandbox("unstarted", runtime_handler="runsc"))
    plain = await runtime.create_container(sid, container("plain", "exec sleep 600"))
    tty = await runtime.create_container(sid, container("tty", "exec sleep 600", tty=True, stdin=True))
    assert processes_naming(plain) and processes_naming(tty)
    started = await run(runtime, sid, container("started", "echo up"))
    await runtime.remove_container(plain)
    await runtime.remove_container(tty)
    assert processes_naming(plain) == [] and processes_naming(tty) == []
    assert [c.id for c in await runtime.list_containers()] == [started]
    assert await exited(runtime, started) == 0
    assert log_lines((await runtime.container_status(started)).log_path) == [b"up"]
    await runtime.remove_container(started)
    await runtime.remove_pod_sandbox(sid)


async def read_until(chunks: AsyncIterator[bytes], wanted: bytes) -> bytes:
    seen = b""
    async for chunk in chunks:
        seen += chunk
        if wanted in seen:
            return seen
    raise AssertionError(f"{wanted!r} never came; got {seen!r}")


async def test_terminals_for_containers_exec_and_attach(gvisor_runtime: RuntimeService) -> None:
    runtime = gvisor_runtime
    sid = await runtime.run_pod_sandbox(sandbox("tty", runtime_handler="runsc"))
    script = "[ -t 0 ] && echo a-terminal; while read line; do echo got $line; stty size; done; exit 5"
    shell = await run(runtime, sid, container("shell", script, tty=True, stdin=True))
    # attach -it: the container's own terminal, its input, its size, as through conmon.
    session = await runtime.attach(shell, tty=True, stdin=True)
    try:
        session.resize(100, 30)
        # The size goes to conmon's resize fifo, the input through the attach socket: the shell may
        # read a line and ask for its size before the new one arrived. It answers every line.
        async def lines() -> None:
            await session.write_stdin(b"one\n")
            while True:
                await asyncio.sleep(0.2)
                await session.write_stdin(b"again\n")
        feeding = asyncio.create_task(lines())
        try:
            seen = await asyncio.wait_for(read_until(session.output(1), b"30 100"), 30)
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeding
        assert b"got one" in seen
    finally:
        await session.close()
    # exec -it: a terminal of its own for the command.
    exec_session = await runtime.exec(shell, ["sh", "-c", "[ -t 0 ] && stty size; read x; exit $x"], tty=True,
                                      stdin=True)
    try:
        exec_session.resize(120, 40)
        await exec_session.write_stdin(b"7\n")
        assert b"40 120" in await asyncio.wait_for(read_until(exec_session.output(1), b"40 120"), 30)
        assert await asyncio.wait_for(exec_session.wait(), 30) == 7
    finally:
        await exec_session.close()
    session = await runtime.attach(shell, tty=True, stdin=True)
    try:
        await session.write_stdin(b"\x04")  # ^D: the terminal's end of input ends the loop
        assert await exited(runtime, shell) == 5
    finally:
        await session.close()
    log = log_lines((await runtime.container_status(shell)).log_path)
    assert b"a-terminal\r" in log and b"got one\r" in log
    await runtime.remove_pod_sandbox(sid)


async def test_stdin_of_a_container_through_attach(gvisor_runtime: RuntimeService) -> None:
    runtime = gvisor_runtime
    sid = await runtime.run_pod_sandbox(sandbox("stdin", runtime_handler="runsc"))
    reader = await run(runtime, sid, container("reader", "read x; echo read $x; exit 4", stdin=True, stdin_once=True))
    session = await runtime.attach(reader, stdin=True)
    try:
        await session.write_stdin(b"hello\n")
        assert b"read hello" in await asyncio.wait_for(read_until(session.output(1), b"read hello"), 30)
    finally:
        await session.close()
    assert await exited(runtime, reader) == 4
    await runtime.remove_pod_sandbox(sid)


def sandbox_processes(root: Path) -> set[int]:
    """Host pids of gVisor sandboxes (their Sentry) under this runtime's run root."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"runsc-sandbox\0") and f"--root={root}/runsc".encode() in cmdline:
                found.add(int(proc.name))
    return found


async def test_a_warm_gvisor_sandbox_is_taken_by_the_next_pod(host_env: HostEnv) -> None:
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/setup.sh installs it)")
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0, warm_gvisor_sandboxes=1)
    async with running_runtime(config) as runtime:
        await runtime.wait_warm()
        [warm] = sandbox_processes(config.run_root)  # booted before any pod asked for one
        sid = await runtime.run_pod_sandbox(sandbox("warmed", runtime_handler="runsc"))
        assert int((config.run_root / "sandboxes" / sid / "gvisor" / "pidfile").read_text()) == warm
        # Set inside the taken kernel while the containers are created; a start waits for it.
        first = await run(runtime, sid, container("first", "hostname"))
        web = await run(runtime, sid, container("web", "exec sleep 600"))
        code, out, _ = await runtime.exec_sync(web, ["sh", "-c", "uname -r; hostname"], 30)
        assert (code, out) == (0, b"4.4.0\nwarmed\n")  # its kernel, with the pod's hostname
        assert await exited(runtime, first) == 0
        assert log_lines((await runtime.container_status(first)).log_path) == [b"warmed"]
        assert (await runtime.pod_sandbox_status(sid)).ip
        # A crun pod takes no booted sandbox: it gets one of its own.
        plain = await runtime.run_pod_sandbox(sandbox("plain"))
        await runtime.wait_warm()
        assert len(sandbox_processes(config.run_root)) == 2  # the pod's and a new warm one
        await runtime.remove_pod_sandbox(sid)
        await runtime.remove_pod_sandbox(plain)
        # A shutdown without purge keeps pods running but drops the warm sandboxes and their kernels.
        await runtime.shutdown()
        assert sandbox_processes(config.run_root) == set()


async def test_a_warm_sandbox_takes_its_pods_memory_limit(host_env: HostEnv) -> None:
    """The pod's limit binds a sandbox booted before the pod: a hog in it is OOMKilled, and a limit
    below what the sandbox already uses fails the pod's sandbox, leaving nothing behind."""
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/setup.sh installs it)")
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0, warm_gvisor_sandboxes=1)
    async with running_runtime(config) as runtime:
        await runtime.wait_warm()
        [warm] = sandbox_processes(config.run_root)
        sid = await runtime.run_pod_sandbox(sandbox("hog", runtime_handler="runsc", memory_limit=48 * MIB))
        assert int((config.run_root / "sandboxes" / sid / "gvisor" / "pidfile").read_text()) == warm
        hog = await run(runtime, sid, container("hog", "x=a; while true; do x=$x$x$x$x; done"))
        assert await exited(runtime, hog) == 137
        assert (await runtime.container_status(hog)).reason == "OOMKilled"
        await runtime.remove_pod_sandbox(sid)
        await runtime.wait_warm()
        with pytest.raises(OSError, match=r"the pod's memory limit \(1048576 bytes\) is below what its processes"):
            await runtime.run_pod_sandbox(sandbox("tight", runtime_handler="runsc", memory_limit=MIB))
        assert await runtime.list_pod_sandboxes() == []


async def test_a_handed_over_sandbox_takes_the_new_pods_memory_limit(host_env: HostEnv) -> None:
    """HyperContainer's replace: the sandbox, made for a pod without a limit, takes the next
    pod's; a hog started after is OOMKilled. A limit below what the sandbox uses is refused."""
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/setup.sh installs it)")
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as runtime:
        sid = await runtime.run_pod_sandbox(sandbox("old", runtime_handler="runsc"))
        with pytest.raises(OSError, match=r"the pod's memory limit \(1048576 bytes\) is below what its processes"):
            await runtime.update_pod_sandbox_resources(sid, MIB)
        await runtime.update_pod_sandbox_resources(sid, 48 * MIB)
        hog = await run(runtime, sid, container("hog", "x=a; while true; do x=$x$x$x$x; done"))
        assert await exited(runtime, hog) == 137
        assert (await runtime.container_status(hog)).reason == "OOMKilled"
        await runtime.remove_pod_sandbox(sid)


async def test_unknown_handler_makes_nothing(gvisor_runtime: RuntimeService) -> None:
    with pytest.raises(ContainerRuntimeError, match='no runtime for "nosuch" is configured'):
        await gvisor_runtime.run_pod_sandbox(sandbox("x", runtime_handler="nosuch"))
    assert await gvisor_runtime.list_pod_sandboxes() == []


async def test_host_network_mode_is_taken_as_asked(host_env: HostEnv) -> None:
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/setup.sh installs it)")
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0, runsc_network="host")
    async with running_runtime(config) as runtime:
        sid = await runtime.run_pod_sandbox(sandbox("hostnet", runtime_handler="runsc"))
        assert (await runtime.pod_sandbox_status(sid)).notes == []  # asked for: nothing fell back
        web = await run(runtime, sid, container("web", "exec sleep 600"))
        ip = (await runtime.pod_sandbox_status(sid)).ip
        code, out, err = await runtime.exec_sync(web, ["ip", "-4", "-o", "addr", "show", "eth0"], 30)
        assert code == 0 and f"inet {ip}/".encode() in out  # the pod's own interface, not the host's
        await runtime.remove_pod_sandbox(sid)


async def test_containers_outlive_the_runtime_process(host_env: HostEnv) -> None:
    """As under conmon: a restarted runtime adopts the running gVisor containers, and an exit
    that happens while no runtime process is alive is on record."""
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (scripts/setup.sh installs it)")
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as first:
        sid = await first.run_pod_sandbox(sandbox("adopt", runtime_handler="runsc"))
        stays = await run(first, sid, container("stays", "exec sleep 600"))
        ends = await run(first, sid, container("ends", "exec sleep 600"))
        await first.shutdown()  # no purge: the containers keep running
        # Killed from outside (as an OOM kill would) while no runtime process watches.
        kill = await asyncio.create_subprocess_exec("runsc", f"--root={config.run_root / 'runsc'}", "kill", ends, "KILL")
        assert await kill.wait() == 0
        second = RuntimeService(config)
        await second.start()
        try:
            assert (await second.container_status(stays)).state is ContainerState.RUNNING
            assert (await second.exec_sync(stays, ["uname", "-r"], 30))[1] == b"4.4.0\n"
            assert await exited(second, ends) == 137
        finally:
            await second.shutdown(purge=True)
