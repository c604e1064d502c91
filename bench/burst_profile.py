"""Where the event loop's time goes in a burst (issue #19 target 2), per pod:

    sudo .venv/bin/python -m bench.burst_profile [--pods 50] [--rounds 3] [--out DIR] [--no-sampler]

`podbay up` on private roots; one burst first to warm up, then `--rounds` bursts of `--pods` pods
created back to back until all run, each deleted after. Per burst: pods/s, and the server's main
thread (the event loop) and whole-process CPU time per pod from /proc (CPU, not wall time: robust to
a loaded machine). With the sampler, py-spy samples the server during each burst (200 Hz,
non-blocking) and the main thread's non-idle samples are printed per part of podbay and per
function, in ms per pod. Non-idle includes time blocked in a syscall or waiting for a CPU, so on a
loaded machine it exceeds the CPU time: compare runs taken side by side.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.podbay_side import PodbayServer, all_running, pod_from
from bench.run import manifest
from podbay.api import Pod

RATE = 200
PARTS = ("podbay/runtime", "podbay/store", "podbay/apiserver", "podbay/security", "podbay/scheduler",
         "podbay/controllers", "podbay/agent", "podbay/client", "aiohttp")


def machine_busy_seconds() -> float:
    """All CPUs' non-idle time (user, nice, system, irq, softirq, steal) from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _stat_seconds(path: str, first: int) -> float:
    """Two adjacent clock-tick fields of a /proc stat file (counted after the command's ")"), summed."""
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def reaped_children_seconds(pid: int) -> float:
    """CPU time of the process's children that it has waited for (the CNI plugins, crun, mount)."""
    return _stat_seconds(f"/proc/{pid}/stat", 13)  # cutime + cstime


def cpu_seconds(pid: int) -> tuple[float, float]:
    """The main thread's and the whole process's utime + stime."""
    return _stat_seconds(f"/proc/{pid}/task/{pid}/stat", 11), _stat_seconds(f"/proc/{pid}/stat", 11)


def main_thread_stacks(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw output: the main thread's stacks (frames without line numbers) and counts."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" in frames[0] and len(frames) > 1:
            out.append(([re.sub(r":\d+\)", ")", f) for f in frames[1:]], int(count)))
    return out


def report(files: list[Path], pods: int) -> str:
    parts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for path in files:
        for frames, count in main_thread_stacks(path):
            total += count
            parts[next((p for p in PARTS if any(p in f for f in frames)), "asyncio and other")] += count
            for frame in set(frames):
                if "podbay/" in frame or "subprocess.py" in frame:
                    inclusive[frame] += count
    per_pod = 1000 / RATE / pods / len(files)
    lines = [f"main thread non-idle: {total * per_pod:.1f} ms/pod"]
    lines += [f"  {part:20} {parts[part] * per_pod:6.1f}" for part in (*PARTS, "asyncio and other")]
    lines.append("by function (inclusive), ms/pod:")
    lines += [f"  {n * per_pod:6.1f}  {frame}" for frame, n in inclusive.most_common(40)]
    return "\n".join(lines)


async def burst(server: PodbayServer, names: set[str]) -> float:
    """Seconds from the first create until every pod runs."""
    t0 = time.monotonic()
    for name in sorted(names):
        await server.client.create(pod_from(manifest(name, None)))
    await server.wait_pods(names, all_running)
    return time.monotonic() - t0


async def delete(server: PodbayServer, names: set[str]) -> None:
    for name in names:
        await server.client.delete(Pod, name, "default", grace_period_seconds=0)
    await server.wait_pods(names, lambda p: p is None)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="keep py-spy's raw samples here")
    parser.add_argument("--no-sampler", action="store_true", help="pods/s and CPU per pod only")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="podbay-bench-burst-"))
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if not args.no_sampler and spy is None:
        raise SystemExit("py-spy is not installed (pip install -e '.[test]')")
    cores = os.cpu_count() or 1
    server = PodbayServer()
    samples: list[Path] = []
    try:
        warm = {f"warm-{i}" for i in range(args.pods)}
        await burst(server, warm)
        await delete(server, warm)
        for r in range(args.rounds):
            names = {f"b{r}-{i}" for i in range(args.pods)}
            pid = server.server_pid()
            sampler = None
            if not args.no_sampler and spy is not None:
                samples.append(out / f"burst-{r}.txt")
                sampler = subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking",
                                            "--rate", str(RATE), "--threads", "-o", str(samples[-1])],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1)  # py-spy attaches
            before, machine, children, own = cpu_seconds(pid), machine_busy_seconds(), \
                reaped_children_seconds(pid), time.process_time()
            took = await burst(server, names)
            after = cpu_seconds(pid)
            machine, children, own = (machine_busy_seconds() - machine, reaped_children_seconds(pid) - children,
                                      time.process_time() - own)
            if sampler is not None:
                sampler.send_signal(signal.SIGINT)
                sampler.wait()
            await delete(server, names)
            print(f"burst {r}: {args.pods / took:.1f} pods/s; CPU per pod: event loop "
                  f"{(after[0] - before[0]) * 1000 / args.pods:.1f} ms, process "
                  f"{(after[1] - before[1]) * 1000 / args.pods:.1f} ms, its reaped children "
                  f"{children * 1000 / args.pods:.1f} ms, this client {own * 1000 / args.pods:.1f} ms, "
                  f"machine {machine * 1000 / args.pods:.1f} ms of {cores * took * 1000 / args.pods:.1f}",
                  flush=True)
    finally:
        await server.close()
    if samples:
        print(report([s for s in samples if s.exists()], args.pods))
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
