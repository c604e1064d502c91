"""Pods in their own kernel: the web pod under RuntimeClass gvisor against the same pod under
crun and under `podman kube play`, in one run on this machine (see bench/README.md).

    sudo .venv/bin/python -m bench.gvisor [--rounds 10] [--pods 5] [--memory-only]

Figures: apply -> running (crun; gvisor with a booted sandbox waiting; gvisor cold; podman);
HyperContainer's start and replace of a gvisor pod; memory (PSS) per gvisor pod sandbox.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from bench.hostnet import BenchHost, claimed_host
from bench.memory import total_kib
from bench.peer_podman import PodmanPeer
from bench.podbay_side import PodbayServer, all_running, pod_from
from bench.run import busybox_rootfs_tar, manifest
from bench.stats import Summary, summarise
from podbay.api import Pod
from podbay.api.wellknown import RUN_STATE_ANNOTATION, SANDBOX_FROM_ANNOTATION
from podbay.runtime.images import ensure_busybox_image
from podbay.runtime.service import RuntimeService
from podbay.runtime.types import ContainerConfig, ContainerMetadata, PodSandboxConfig, PodSandboxMetadata

Check = Callable[[Pod | None], bool]


def gone(pod: Pod | None) -> bool:
    return pod is None


def created(pod: Pod | None) -> bool:
    return pod is not None and pod.status.reason == "Created"


def web(name: str, runtime_class: str | None, run_state: str | None = None) -> Pod:
    pod = pod_from(manifest(name, None))
    pod.spec.runtime_class_name = runtime_class
    if run_state:
        pod.metadata.annotations = {**(pod.metadata.annotations or {}), RUN_STATE_ANNOTATION: run_state}
    return pod


async def until(server: PodbayServer, name: str, check: Check) -> None:
    await asyncio.wait_for(server.wait_pods({name}, check), 120)


async def apply_to_running(server: PodbayServer, runtime_class: str | None, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        t0 = time.monotonic()  # from the create call, as figure 1 of bench.run
        await server.client.create(web("web", runtime_class))
        await until(server, "web", all_running)
        samples.append(time.monotonic() - t0)
        await server.client.delete(Pod, "web", "default", grace_period_seconds=0)
        await until(server, "web", gone)
        await asyncio.sleep(1.5)  # the warm pools refill (1 s at most), as between a user's pods
    return samples


async def set_state(server: PodbayServer, name: str, state: str, **extra: str) -> None:
    pod = await server.client.get(Pod, name, "default")
    pod.metadata.annotations = {**(pod.metadata.annotations or {}), RUN_STATE_ANNOTATION: state, **extra}
    await server.client.update(pod)


async def pod_ip(server: PodbayServer, name: str) -> str | None:
    return (await server.client.get(Pod, name, "default")).status.pod_ip


async def start_and_replace(server: PodbayServer, rounds: int) -> dict[str, list[float]]:
    """`start` of a Created gvisor pod, and `replace -o OLD -n NEW` (OLD running, NEW Created;
    NEW's containers start in OLD's running sandbox): from the request to NEW running. "handed
    over" has a 1 for each replace whose NEW got OLD's sandbox (its IP), a 0 for one that got
    a sandbox of its own (and so timed a start)."""
    out: dict[str, list[float]] = {"start": [], "replace": [], "handed over": []}
    for _ in range(rounds):
        for name in ("old", "new"):
            await server.client.create(web(name, "gvisor", "Created"))
            await until(server, name, created)
        t0 = time.monotonic()
        await set_state(server, "old", "Running")
        await until(server, "old", all_running)
        out["start"].append(time.monotonic() - t0)
        old_ip = await pod_ip(server, "old")
        await asyncio.sleep(1.5)  # the pool refills, as before a user's next command
        t0 = time.monotonic()
        await set_state(server, "new", "Running", **{SANDBOX_FROM_ANNOTATION: "old"})
        await until(server, "new", all_running)
        out["replace"].append(time.monotonic() - t0)
        out["handed over"].append(float(await pod_ip(server, "new") == old_ip))
        for name in ("old", "new"):
            await server.client.delete(Pod, name, "default", grace_period_seconds=0)
            await until(server, name, gone)
        await asyncio.sleep(1.5)
    return out


def sandbox_pids(server: PodbayServer) -> list[int]:
    """Every process of the benchmark's gVisor pods: the Sentry, its ptrace stubs and gofers
    (all in the pods' cgroups), the gvisormon monitors and any `runsc wait` of theirs (which say
    the run root)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroup = (proc / "cgroup").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"{server.host.cgroup_parent}/pod-" in cgroup or (
                ("gvisormon" in cmdline or " wait " in cmdline) and str(server.base) in cmdline):
            pids.append(int(proc.name))
    return pids


def process_kind(pid: int) -> str:
    """What a pod's process is: runsc names its sandbox (the Sentry) and gofer processes in argv[0];
    the Sentry's ptrace stubs (its children and theirs) run the containers' code."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        parent_argv0 = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")[0]
    except (OSError, ValueError, IndexError):
        return "gone"
    if any(b"gvisormon" in a for a in argv):
        return "gvisormon"
    for kind in (b"runsc-sandbox", b"runsc-gofer"):
        if argv[0].endswith(kind):
            return kind.decode()
    # The Sentry's children and theirs, made without an exec: no command line.
    if parent_argv0.endswith(b"runsc-sandbox") or argv == [b""]:
        return "ptrace stub"
    return argv[0].rpartition(b"/")[2].decode(errors="replace")


Breakdown = dict[str, tuple[int, int, int]]  # kind: (processes, RSS KiB, PSS KiB)


def breakdown(pids: list[int]) -> Breakdown:
    out: Breakdown = {}
    for pid in pids:
        kind = process_kind(pid)
        count, rss, pss = out.get(kind, (0, 0, 0))
        r, p = total_kib([pid])
        out[kind] = (count + 1, rss + r, pss + p)
    return out


async def memory_per_sandbox(server: PodbayServer, n: int) -> tuple[float, float, Breakdown]:
    """(RSS, PSS) in KiB per running gvisor web pod, everything its sandbox holds (its kernel and
    the two httpd/sh containers in it), with no warm sandbox counted; and the processes by kind."""
    names = {f"mem-{i}" for i in range(n)}
    for name in sorted(names):
        await server.client.create(web(name, "gvisor"))
    await asyncio.wait_for(server.wait_pods(names, all_running), 300)
    await asyncio.sleep(3)  # the pool's refill is done; its warm sandbox is subtracted below
    warm = [p for p in sandbox_pids(server) if _is_warm(p, server)]
    counted = [p for p in sandbox_pids(server) if p not in warm]
    rss, pss = total_kib(counted)
    kinds = breakdown(counted)
    for name in names:
        await server.client.delete(Pod, name, "default", grace_period_seconds=0)
    await asyncio.wait_for(server.wait_pods(names, gone), 120)
    return rss / n, pss / n, kinds


def print_memory(pods: int, rss: float, pss: float, kinds: Breakdown) -> None:
    print(f"memory per gvisor pod sandbox ({pods} web pods, kernel + both containers): "
          f"RSS {rss / 1024:.1f} MiB, PSS {pss / 1024:.1f} MiB")
    for kind, (count, kind_rss, kind_pss) in sorted(kinds.items(), key=lambda kv: -kv[1][2]):
        print(f"  {kind:<14} {count / pods:4.1f} a pod  RSS {kind_rss / pods / 1024:5.1f}  "
              f"PSS {kind_pss / pods / 1024:5.1f} MiB a pod")


def _is_warm(pid: int, server: PodbayServer) -> bool:
    """In the cgroup of a sandbox no pod has a record for (a warm one)."""
    records = {p.stem[:16] for p in (server.base / "lib" / "sandboxes").glob("*.json")}
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return f"{server.host.cgroup_parent}/pod-" in cgroup and not any(f"pod-{r}" in cgroup for r in records)


async def runtime_steps(rounds: int) -> dict[str, dict[str, list[float]]]:
    """Where a pod's runtime time goes, per handler: its sandbox (a warm one taken), two containers
    created together, then started together (the agent's order), through the runtime service; then
    what a replace adds: both stopped together (grace 0, as the benchmark's pods), and the
    sandbox's hostname changed (HyperContainer's hand-over)."""
    with claimed_host() as host:
        return await _runtime_steps(rounds, host)


async def _runtime_steps(rounds: int, host: BenchHost) -> dict[str, dict[str, list[float]]]:
    base = Path(tempfile.mkdtemp(prefix="podbay-bench-gvrt-"))
    runtime = RuntimeService(host.runtime_config(base, warm_sandboxes=1, warm_gvisor_sandboxes=1))
    await runtime.start()
    ensure_busybox_image(runtime.images)
    out: dict[str, dict[str, list[float]]] = {}
    try:
        for handler in ("", "runsc"):
            steps: dict[str, list[float]] = {"sandbox": [], "create x2": [], "start x2": [], "stop x2": [],
                                             "hostname": []}
            for i in range(rounds):
                await runtime.wait_warm()
                t0 = time.perf_counter()
                sandbox = await runtime.run_pod_sandbox(PodSandboxConfig(
                    PodSandboxMetadata(f"p{i}", "default", f"u{i}"), f"p{i}", runtime_handler=handler))
                t1 = time.perf_counter()
                ids = await asyncio.gather(*(runtime.create_container(sandbox, ContainerConfig(
                    ContainerMetadata(name), "busybox:1.35", ["sleep", "600"], env=["PATH=/bin"]))
                    for name in ("a", "b")))
                t2 = time.perf_counter()
                await asyncio.gather(*(runtime.start_container(cid) for cid in ids))
                t3 = time.perf_counter()
                await asyncio.gather(*(runtime.stop_container(cid, 0) for cid in ids))
                t4 = time.perf_counter()
                await runtime.update_pod_sandbox(sandbox, {}, {}, hostname=f"q{i}")
                t5 = time.perf_counter()
                for key, took in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                    steps[key].append(took)
                await runtime.remove_pod_sandbox(sandbox)
            out[handler or "crun"] = steps
    finally:
        await runtime.shutdown(purge=True)
        shutil.rmtree(base, ignore_errors=True)
    return out


def podman_running(rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="podbay-bench-gv-") as tmp:
        work = Path(tmp)
        peer = PodmanPeer(busybox_rootfs_tar(work))
        try:
            path = work / "web.yaml"
            path.write_text(manifest("web", None))
            samples = []
            for _ in range(rounds):
                t0 = time.monotonic()
                peer.play(path)
                samples.append(time.monotonic() - t0)
                peer.remove_pod("web")
            return samples
        finally:
            peer.close()


def line(label: str, s: Summary, base: Summary | None = None) -> str:
    vs = f"  {s.median / base.median:.2f}x crun" if base else ""
    return f"{label:<48} min {s.min:6.3f}  median {s.median:6.3f}  p90 {s.p90:6.3f} s{vs}"


async def memory_only(rounds: int, pods: int) -> None:
    server = PodbayServer("--warm-gvisor-sandboxes", "1")
    try:
        for _ in range(rounds):
            print_memory(pods, *await memory_per_sandbox(server, pods))
    finally:
        await server.close()


async def main_async(rounds: int, pods: int) -> None:
    server = PodbayServer("--warm-gvisor-sandboxes", "1")
    try:
        crun = await apply_to_running(server, None, rounds)
        warm = await apply_to_running(server, "gvisor", rounds)
        hyper = await start_and_replace(server, rounds)
        rss, pss, kinds = await memory_per_sandbox(server, pods)
    finally:
        await server.close()
    cold_server = PodbayServer("--warm-gvisor-sandboxes", "0")
    try:
        cold = await apply_to_running(cold_server, "gvisor", rounds)
        cold_hyper = await start_and_replace(cold_server, rounds)
    finally:
        await cold_server.close()
    podman = await asyncio.to_thread(podman_running, rounds)
    steps = await runtime_steps(rounds)
    base = summarise(crun)
    print(line("web pod apply -> running, crun", base))
    print(line("web pod apply -> running, gvisor (warm pool)", summarise(warm), base))
    print(line("web pod apply -> running, gvisor (no pool)", summarise(cold), base))
    print(line("web pod apply -> running, podman", summarise(podman), base))
    print(line("gvisor pod: start (warm pool)", summarise(hyper["start"])))
    print(line("gvisor pod: replace -o OLD -n NEW (warm pool)", summarise(hyper["replace"])))
    print(line("gvisor pod: start (no pool)", summarise(cold_hyper["start"])))
    print(line("gvisor pod: replace -o OLD -n NEW (no pool)", summarise(cold_hyper["replace"])))
    print("replaces that handed OLD's sandbox to NEW: " + ", ".join(
        f"{sum(h['handed over']):.0f}/{len(h['handed over'])} {label}"
        for label, h in (("warm pool", hyper), ("no pool", cold_hyper))))
    for handler, by_step in steps.items():
        print(f"runtime steps, {handler:5}: " + "  ".join(
            f"{step} {summarise(samples).median * 1000:.0f} ms" for step, samples in by_step.items()))
    print_memory(pods, rss, pss, kinds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pods", type=int, default=5)
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory per pod sandbox, once a round, by kind of process")
    args = parser.parse_args()
    asyncio.run((memory_only if args.memory_only else main_async)(args.rounds, args.pods))


if __name__ == "__main__":
    main()
