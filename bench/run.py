"""podbay vs `podman kube play`, side by side in one run on this machine.

    sudo .venv/bin/python -m bench.run [--rounds 15] [--pods 50] [--json bench/results.json]

Prints a table (min / median / p90 / max, and the ratio peer/podbay on the
median) and saves the samples as JSON. See bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import subprocess
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
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="podbay-bench-work-"))
    peer = PodmanPeer(busybox_rootfs_tar(work))
    server = PodbayServer()
    try:
        results = {"rounds": args.rounds, "n": args.pods,
                   "podbay": await fig1_2_podbay(server, args.rounds),
                   "podman": fig1_2_podman(peer, args.rounds, work)}
        results["burst"] = {"podbay": await fig3_4_podbay(server, args.pods),
                            "podman": fig3_4_podman(peer, args.pods, work)}
    finally:
        await server.close()
        peer.close()
    args.json.write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    asyncio.run(main())
