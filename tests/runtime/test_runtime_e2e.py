"""The runtime on real containers: a pod sandbox and its containers under crun and conmon."""
from __future__ import annotations

import dataclasses
import os
import secrets
import signal
from pathlib import Path

import pytest

from podbay.runtime.namespaces import pin_namespaces
from podbay.runtime.service import RuntimeService
from podbay.runtime.syscalls import is_mountpoint, mount
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, ContainerRuntimeError, ContainerState, LinuxContainerResources,
    LinuxContainerSecurity, Mount, PodSandboxConfig, PodSandboxMetadata, PortMapping, SandboxState,
)
from podbay.runtime.volumes import EmptyDir
from tests.conftest import HostEnv
from tests.polling import wait_until
from tests.runtime.conftest import running_runtime, runtime_config

pytestmark = pytest.mark.e2e
BUSYBOX = "busybox:1.35"
ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


def sandbox(name: str = "pod", **kw) -> PodSandboxConfig:
    return PodSandboxConfig(metadata=PodSandboxMetadata(name, "default", f"uid-{name}"), hostname=name, **kw)


def container(name: str, script: str, **kw) -> ContainerConfig:
    return ContainerConfig(ContainerMetadata(name), BUSYBOX, ["sh", "-c", script], env=ENV, **kw)


async def run(runtime: RuntimeService, sandbox_id: str, cfg: ContainerConfig) -> str:
    cid = await runtime.create_container(sandbox_id, cfg)
    await runtime.start_container(cid)
    return cid


async def sh(runtime: RuntimeService, cid: str, script: str) -> str:
    code, out, err = await runtime.exec_sync(cid, ["sh", "-c", script], 10)
    assert code == 0, err
    return out.decode()


async def test_two_containers_share_hostname_ipc_and_volume_but_not_rootfs(runtime: RuntimeService) -> None:
    sid = await runtime.run_pod_sandbox(sandbox("shared"))
    vols = await runtime.setup_pod_volumes("uid-shared", {"data": EmptyDir()})
    a = await run(runtime, sid, container("a", "trap 'exit 143' TERM; sleep 600 & wait", mounts=[Mount("/a-data", str(vols["data"]))]))
    b = await run(runtime, sid, container("b", "sleep 600", mounts=[Mount("/b-data", str(vols["data"]))]))
    assert (await sh(runtime, a, "hostname")).strip() == "shared"
    assert (await sh(runtime, b, "cat /etc/hostname")).strip() == "shared"
    await sh(runtime, a, "echo hi > /a-data/f; echo mine > /tmp/own; echo x > /dev/shm/seg")
    assert (await sh(runtime, b, "cat /b-data/f")).strip() == "hi"
    assert (await sh(runtime, b, "cat /dev/shm/seg")).strip() == "x"
    ipc_a, ipc_b = (await sh(runtime, a, "readlink /proc/self/ns/ipc"), await sh(runtime, b, "readlink /proc/self/ns/ipc"))
    assert ipc_a == ipc_b != os.readlink("/proc/self/ns/ipc") + "\n"
    assert (await sh(runtime, b, "test -e /tmp/own && echo yes || echo no")).strip() == "no"
    # No container sees host processes: its own pid namespace starts at 1.
    assert (await sh(runtime, a, "cat /proc/1/cmdline | tr '\\0' ' '")).startswith("sh -c trap")
    status = await runtime.container_status(a)
    assert status.state is ContainerState.RUNNING
    await runtime.stop_container(a, 5)
    status = await runtime.container_status(a)
    assert status.state is ContainerState.EXITED and status.exit_code == 143
    # `sleep` as PID 1 ignores SIGTERM: SIGKILL ends it when the grace period is over.
    await runtime.stop_container(b, 0.5)
    assert (await runtime.container_status(b)).exit_code == 137
    await runtime.remove_pod_sandbox(sid)
    await runtime.remove_pod_volumes("uid-shared")
    assert await runtime.list_containers() == []


async def test_exit_code_logs_and_termination_message(runtime: RuntimeService) -> None:
    sid = await runtime.run_pod_sandbox(sandbox("exits"))
    cid = await run(runtime, sid, container("c", "echo out; echo err >&2; echo bye > /dev/termination-log; exit 3",
                                            termination_message_path="/dev/termination-log"))
    status = await runtime.wait_container(cid)
    assert (status.state, status.exit_code, status.reason, status.message) == (ContainerState.EXITED, 3, "Error", "bye\n")
    lines = Path(status.log_path).read_text().splitlines()
    assert [l.split(" ", 3)[1:] for l in lines] == [["stdout", "F", "out"], ["stderr", "F", "err"]]
    await runtime.remove_pod_sandbox(sid)


async def test_missing_command_fails_start_with_crun_message_and_leaves_nothing(runtime: RuntimeService) -> None:
    sid = await runtime.run_pod_sandbox(sandbox("bad"))
    cfg = ContainerConfig(ContainerMetadata("c"), BUSYBOX, ["/no/such/binary"], env=ENV)
    cid = await runtime.create_container(sid, cfg)
    with pytest.raises(ContainerRuntimeError, match="no/such/binary"):
        await runtime.start_container(cid)
    # As containerd reports it: the container exists and failed to start, exit code 128.
    status = await runtime.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 128, "StartError")
    assert "/no/such/binary" in status.message
    await runtime.remove_container(cid)
    await runtime.remove_pod_sandbox(sid)
    assert await runtime.list_containers() == []


async def test_memory_limit_oom_kills_and_user_and_readonly_rootfs(runtime: RuntimeService) -> None:
    sid = await runtime.run_pod_sandbox(sandbox("limits"))
    hog = await run(runtime, sid, container(
        "hog", "x=a; while true; do x=$x$x$x$x; done",
        resources=LinuxContainerResources(memory_limit_in_bytes=16 << 20)))
    status = await runtime.wait_container(hog)
    assert status.reason == "OOMKilled" and status.exit_code == 137
    user = await run(runtime, sid, container("user", "sleep 600", security=LinuxContainerSecurity(
        run_as_user=1234, run_as_group=5678, supplemental_groups=[2000], readonly_rootfs=True),
        resources=LinuxContainerResources(cpu_quota=20000, cpu_period=100000)))
    # The CPU limit is the container's CFS quota (v1 hierarchy here, cpu.max on cgroup v2).
    lines = Path(f"/proc/{(await runtime.container_status(user)).pid}/cgroup").read_text().splitlines()
    cgroup = next(ln.split(":", 2)[2] for ln in lines if "cpu" in ln.split(":")[1].split(",") or ln.startswith("0::"))
    quota = Path("/sys/fs/cgroup/cpu" + cgroup + "/cpu.cfs_quota_us")
    if quota.exists():
        assert quota.read_text().strip() == "20000"
    else:
        assert Path("/sys/fs/cgroup" + cgroup + "/cpu.max").read_text().split()[0] == "20000"
    # An exec'd process is the container's own: same user, supplementary groups and environment.
    assert (await sh(runtime, user, "id -u; id -g; id -G; echo $PATH")).split() == \
        ["1234", "5678", "5678", "2000", ENV[0].split("=", 1)[1]]
    code, _, err = await runtime.exec_sync(user, ["touch", "/x"], 10)
    assert code != 0 and b"Read-only file system" in err
    await runtime.remove_pod_sandbox(sid)


async def test_share_process_namespace(runtime: RuntimeService) -> None:
    shared = await runtime.run_pod_sandbox(sandbox("shared-pid", share_process_namespace=True))
    await run(runtime, shared, container("a", "sleep 601"))
    b = await run(runtime, shared, container("b", "sleep 602"))
    assert "sleep 601" in await sh(runtime, b, "ps -o args")
    apart = await runtime.run_pod_sandbox(sandbox("own-pid"))
    await run(runtime, apart, container("a", "sleep 603"))
    d = await run(runtime, apart, container("b", "sleep 604"))
    seen = await sh(runtime, d, "ps -o args")
    assert "sleep 603" not in seen and "sleep 604" in seen
    await runtime.remove_pod_sandbox(shared)
    await runtime.remove_pod_sandbox(apart)


async def test_failed_host_port_mappings_keep_containers_from_starting(runtime: RuntimeService) -> None:
    # A warm sandbox's hostPorts are mapped while its containers are created; if the portmap
    # plugin fails, no container starts in it and it is torn down (host_env checks the rules).
    await runtime.wait_warm()
    sid = await runtime.run_pod_sandbox(sandbox("ports", port_mappings=[PortMapping(80, 70000)]))
    cid = await runtime.create_container(sid, container("c", "sleep 600"))
    with pytest.raises(ContainerRuntimeError, match="not ready: hostPort mappings failed"):
        await runtime.start_container(cid)
    assert (await runtime.container_status(cid)).state is ContainerState.CREATED
    assert (await runtime.pod_sandbox_status(sid)).state is SandboxState.NOTREADY
    await runtime.remove_pod_sandbox(sid)


async def test_a_container_started_by_a_process_that_died_before_recording_it_is_running(
        host_env: HostEnv) -> None:
    # The server was SIGKILLed between `crun start` and writing the record (a chaos run found
    # it): a fresh process must report the container running, or the agent starts a second one.
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as runtime:
        sid = await runtime.run_pod_sandbox(sandbox("crashed"))
        cid = await runtime.create_container(sid, container("c", "sleep 600"))
        await runtime.oci.start(cid)  # crun's start alone, as far as the dead process got
        fresh = RuntimeService(config, runtime.images)
        await fresh.start()
        try:
            assert (await fresh.container_status(cid)).state is ContainerState.RUNNING
            await fresh.stop_container(cid, 0)
            status = await fresh.container_status(cid)
            assert status.state is ContainerState.EXITED and status.exit_code == 137
        finally:
            await fresh.shutdown()


async def test_a_rootfs_mounted_by_a_process_that_died_before_recording_its_container_is_removed(
        host_env: HostEnv) -> None:
    # The server was SIGKILLed in create_container after the rootfs mount and before the record
    # write (a chaos run found the mount left after down --purge): a fresh process removes it.
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as runtime:
        cid = secrets.token_hex(32)
        directory, rootfs = config.containers_root / cid, config.bundles_root / cid / "rootfs"
        for d in (directory / "upper", directory / "work", rootfs):
            d.mkdir(parents=True)
        lower = ":".join(map(str, runtime.images.mount_layers(BUSYBOX)))
        mount("overlay", str(rootfs), "overlay", 0, f"lowerdir={lower},upperdir={directory / 'upper'},"
              f"workdir={directory / 'work'}")
        fresh = RuntimeService(config, runtime.images)
        await fresh.start()
        await fresh.shutdown()
        assert not is_mountpoint(str(rootfs))
        assert not directory.exists() and not rootfs.parent.exists()


async def test_a_pod_cgroup_made_by_a_process_that_died_before_recording_its_sandbox_is_removed(
        host_env: HostEnv) -> None:
    # The server was SIGKILLed in run_pod_sandbox after the pod's pids cgroup was made and before
    # the sandbox record (a chaos run found the cgroup parent left after down --purge).
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config) as runtime:
        kept = await runtime.run_pod_sandbox(sandbox("kept"))
        orphan = Path("/sys/fs/cgroup/pids") / config.cgroup_parent / f"pod-{secrets.token_hex(8)}"
        orphan.mkdir(parents=True)
        fresh = RuntimeService(config, runtime.images)
        await fresh.start()
        await fresh.shutdown()
        assert not orphan.exists()
        assert (Path("/sys/fs/cgroup/pids") / runtime.sandboxes.sandbox_cgroup(kept)).is_dir()


async def test_a_purge_removes_a_half_made_sandbox_no_record_names(host_env: HostEnv) -> None:
    # A warm sandbox being made when the runtime stops has pinned namespaces but no record; the
    # purge that follows (as a test's teardown does) must still find and remove it.
    config = dataclasses.replace(runtime_config(host_env), warm_sandboxes=0)
    async with running_runtime(config):
        directory = config.run_root / "sandboxes" / secrets.token_hex(32)
        await pin_namespaces(directory / "ns", "", ("net", "ipc"))
        assert is_mountpoint(str(directory / "ns" / "net"))
    assert not directory.exists()


async def test_exec_into_a_container_that_just_died_is_refused_not_answered_with_crun_s_failure(
        runtime: RuntimeService) -> None:
    # The container's process died after the runtime last looked (a chaos run exec'd into a pod
    # being stopped and got exit 1 with crun's "the container ... is not running" as its answer).
    sid = await runtime.run_pod_sandbox(sandbox("dying"))
    cid = await run(runtime, sid, container("c", "sleep 600"))
    pid = (await runtime.container_status(cid)).pid
    os.kill(pid, signal.SIGKILL)
    # A SIGKILL is delivered, not done, when kill() returns: the exec must come after the death.
    await wait_until(lambda: not Path(f"/proc/{pid}").exists(), "the killed process is gone")
    with pytest.raises(ContainerRuntimeError, match="is not running"):
        await runtime.exec_sync(cid, ["echo", "hi"], 10)
    await runtime.remove_pod_sandbox(sid)


async def test_volume_usage_counts_disk_volumes_and_leaves_out_memory_ones(runtime: RuntimeService) -> None:
    # The eviction manager's measure of a pod's volumes: a Memory emptyDir (a tmpfs) is memory, not
    # the node's disk, so its bytes must not count toward an ephemeral-storage eviction.
    volumes = await runtime.setup_pod_volumes("uid-usage", {"disk": EmptyDir(), "ram": EmptyDir(medium="Memory")})
    try:
        for name in ("disk", "ram"):
            (volumes[name] / "data").write_bytes(b"x" * 1024 * 1024)
        usage = await runtime.pod_volume_usage("uid-usage")
        assert set(usage) == {"disk"} and usage["disk"] >= 1024 * 1024
    finally:
        await runtime.remove_pod_volumes("uid-usage")
    assert not is_mountpoint(str(volumes["ram"]))
