"""Limits that keep one pod from taking the host: the pod pid limit (a fork bomb fails inside its
pod), local ephemeral storage eviction, and the node's pressure conditions and taints."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import subprocess
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from podbay.api import Node, Pod
from podbay.api.formats import load_pods
from podbay.cli.settings import Settings
from podbay.runtime.syscalls import mount, umount
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, running_cluster, settings_for
from tests.e2e.test_network_pods_e2e import log_of
from tests.e2e.test_nodes_e2e import wait_node
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

CGROUP_ROOT = Path("/sys/fs/cgroup")


def pod_cgroups(settings: Settings) -> list[Path]:
    """The pods' cgroups in the pids hierarchy (v1), or in the unified one (v2)."""
    base = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else CGROUP_ROOT / "pids"
    return sorted((base / settings.cgroup_parent).glob("pod-*"))


def pod_processes(settings: Settings) -> list[str]:
    """Processes (zombies too) that were in one of the pods' cgroups."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and f"/{settings.cgroup_parent}/pod-" in (proc / "cgroup").read_text():
                found.append(proc.name)
    return found


async def wait_log(cluster: Cluster, name: str, container: str, text: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in await log_of(cluster, name, container):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{text!r} never appeared in the log of {name}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def limits_cluster(env: HostEnv, **changes: object) -> AsyncIterator[Cluster]:
    """The test cluster with its limits changed; storage is measured every half second."""
    require_root()
    settings = dataclasses.replace(settings_for(env), housekeeping_interval=0.5, **changes)
    async with running_cluster(settings) as cluster:
        yield cluster


def failed(pod: Pod) -> bool:
    return pod.status is not None and pod.status.phase == "Failed"


def running(pod: Pod) -> bool:
    return pod.status is not None and pod.status.phase == "Running"


# Each shell starts two more and then sleeps: the tree doubles until forks fail, and then
# nothing spins (a shell that cannot fork exits), so the bomb stays small on a shared machine.
FORK_BOMB = "b() { b & b & sleep 3600; }; b & exec sleep 3600"


def bomb_pod(name: str, deadline: int | None = None, host_pid: bool = False) -> Pod:
    """With `host_pid` no PID namespace ends with the container's main process: the bomb's
    processes outlive it, and only the pod's cgroup still holds them."""
    ads = f"\n  activeDeadlineSeconds: {deadline}" if deadline else ""
    ads += "\n  hostPID: true" if host_pid else ""
    return load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 2{ads}
  containers:
  - {{name: bomb, image: busybox:1.35, command: [sh, -c, "{FORK_BOMB}"]}}
""")[0]


@pytest.mark.parametrize("host_pid", [False, True], ids=["pod-pid-namespace", "host-pid-namespace"])
async def test_a_fork_bomb_fails_inside_its_pod_and_the_pod_goes_promptly(host_env: HostEnv,
                                                                         host_pid: bool) -> None:
    async with limits_cluster(host_env, pod_pids_limit=50) as cluster:
        await cluster.client.create(bomb_pod("bomb", host_pid=host_pid))
        await cluster.wait_for("bomb", running)
        await wait_log(cluster, "bomb", "bomb", "can't fork")
        [cgroup] = pod_cgroups(cluster.settings)
        assert (cgroup / "pids.max").read_text().strip() == "50"
        assert int((cgroup / "pids.current").read_text()) <= 50
        # The host still forks while the pod is at its limit.
        assert subprocess.run(["true"], timeout=10).returncode == 0
        # A process exec'd into the pod counts against the same limit: it runs in the pod's cgroup.
        code, out, _ = await cluster.client.exec("bomb", "default", ["cat", "/proc/self/cgroup"])
        lines = out.decode().splitlines()
        pids_line = next(line for line in lines if ":pids:" in line or line.startswith("0::"))
        assert code == 0 and f"/{cluster.settings.cgroup_parent}/{cgroup.name}/" in pids_line
        pod = await cluster.client.get(Pod, "bomb", "default")
        assert pod.status.phase == "Running"

        await cluster.client.delete(Pod, "bomb", "default")
        await cluster.wait_for_deleted("bomb", timeout=30)
        await wait_until(lambda: not pod_cgroups(cluster.settings), "the pod's cgroup is removed")
        # Killed orphans are reaped by the host's init, in its own time.
        await wait_until(lambda: not pod_processes(cluster.settings), "no process of the pod is left")


@pytest.mark.parametrize("host_pid", [False, True], ids=["pod-pid-namespace", "host-pid-namespace"])
async def test_a_fork_bomb_past_its_active_deadline_is_killed(host_env: HostEnv, host_pid: bool) -> None:
    async with limits_cluster(host_env, pod_pids_limit=50) as cluster:
        await cluster.client.create(bomb_pod("bomb", deadline=5, host_pid=host_pid))
        await cluster.wait_for("bomb", running)
        await wait_log(cluster, "bomb", "bomb", "can't fork")
        pod = await cluster.wait_for("bomb", failed, timeout=30)
        assert pod.status.reason == "DeadlineExceeded"
        assert pod.status.container_statuses[0].state.terminated is not None
        [cgroup] = pod_cgroups(cluster.settings)
        await wait_until(lambda: not cgroup.exists() or int((cgroup / "pids.current").read_text()) == 0,
                         "no task is left in the pod's cgroup")
        await wait_until(lambda: not pod_processes(cluster.settings), "no process of the pod is left")


async def test_pods_get_the_default_pid_limit(cluster: Cluster) -> None:
    await cluster.client.create(sleeper("plain"))
    await cluster.wait_for("plain", running)
    [cgroup] = pod_cgroups(cluster.settings)
    assert (cgroup / "pids.max").read_text().strip() == "4096"


async def test_minus_one_means_no_pid_limit(host_env: HostEnv) -> None:
    async with limits_cluster(host_env, pod_pids_limit=-1) as cluster:
        await cluster.client.create(sleeper("plain"))
        await cluster.wait_for("plain", running)
        [cgroup] = pod_cgroups(cluster.settings)
        assert (cgroup / "pids.max").read_text().strip() == "max"


async def test_equal_quantities_written_differently_make_a_guaranteed_pod_with_those_limits(
        cluster: Cluster) -> None:
    pod = await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: same}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.35
    command: [sleep, "3600"]
    resources: {requests: {cpu: "1", memory: 64Mi}, limits: {cpu: 1000m, memory: "67108864"}}
""")[0])
    assert pod.status.qos_class == "Guaranteed"
    pod = await cluster.wait_for("same", running)
    assert pod.status.qos_class == "Guaranteed"
    code, out, _ = await cluster.client.exec("same", "default", ["cat", "/proc/self/cgroup"])
    assert code == 0
    paths = dict(line.split(":", 2)[1:] for line in out.decode().splitlines())
    assert all(f"/{cluster.settings.cgroup_parent}/pod-" in path for path in paths.values() if path != "/")
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        unified = CGROUP_ROOT / paths[""].lstrip("/")
        assert (unified / "cpu.max").read_text().split() == ["100000", "100000"]
        assert (unified / "memory.max").read_text().strip() == str(64 << 20)
        return
    cpu_key = next(k for k in paths if "cpu" in k.split(","))
    cpu = CGROUP_ROOT / cpu_key / paths[cpu_key].lstrip("/")
    assert [(cpu / f).read_text().strip() for f in ("cpu.cfs_quota_us", "cpu.shares")] == ["100000", "1024"]
    assert (CGROUP_ROOT / "memory" / paths["memory"].lstrip("/") / "memory.limit_in_bytes").read_text().strip() \
        == str(64 << 20)


def sleeper(name: str) -> Pod:
    return load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: busybox:1.35, command: [sleep, "3600"]}}
""")[0]


def writer(name: str, size_limit: str, megabytes: int) -> Pod:
    """Writes `megabytes` into its disk emptyDir "cache" (limited to `size_limit`), then sleeps."""
    return load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.35
    command: [sh, -c, "dd if=/dev/zero of=/cache/data bs=1048576 count={megabytes} && echo written && exec sleep 3600"]
    volumeMounts: [{{name: cache, mountPath: /cache}}]
  volumes:
  - {{name: cache, emptyDir: {{sizeLimit: {size_limit}}}}}
""")[0]


async def assert_evicted(cluster: Cluster, name: str, message: str) -> None:
    pod = await cluster.wait_for(name, failed, timeout=30)
    assert (pod.status.phase, pod.status.reason, pod.status.message) == ("Failed", "Evicted", message)
    disruption = next(c for c in pod.status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "TerminationByKubelet")
    event = await cluster.wait_event(name, "Evicted", message)
    assert event.type == "Warning"
    pod = await cluster.wait_for(name, lambda p: all(
        s.state.terminated is not None for s in p.status.container_statuses))


async def test_an_empty_dir_over_its_size_limit_is_evicted_and_one_within_keeps_running(
        host_env: HostEnv) -> None:
    async with limits_cluster(host_env) as cluster:
        within = await cluster.client.create(writer("within", "10Mi", 2))
        await cluster.wait_for("within", running)
        await wait_log(cluster, "within", "main", "written")
        over = await cluster.client.create(writer("over", "10Mi", 20))
        await assert_evicted(cluster, "over", 'Usage of EmptyDir volume "cache" exceeds the limit "10Mi". ')
        # Its disk is given back at once, while the Failed pod is still there to be looked at.
        volume = cluster.settings.state_root / "pods" / over.metadata.uid / "volumes" / "cache"
        await wait_until(lambda: not volume.exists(), "the evicted pod's emptyDir is removed")
        assert (cluster.settings.state_root / "pods" / within.metadata.uid / "volumes" / "cache" / "data").exists()
        # Measured in the same passes as "over", and left alone.
        pod = await cluster.client.get(Pod, "within", "default")
        assert pod.status.phase == "Running" and pod.status.reason is None


def storage_pod(name: str, limits: dict[str, str], writes: str) -> Pod:
    """One container per entry of `limits` (name: ephemeral-storage limit); `writes` writes 5 MB
    into its writable layer, the others sleep."""
    containers = "".join(f"""
  - name: {c}
    image: busybox:1.35
    command: [sh, -c, "{'dd if=/dev/zero of=/data bs=1048576 count=5 && ' if c == writes else ''}exec sleep 3600"]
    resources: {{limits: {{ephemeral-storage: {limit}}}}}""" for c, limit in limits.items())
    return load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:{containers}
""")[0]


async def test_a_container_over_its_ephemeral_storage_limit_is_evicted(host_env: HostEnv) -> None:
    async with limits_cluster(host_env) as cluster:
        # The pod's total (5 MB) stays under the sum of the limits (101Mi): the container's own limit evicts.
        await cluster.client.create(storage_pod("two", {"small": "1Mi", "big": "100Mi"}, writes="small"))
        await assert_evicted(cluster, "two", 'Container small exceeded its local ephemeral storage limit "1Mi". ')
        # Alone, the container also takes its pod over the sum of limits, which the kubelet checks first.
        await cluster.client.create(storage_pod("one", {"small": "1Mi"}, writes="small"))
        await assert_evicted(cluster, "one", "Pod ephemeral local storage usage exceeds the total limit of "
                                             "containers 1Mi. ")


def condition(node: Node, kind: str) -> tuple[str, str]:
    c = next(c for c in node.status.conditions if c.type == kind)
    return c.status, c.reason


async def test_the_node_reports_no_pressure(cluster: Cluster) -> None:
    node = await cluster.client.get(Node, cluster.settings.node_name)
    assert [c.type for c in node.status.conditions] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert condition(node, "MemoryPressure") == ("False", "KubeletHasSufficientMemory")
    assert condition(node, "DiskPressure") == ("False", "KubeletHasNoDiskPressure")
    assert condition(node, "PIDPressure") == ("False", "KubeletHasSufficientPID")
    assert condition(node, "Ready") == ("True", "KubeletReady")
    assert not node.spec.taints


async def test_a_tripped_disk_threshold_sets_disk_pressure_and_its_taint(host_env: HostEnv) -> None:
    # A filesystem that is not all but empty has less than 99.9% of it available (100% the kubelet ignores).
    async with limits_cluster(host_env, eviction_hard="nodefs.available<99.9%") as cluster:
        node = await cluster.client.get(Node, cluster.settings.node_name)
        assert condition(node, "DiskPressure") == ("True", "KubeletHasDiskPressure")
        assert condition(node, "MemoryPressure") == ("False", "KubeletHasSufficientMemory")
        # The node lifecycle controller taints the node on its next pass.
        node = await wait_node(cluster, cluster.settings.node_name, lambda n: bool(n.spec.taints))
        assert [(t.key, t.effect) for t in node.spec.taints] == [("node.kubernetes.io/disk-pressure", "NoSchedule")]
        await cluster.client.create(sleeper("later"))
        event = await cluster.wait_event("later", "FailedScheduling")
        assert "untolerated taint {node.kubernetes.io/disk-pressure: }" in event.message
        pod = await cluster.client.get(Pod, "later", "default")
        assert pod.status.phase == "Pending"
        # A pod bound to the node directly passes no scheduler: the agent's admission refuses it.
        bound = sleeper("bound")
        bound.spec.node_name = cluster.settings.node_name
        await cluster.client.create(bound)
        pod = await cluster.wait_for("bound", failed)
        assert (pod.status.reason, pod.status.message) == (
            "Evicted", "Pod was rejected: The node had condition: [DiskPressure]. ")
        event = await cluster.wait_event("bound", "Evicted")
        assert (event.type, event.message) == ("Warning", "The node had condition: [DiskPressure]. ")


def disk_hog(name: str, megabytes: int) -> Pod:
    """Writes `megabytes` into an emptyDir without a sizeLimit, then sleeps."""
    return load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.35
    command: [sh, -c, "dd if=/dev/zero of=/scratch/data bs=1048576 count={megabytes} && echo written && exec sleep 3600"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
""")[0]


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[None]:
    """`path` on a tmpfs of its own: the node's disk is then this test's alone, so its free space
    moves only with what the test's pods write."""
    mount("tmpfs", str(path), "tmpfs", 0, f"size={size}")
    try:
        yield
    finally:
        umount(str(path))


async def test_under_disk_pressure_the_biggest_user_is_evicted(host_env: HostEnv) -> None:
    with small_disk(host_env.state_root, "256m"):
        # No transition period: the pressure is seen to end as soon as the disk is back.
        async with limits_cluster(host_env, eviction_hard="nodefs.available<150Mi",
                                  eviction_pressure_transition_period=0) as cluster:
            node = await cluster.client.get(Node, cluster.settings.node_name)
            assert condition(node, "DiskPressure") == ("False", "KubeletHasNoDiskPressure")
            await cluster.client.create(sleeper("quiet"))
            await cluster.wait_for("quiet", running)
            await cluster.client.create(disk_hog("hog", 160))
            pod = await cluster.wait_for("hog", failed, timeout=60)
            assert pod.status.reason == "Evicted"
            # The container's own use is its writable layer and log, named once above its request of
            # 0 (its log is still empty while dd writes); the emptyDir counts for the pod.
            assert re.fullmatch(r"The node was low on resource: ephemeral-storage\. Threshold quantity: 150Mi, "
                                r"available: \d+Ki\. (Container main was using \d+Ki, request is 0, has larger "
                                r"consumption of ephemeral-storage\. )?", pod.status.message), pod.status.message
            await cluster.wait_event("hog", "Evicted", "The node was low on resource: ephemeral-storage. ")
            # Its volume goes with it, the pressure ends, and the other pod was never touched.
            node = await wait_node(cluster, cluster.settings.node_name,
                                   lambda n: condition(n, "DiskPressure")[0] == "False")
            assert condition(node, "DiskPressure") == ("False", "KubeletHasNoDiskPressure")
            pod = await cluster.client.get(Pod, "quiet", "default")
            assert pod.status.phase == "Running"
