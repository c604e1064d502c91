"""Pod-level cgroups: crun makes each container's cgroup below the pod's and
removes it with the container; the pod's own directories are ours to remove."""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _hierarchies() -> list[Path]:
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]  # pure cgroup v2
    return [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]


def remove_cgroup(path: str) -> None:
    """Removes the cgroup `path` (and its empty parents up to the first non-empty)
    from every hierarchy; a cgroup that still holds processes is left and reported."""
    parts = Path(path.strip("/")).parts
    busy = []
    for hierarchy in _hierarchies():
        # Empty cgroups below it go first: runsc leaves a container's when the container's sandbox
        # went before it; one holding processes makes the rmdir below fail and is reported.
        below = hierarchy.joinpath(*parts)
        for child in sorted((d for d in below.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            with contextlib.suppress(OSError):
                os.rmdir(child)
        for depth in range(len(parts), 0, -1):
            directory = hierarchy.joinpath(*parts[:depth])
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError:
                if depth == len(parts):
                    busy.append(str(directory))
                break
    if busy:
        raise OSError(f"cgroups still in use: {', '.join(busy)}")


def remove_unowned_pod_cgroups(parent: str, owned: set[str]) -> None:
    """Removes the pod cgroups below `parent` that no sandbox owns: a process killed between
    making a pod's cgroup and recording its sandbox leaves one behind. A cgroup that still holds
    tasks is left alone (the sandbox it served is gone; its tasks are not podbay's to guess at)."""
    for hierarchy in _hierarchies():
        base = hierarchy / parent.strip("/")
        if not base.is_dir():
            continue
        for pod in base.iterdir():
            if pod.is_dir() and pod.name.startswith("pod-") and pod.name not in owned:
                for directory, _, _ in sorted(os.walk(pod), key=lambda w: -len(w[0])):
                    with contextlib.suppress(OSError):
                        os.rmdir(directory)


def cpu_shares(milli_cpu: int) -> int:
    """The kubelet's MilliCPUToShares: 1024 per CPU, at least 2."""
    return max(2, milli_cpu * 1024 // 1000) if milli_cpu else 2


def cpu_quota(milli_cpu: int, period: int = 100_000) -> int:
    """The kubelet's MilliCPUToQuota, at least 1 ms per period."""
    return max(1000, milli_cpu * period // 1000) if milli_cpu else 0


def _unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def _controller_dir(controller: str, path: str) -> Path:
    """`path`'s directory in the hierarchy that holds `controller` (v1), or in the unified one."""
    base = CGROUP_ROOT if _unified() else CGROUP_ROOT / controller
    return base / path.strip("/")


def _enable_v2_controller(path: str, controller: str) -> None:
    """On cgroup v2 a controller works in a cgroup only when every ancestor delegates it."""
    parts = Path(path.strip("/")).parts
    for depth in range(len(parts)):
        directory = CGROUP_ROOT.joinpath(*parts[:depth])
        directory.mkdir(exist_ok=True)
        control = directory / "cgroup.subtree_control"
        if controller not in control.read_text().split():
            control.write_text(f"+{controller}")


def set_pids_limit(path: str, limit: int | None) -> None:
    """Makes the cgroup `path` in the pids hierarchy with pids.max = `limit` (None: "max").
    It is made before any container so that crun nests the containers' cgroups below it and
    the limit counts every task of the pod: all its containers and what is exec'd in them."""
    if _unified():
        _enable_v2_controller(path, "pids")
    elif not (CGROUP_ROOT / "pids").is_dir():
        if limit is None:
            return
        raise OSError("the pids cgroup controller is not mounted: a pod pid limit needs it (--pod-pids-limit -1 "
                      "runs pods without one)")
    directory = _controller_dir("pids", path)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pids.max").write_text("max" if limit is None else str(limit))


def set_memory_limit(path: str, limit: int | None) -> None:
    """The pod cgroup's memory limit, as the kubelet sets it (None: none, lifting an earlier one).
    Written before or after the pod's processes join; a limit below what they already use is
    refused (cgroup v1 answers EBUSY, v2 would OOM-kill them) rather than leaving the pod unlimited
    or killed at birth."""
    directory = _controller_dir("memory", path)
    limit_file = directory / ("memory.max" if _unified() else "memory.limit_in_bytes")
    if limit is None:
        if limit_file.exists():
            limit_file.write_text("max" if _unified() else "-1")
        return
    if _unified():
        _enable_v2_controller(path, "memory")
    directory.mkdir(parents=True, exist_ok=True)
    if memory_working_set(path) <= limit:
        try:
            limit_file.write_text(str(limit))
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
    raise OSError(errno.EBUSY, f"the pod's memory limit ({limit} bytes) is below what its processes "
                               f"already use ({memory_working_set(path)} bytes)")


def oom_events_file(path: str) -> Path:
    """The file whose `oom_kill N` line counts the OOM kills of the cgroup `path`'s processes:
    memory.events on v2 (with its descendants'), memory.oom_control on v1 (its own tasks')."""
    return _controller_dir("memory", path) / ("memory.events" if _unified() else "memory.oom_control")


def pids_current(path: str) -> int:
    """Tasks (processes and threads) in the cgroup `path` and below; 0 when it does not exist."""
    try:
        return int((_controller_dir("pids", path) / "pids.current").read_text())
    except (OSError, ValueError):
        return 0


def memory_working_set(path: str) -> int:
    """The cgroup's memory usage less its inactive file cache: the working set the kubelet ranks
    pods by under memory pressure (cadvisor's definition); 0 when it does not exist."""
    directory = _controller_dir("memory", path)
    usage_file, inactive_key = (("memory.current", "inactive_file") if _unified()
                                else ("memory.usage_in_bytes", "total_inactive_file"))
    try:
        usage = int((directory / usage_file).read_text())
        stat = dict(line.split() for line in (directory / "memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        return 0
    return max(0, usage - int(stat.get(inactive_key, 0)))


def cpu_usage_nanoseconds(path: str) -> int | None:
    """CPU time the cgroup `path` (and below) has used, cumulative: cpuacct.usage on v1, cpu.stat's
    usage_usec on v2 (cAdvisor's source for the kubelet's usageCoreNanoSeconds); None when unreadable."""
    try:
        if _unified():
            stat = dict(line.split() for line in (_controller_dir("cpu", path) / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) * 1000
        return int((_controller_dir("cpuacct", path) / "cpuacct.usage").read_text())
    except (OSError, ValueError, KeyError):
        return None


def node_memory_working_set() -> int:
    """The machine's working set as cAdvisor reports the root cgroup's: usage less inactive file
    cache. On v2 the root has no memory.current, so usage is MemTotal - MemFree (as cAdvisor)."""
    if not _unified():
        return memory_working_set("")
    try:
        info = {k: int(v.split()[0]) * 1024 for k, v in
                (line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())}
        stat = dict(line.split() for line in (CGROUP_ROOT / "memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        return 0
    return max(0, info["MemTotal"] - info["MemFree"] - int(stat.get("inactive_file", 0)))


def _tasks(directory: Path) -> set[int]:
    pids: set[int] = set()
    for procs in directory.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def kill_cgroup(path: str, timeout: float = 10.0) -> None:
    """SIGKILLs every process of the cgroup `path` and below, and waits until none is left.
    A task that forks faster than it can be signalled (a fork bomb) is beaten by killing the
    whole cgroup at once: cgroup.kill on v2, or freezing it first on v1, so that the list read
    cannot grow before each member has its SIGKILL pending."""
    if _unified():
        kill = CGROUP_ROOT / path.strip("/") / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(FileNotFoundError):
                kill.write_text("1")
            _wait_empty(CGROUP_ROOT / path.strip("/"), timeout)
            return
    freezer = _controller_dir("freezer", path)
    tasks_dir = freezer if freezer.is_dir() else _controller_dir("pids", path)
    frozen = (freezer / "freezer.state").exists()
    if frozen:
        (freezer / "freezer.state").write_text("FROZEN")
        deadline = time.monotonic() + timeout
        while (freezer / "freezer.state").read_text().strip() != "FROZEN" and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        for pid in _tasks(tasks_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    finally:
        if frozen:
            (freezer / "freezer.state").write_text("THAWED")
    _wait_empty(tasks_dir, timeout)


def _wait_empty(directory: Path, timeout: float) -> None:
    """Until the cgroup holds no task: SIGKILLed tasks leave it within moments."""
    deadline = time.monotonic() + timeout
    while directory.is_dir() and _tasks(directory) and time.monotonic() < deadline:
        time.sleep(0.01)
