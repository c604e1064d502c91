"""Times one container's create (conmon + `crun create`) and start, as the agent runs them, with
crun run from its file, from the agent's sealed copy, from that copy with the seccomp filter
compiled ahead (the annotation the agent adds), and that with the start done by writing crun's
exec fifo (as the agent does) instead of `crun start`, in alternating rounds.

Run as root: .venv/bin/python -m bench.oci_create [--rounds N] [--no-seccomp]
A busybox rootfs in the host's network namespace, with the RuntimeDefault seccomp profile (as every podbay container that is not
privileged gets it), in a temporary directory removed after; crun's state in it too.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.stats import summarise
from podbay.runtime.oci import OCIRuntime
from podbay.runtime.seccompbpf import CompiledFilters
from podbay.runtime.sealedbinary import seal_copy
from podbay.runtime.seccomp import linux_seccomp, runtime_default
from podbay.runtime.spec import capabilities


def _bundle(directory: Path, seccomp: bool) -> Path:
    bundle = directory / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=["/bin/busybox", "sleep", "3600"])
    # A pod's containers join its sandbox's network namespace; a new one per create (crun brings
    # its loopback up) is no part of what the agent pays.
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"]
    if seccomp:
        spec["linux"]["seccomp"] = linux_seccomp(runtime_default(), capabilities([], [], False))
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


async def _precompiled(oci: OCIRuntime, bundle: Path) -> Path:
    """A second bundle on the same rootfs whose spec carries the filter crun compiled for the first."""
    filters = CompiledFilters(oci.root)
    spec = filters.annotate(json.loads((bundle / "config.json").read_text()))
    await oci.create("compile", bundle, bundle.parent / "compile.log")
    filters.learn("compile", bundle)
    await oci.delete("compile")
    other = bundle.parent / "precompiled"
    other.mkdir()
    spec["root"]["path"] = str(bundle / "rootfs")
    (other / "config.json").write_text(json.dumps(filters.annotate(spec)))
    return other


async def _round(oci: OCIRuntime, bundle: Path, name: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    await oci.create(name, bundle, bundle.parent / f"{name}.log")
    t1 = time.perf_counter()
    await oci.start(name)
    t2 = time.perf_counter()
    await oci.delete(name)
    return (t1 - t0) * 1000, (t2 - t1) * 1000


async def main(rounds: int, seccomp: bool) -> None:
    crun = Path(shutil.which("crun") or "/usr/bin/crun")
    conmon = shutil.which("conmon") or "/usr/bin/conmon"
    sealed = seal_copy(crun)
    with tempfile.TemporaryDirectory(prefix="pbbench-oci-") as tmp:
        bundle = _bundle(Path(tmp), seccomp)
        sides = {
            "crun from its file": OCIRuntime(str(crun), conmon, Path(tmp) / "crun", Path(tmp) / "exits"),
            "crun from the sealed copy": OCIRuntime(sealed.path, conmon, Path(tmp) / "crun", Path(tmp) / "exits"),
        }
        bundles = {side: bundle for side in sides}
        if seccomp:
            sides["sealed copy, compiled filter"] = sides["crun from the sealed copy"]
            bundles["sealed copy, compiled filter"] = await _precompiled(sides["crun from the sealed copy"], bundle)
            sides["... and the exec fifo written"] = replace(sides["crun from the sealed copy"], fifo_start=True)
            bundles["... and the exec fifo written"] = bundles["sealed copy, compiled filter"]
        samples: dict[str, tuple[list[float], list[float]]] = {side: ([], []) for side in sides}
        for n in range(rounds + 1):
            for i, (side, oci) in enumerate(sides.items()):
                create, start = await _round(oci, bundles[side], f"bench{n}-{i}")
                if n:  # the first round warms the page cache
                    samples[side][0].append(create)
                    samples[side][1].append(start)
    os.close(sealed.fd)
    for side, (create, start) in samples.items():
        c, s = summarise(create), summarise(start)
        print(f"{side:30} create median {c.median:6.2f} ms (p90 {c.p90:6.2f})   "
              f"start median {s.median:6.2f} ms (p90 {s.p90:6.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-seccomp", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, not args.no_seccomp))
