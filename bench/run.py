"""podbay vs `podman kube play`, side by side in one run on this machine.

    sudo .venv/bin/python -m bench.run [--rounds 15] [--pods 50] [--scale-pods 200] [--rss-pods 110]
                                       [--json bench/results.json]

Prints a table (min / median / p90 / max, and the ratio peer/podbay on the
median) and saves the samples as JSON; then podbay's own figures: whether a
long run of pods slows down, and the server's memory with a node's worth of
running pods. See bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import subprocess
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.memory import children_named, rss_pss_kib, total_kib
from bench.peer_podman import PodmanPeer
from bench.podbay_side import PodbayServer, all_running, pod_from
from bench.stats import ratio, summarise
from podbay.api import Pod
from podbay.api.formats import dump_objects, load_pods

HOST_PORT = 18080
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "web-pod.yaml"


def manifest(name: str, port: int | None) -> str:
    """The seed's web pod (examples/web-pod.yaml) under `name`, with a hostPort or none;
    grace period 0, so both tools tear it down at once."""
    pod = load_pods(EXAMPLE)[0]
    pod.metadata.name = name
    pod.spec.termination_grace_period_seconds = 0
    frontend = pod.spec.containers[1]
    if port:
        frontend.ports[0].host_port = port
    else:
        frontend.ports = []
    return dump_objects([pod])


def served(url: str, deadline: float) -> None:
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def wait_exited(pids: list[int], deadline: float) -> None:
    """Until every process has exited, woken by pidfds rather than polling."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
    try:
        for fd in fds:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        for fd in fds:
            os.close(fd)


def wait_no_sandbox(records: Path, deadline: float) -> None:
    """Until the runtime holds no sandbox record (warm sandboxes have none)."""
    while any(records.glob("*.json")):
        if time.monotonic() > deadline:
            raise TimeoutError("the pod's sandbox was not removed")
        time.sleep(0.002)


def busybox_rootfs_tar(directory: Path) -> Path:
    """The same busybox podbay builds its image from, as a rootfs tarball for `podman import`."""
    from podbay.runtime.images import ImageStore, ensure_busybox_image
    store = ImageStore(directory / "images")
    ensure_busybox_image(store)
    layer = store.mount_layers("busybox:1.35")[0]
    tar = directory / "busybox.tar"
    subprocess.run(["tar", "-C", str(layer), "-cf", str(tar), "."], check=True)
    return tar


async def fig1_2_podbay(server: PodbayServer, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"running": [], "served": [], "teardown": []}
    for _ in range(rounds):
        pod = pod_from(manifest("web", HOST_PORT))
        t0 = time.monotonic()
        await server.client.create(pod)
        await server.wait_pods({"web"}, all_running)
        out["running"].append(time.monotonic() - t0)
        await asyncio.to_thread(served, f"http://127.0.0.1:{HOST_PORT}/", time.monotonic() + 30)
        out["served"].append(time.monotonic() - t0)
        monitors = children_named("conmon", str(server.base))
        t0 = time.monotonic()
        await server.client.delete(Pod, "web", "default", grace_period_seconds=0)
        await server.wait_pods({"web"}, lambda p: p is None)
        # Torn down means the containers and the sandbox (namespaces, network) are gone too,
        # not only the object, as after `podman pod rm`.
        await asyncio.to_thread(wait_exited, monitors, time.monotonic() + 30)
        await asyncio.to_thread(wait_no_sandbox, server.base / "lib" / "sandboxes", time.monotonic() + 30)
        out["teardown"].append(time.monotonic() - t0)
    return out


def fig1_2_podman(peer: PodmanPeer, rounds: int, work: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"running": [], "served": [], "teardown": []}
    path = work / "web.yaml"
    path.write_text(manifest("web", HOST_PORT))
    for _ in range(rounds):
        t0 = time.monotonic()
        peer.play(path)  # returns once the containers have started
        out["running"].append(time.monotonic() - t0)
        served(f"http://127.0.0.1:{HOST_PORT}/", time.monotonic() + 30)
        out["served"].append(time.monotonic() - t0)
        t0 = time.monotonic()
        peer.remove_pod("web")
        out["teardown"].append(time.monotonic() - t0)
    return out


async def fig3_4_podbay(server: PodbayServer, n: int) -> dict[str, float]:
    names = {f"burst-{i}" for i in range(n)}
    base_rss = rss_pss_kib(server.server_pid())[0]
    t0 = time.monotonic()
    for name in sorted(names):
        await server.client.create(pod_from(manifest(name, None)))
    await server.wait_pods(names, all_running)
    took = time.monotonic() - t0
    conmons = children_named("conmon", str(server.base))
    rss, pss = total_kib(conmons)
    result = {"pods_per_second": n / took, "per_pod_rss_kib": rss / n, "per_pod_pss_kib": pss / n,
              "server_rss_kib_0": base_rss, "server_rss_kib_n": rss_pss_kib(server.server_pid())[0]}
    for name in names:
        await server.client.delete(Pod, name, "default", grace_period_seconds=0)
    await server.wait_pods(names, lambda p: p is None)
    return result


async def create_until_running(server: PodbayServer, names: list[str]) -> list[float]:
    """Creates the pods back to back (each create awaited, none waiting for a pod to run);
    returns when each was first seen running, from the first create, in order of running."""
    seen: dict[str, float] = {}

    def running(pod: Pod | None) -> bool:
        if all_running(pod):
            assert pod is not None
            seen.setdefault(pod.metadata.name or "", time.monotonic())
            return True
        return False

    waiter = asyncio.create_task(server.wait_pods(set(names), running))
    t0 = time.monotonic()
    for name in names:
        await server.client.create(pod_from(manifest(name, None)))
    await waiter
    return sorted(t - t0 for t in seen.values())


async def delete_all(server: PodbayServer, names: list[str]) -> None:
    for name in names:
        await server.client.delete(Pod, name, "default", grace_period_seconds=0)
    await server.wait_pods(set(names), lambda p: p is None)


async def scale_podbay(server: PodbayServer, n: int, window: int) -> dict[str, float]:
    """Pods/s of the first `window` pods to run and of the last `window`, of `n` back to back."""
    names = [f"scale-{i:04d}" for i in range(n)]
    times = await create_until_running(server, names)
    await delete_all(server, names)
    return {"window": window, "first_pods_per_second": window / times[window - 1],
            "last_pods_per_second": window / (times[-1] - times[-window - 1]), "total_seconds": times[-1]}


async def rss_podbay(server: PodbayServer, n: int) -> dict[str, float]:
    """The all-in-one server's RSS (API server, controllers, scheduler and agent: one process)
    with `n` pods running, once the burst's work is over."""
    names = [f"rss-{i:04d}" for i in range(n)]
    before = rss_pss_kib(server.server_pid())[0]
    await create_until_running(server, names)
    # Settled: the agent's status writes and the warm-sandbox refill follow the last start.
    await asyncio.sleep(5)
    after = rss_pss_kib(server.server_pid())[0]
    await delete_all(server, names)
    return {"server_rss_kib_before": before, "server_rss_kib_running": after}


def fig3_4_podman(peer: PodmanPeer, n: int, work: Path) -> dict[str, float]:
    paths = []
    for i in range(n):
        path = work / f"burst-{i}.yaml"
        path.write_text(manifest(f"burst-{i}", None))
        paths.append(path)
    t0 = time.monotonic()
    for path in paths:
        peer.play(path)
    took = time.monotonic() - t0
    pids = [p for i in range(n) for p in peer.pod_pids(f"burst-{i}")]
    rss, pss = total_kib(pids)
    for i in range(n):
        peer.remove_pod(f"burst-{i}")
    return {"pods_per_second": n / took, "per_pod_rss_kib": rss / n, "per_pod_pss_kib": pss / n}


def table(results: dict) -> str:
    lines = [f"{'figure':34} {'tool':7} {'min':>9} {'median':>9} {'p90':>9} {'max':>9}  podman/podbay"]
    for figure in ("running", "served", "teardown"):
        ours, peer = summarise(results["podbay"][figure]), summarise(results["podman"][figure])
        for tool, s in (("podbay", ours), ("podman", peer)):
            lines.append(f"{'web pod: ' + figure + ' (s)':34} {tool:7} {s.min:9.3f} {s.median:9.3f} {s.p90:9.3f} "
                         f"{s.max:9.3f}" + (f"  {ratio(peer.median, ours.median):.1f}x" if tool == "podman" else ""))
    b, p = results["burst"]["podbay"], results["burst"]["podman"]
    lines.append(f"{results['n']} pods back to back (pods/s):   podbay {b['pods_per_second']:.1f}  "
                 f"podman {p['pods_per_second']:.1f}  ({b['pods_per_second'] / p['pods_per_second']:.1f}x)")
    lines.append(f"memory per pod besides the apps (KiB): podbay RSS {b['per_pod_rss_kib']:.0f} PSS "
                 f"{b['per_pod_pss_kib']:.0f}; podman RSS {p['per_pod_rss_kib']:.0f} PSS {p['per_pod_pss_kib']:.0f}")
    lines.append(f"podbay server RSS (KiB): {b['server_rss_kib_0']} at 0 pods, {b['server_rss_kib_n']} at "
                 f"{results['n']} pods")
    if "scale" in results:
        sc = results["scale"]
        w = sc["window"]
        lines.append(f"{results['scale_n']} pods back to back, podbay: first {w} {sc['first_pods_per_second']:.1f} "
                     f"pods/s, last {w} {sc['last_pods_per_second']:.1f} pods/s "
                     f"({sc['last_pods_per_second'] / sc['first_pods_per_second'] - 1:+.0%}); "
                     f"all in {sc['total_seconds']:.1f} s")
    if "rss" in results:
        r = results["rss"]
        lines.append(f"podbay server RSS (MiB) with {results['rss_n']} pods running: "
                     f"{r['server_rss_kib_running'] / 1024:.1f} (before them: {r['server_rss_kib_before'] / 1024:.1f})")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--scale-pods", type=int, default=200, help="0: skip the no-slowdown figure")
    parser.add_argument("--rss-pods", type=int, default=110, help="0: skip the server memory figure")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="podbay-bench-work-"))
    peer = PodmanPeer(busybox_rootfs_tar(work))
    # More than the kubelet's default 110 pods on the node, for the no-slowdown figure.
    server = PodbayServer("--max-pods", str(max(110, args.scale_pods, args.rss_pods)))
    try:
        results = {"rounds": args.rounds, "n": args.pods,
                   "podbay": await fig1_2_podbay(server, args.rounds),
                   "podman": fig1_2_podman(peer, args.rounds, work)}
        results["burst"] = {"podbay": await fig3_4_podbay(server, args.pods),
                            "podman": fig3_4_podman(peer, args.pods, work)}
        if args.rss_pods:
            results["rss_n"], results["rss"] = args.rss_pods, await rss_podbay(server, args.rss_pods)
        if args.scale_pods:
            results["scale_n"] = args.scale_pods
            results["scale"] = await scale_podbay(server, args.scale_pods, min(50, args.scale_pods // 2))
        # Before the servers are stopped: a slow stop on a loaded machine loses no figure.
        args.json.write_text(json.dumps(results, indent=2))
        print(table(results), flush=True)
    finally:
        await server.close()
        peer.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
