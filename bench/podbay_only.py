"""podbay-only figures:

    sudo .venv/bin/python -m bench.podbay_only [--rounds 15]

- container create+start through the runtime vs a raw `crun run -d` of the same bundle (the floor);
- a sandbox plus two containers through the runtime, with a warm sandbox ready and without;
- HyperContainer's `replace` (a running pod's sandbox handed over) vs `start` of a Created pod and
  vs `stop` + `start` (what replace saves a user), with and without the warm sandbox pool.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.hostnet import BenchHost, claimed_host
from bench.podbay_side import PodbayServer, all_running
from bench.stats import summarise
from podbay.api import Pod
from podbay.api.formats import load_pods
from podbay.api.wellknown import RUN_STATE_ANNOTATION, SANDBOX_FROM_ANNOTATION
from podbay.runtime.images import ensure_busybox_image
from podbay.runtime.service import RuntimeService
from podbay.runtime.syscalls import mount, umount
from podbay.runtime.types import ContainerConfig, ContainerMetadata, PodSandboxConfig, PodSandboxMetadata


async def container_floor(rounds: int, host: BenchHost) -> tuple[list[float], list[float]]:
    base = Path(tempfile.mkdtemp(prefix="podbay-bench-rt-"))
    runtime = RuntimeService(host.runtime_config(base))
    await runtime.start()
    ensure_busybox_image(runtime.images)
    sandbox = await runtime.run_pod_sandbox(PodSandboxConfig(PodSandboxMetadata("floor", "default", "floor"), "floor"))
    ours, raw = [], []
    crun_root = base / "raw-crun"
    try:
        for i in range(rounds):
            config = ContainerConfig(ContainerMetadata(f"c{i}"), "busybox:1.35", ["sleep", "600"],
                                     env=["PATH=/bin"])
            t0 = time.perf_counter()
            cid = await runtime.create_container(sandbox, config)
            await runtime.start_container(cid)
            ours.append(time.perf_counter() - t0)
            # The same bundle, run by crun alone: no conmon, no records, no log file.
            bundle = base / f"raw{i}"
            (bundle / "rootfs").mkdir(parents=True)
            (bundle / "upper").mkdir()
            (bundle / "work").mkdir()
            spec = json.loads((runtime.config.bundles_root / cid / "config.json").read_text())
            spec["root"]["path"] = str(bundle / "rootfs")
            spec["linux"]["cgroupsPath"] = f"{host.cgroup_parent}/raw{i}"
            (bundle / "config.json").write_text(json.dumps(spec))
            lower = ":".join(map(str, runtime.images.mount_layers("busybox:1.35")))
            mount("overlay", str(bundle / "rootfs"), "overlay", 0,
                  f"lowerdir={lower},upperdir={bundle / 'upper'},workdir={bundle / 'work'}")
            t0 = time.perf_counter()
            subprocess.run(["crun", f"--root={crun_root}", "run", "-d", "--bundle", str(bundle), f"raw{i}"],
                           check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            raw.append(time.perf_counter() - t0)
            subprocess.run(["crun", f"--root={crun_root}", "delete", "-f", f"raw{i}"], check=False)
            umount(str(bundle / "rootfs"), lazy=True)
            await runtime.stop_container(cid, 0)
            await runtime.remove_container(cid)
    finally:
        await runtime.shutdown(purge=True)
        shutil.rmtree(base, ignore_errors=True)
    return ours, raw


async def sandbox_and_two_containers(rounds: int, warm: int, host: BenchHost) -> list[float]:
    """A pod's whole runtime path: sandbox (namespaces, CNI network, cgroup, /etc files) and two
    containers created and started, timed until both run; `warm` sandboxes made ahead or none."""
    base = Path(tempfile.mkdtemp(prefix="podbay-bench-sb-"))
    runtime = RuntimeService(host.runtime_config(base, warm_sandboxes=warm))
    await runtime.start()
    ensure_busybox_image(runtime.images)
    times = []
    try:
        for i in range(rounds):
            await runtime.wait_warm()  # the pool refilled between rounds, as between pods
            t0 = time.perf_counter()
            sandbox = await runtime.run_pod_sandbox(PodSandboxConfig(PodSandboxMetadata(f"p{i}", "default", f"u{i}"),
                                                                     f"p{i}"))
            ids = await asyncio.gather(*(runtime.create_container(sandbox, ContainerConfig(
                ContainerMetadata(name), "busybox:1.35", ["sleep", "600"], env=["PATH=/bin"])) for name in ("a", "b")))
            await asyncio.gather(*(runtime.start_container(cid) for cid in ids))
            times.append(time.perf_counter() - t0)
            for cid in ids:
                await runtime.stop_container(cid, 0)
                await runtime.remove_container(cid)
            await runtime.stop_pod_sandbox(sandbox)
            await runtime.remove_pod_sandbox(sandbox)
    finally:
        await runtime.shutdown(purge=True)
        shutil.rmtree(base, ignore_errors=True)
    return times


POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, annotations: {{podbay.io/run-state: Created}}}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{{name: c, image: busybox:1.35, command: [sleep, "600"]}}]
"""


async def replace_vs_start(rounds: int, *flags: str) -> dict[str, list[float]]:
    """Per round, on Created pods OLD and NEW: `start OLD`; `replace -o OLD -n NEW`; and what a
    user would do without replace, `stop NEW` then `start OLD` (timed until OLD runs)."""
    server = PodbayServer(*flags)
    client = server.client
    times: dict[str, list[float]] = {"start": [], "replace": [], "stop+start": []}

    async def set_state(name: str, **annotations: str) -> None:
        pod = await client.get(Pod, name, "default")
        pod.metadata.annotations.update(annotations)
        await client.update(pod)

    def created(p: Pod | None) -> bool:
        return p is not None and p.status.reason == "Created"

    try:
        for i in range(rounds):
            old, new = f"old-{i}", f"new-{i}"
            for name in (old, new):
                await client.create(load_pods(POD.format(name=name))[0])
            await server.wait_pods({old, new}, created)
            t0 = time.monotonic()
            await set_state(old, **{RUN_STATE_ANNOTATION: "Running"})
            await server.wait_pods({old}, all_running)
            times["start"].append(time.monotonic() - t0)
            t0 = time.monotonic()
            await set_state(new, **{RUN_STATE_ANNOTATION: "Running", SANDBOX_FROM_ANNOTATION: old})
            await server.wait_pods({new}, all_running)
            times["replace"].append(time.monotonic() - t0)
            await server.wait_pods({old}, created)
            t0 = time.monotonic()
            await set_state(new, **{RUN_STATE_ANNOTATION: "Created"})
            await server.wait_pods({new}, created)
            await set_state(old, **{RUN_STATE_ANNOTATION: "Running"})
            await server.wait_pods({old}, all_running)
            times["stop+start"].append(time.monotonic() - t0)
            for name in (old, new):
                await client.delete(Pod, name, "default", grace_period_seconds=0)
            await server.wait_pods({old, new}, lambda p: p is None)
    finally:
        await server.close()
    return times


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    # One after another, each runtime purged before the next: they may share this run's names.
    with claimed_host() as host:
        ours, raw = await container_floor(args.rounds, host)
        pods = {warm: await sandbox_and_two_containers(args.rounds, warm, host) for warm in (1, 0)}
    warm = await replace_vs_start(args.rounds)
    cold = await replace_vs_start(args.rounds, "--warm-sandboxes", "0")
    rows = [("container create+start, podbay runtime", ours), ("raw crun run -d, same bundle", raw),
            ("sandbox + 2 containers, warm sandbox", pods[1]), ("sandbox + 2 containers, cold", pods[0]),
            *((f"{label}, warm sandbox pool", samples) for label, samples in warm.items()),
            *((f"{label}, no warm sandboxes", samples) for label, samples in cold.items())]
    for label, samples in rows:
        s = summarise(samples)
        print(f"{label:40} min {s.min * 1000:6.1f}  median {s.median * 1000:6.1f}  p90 {s.p90 * 1000:6.1f} ms")

if __name__ == "__main__":
    asyncio.run(main())
