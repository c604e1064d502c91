"""One pod's way through the control plane, hand-off by hand-off: figure 1's web pod, created and
deleted one at a time, on an idle `podbay up`.

    sudo .venv/bin/python -m bench.pod_timeline [--pods 20] [--keep FILE]

The server runs with bench/timeline_site on PYTHONPATH, whose sitecustomize stamps (time.monotonic,
one clock for every process) the API calls, the store's commits, the watch events sent, the
informers' deliveries, the scheduler's cycle and the pod sync from outside podbay's code, and the
runtime's steps (begin and end). Prints the median (p90) of each step between two milestones over
the pods, then the runtime's steps within the sync as a Gantt chart; the first two pods are
warm-up and not counted.
See bench/README.md, "2026-12-01: one pod's control-plane latency".
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.podbay_side import PodbayServer, all_running, pod_from
from bench.memory import children_named
from bench.run import HOST_PORT, manifest, wait_exited, wait_no_sandbox
from podbay.api import Pod

SITE = Path(__file__).resolve().parent / "timeline_site"
WARM_UP = 2

Stamps = list[tuple[float, str]]  # (milliseconds, label) of one pod, in time order


# One pod's milestones in the order it passes them ({name}: the pod's); each step is the time from
# one to the next. A commit may wait for another batch's (an Event's) first: the step from a
# request to its commit holds the API server's work and that wait.
MILESTONES = [
    ("create POST sent", r"^request POST .*/pods$"),
    ("the pod committed (API server work, store commit)", r"^committed \[.*'pods'"),
    ("its watch event sent", r"^watch-sent ADDED {name}$"),
    ("the scheduler's informer has it", r"^informer ADDED {name} "),
    ("binding POST sent (scheduling cycle)", r"^request POST .*/pods/{name}/binding$"),
    ("the binding committed", r"^committed \[.*'pods'"),
    ("its watch event sent", r"^watch-sent MODIFIED {name}$"),
    ("the agent's informer has the bound pod", r"^informer MODIFIED {name} node=[^N]"),
    ("the pod worker's sync starts", r"^sync {name}$"),
    ("the status computed (sandbox, containers: the runtime)", r"^status {name}$"),
    ("status PUT sent", r"^request PUT .*/pods/{name}/status$"),
    ("the status committed", r"^committed \[.*'pods'"),
    ("its watch event sent", r"^watch-sent MODIFIED {name}$"),
    ("the client's watch sees Running", r"^seen-running {name}$"),
]
# (name, first milestone, last milestone) by index into MILESTONES.
TOTALS = [
    ("control plane before the runtime (create -> sync starts)", 0, 8),
    ("control plane after the runtime (status computed -> seen Running)", 9, 13),
    ("create -> seen Running", 0, 13),
]


def stamp(path: Path, label: str) -> None:
    with open(path, "a") as out:
        out.write(f"{time.monotonic():.6f} {os.getpid()} {label}\n")


def rounds(path: Path) -> list[tuple[str, Stamps]]:
    """Each pod's name and the stamps from its create on, in time order."""
    out: list[tuple[str, Stamps]] = []
    for line in sorted(path.read_text().splitlines(), key=lambda l: float(l.split(" ", 1)[0])):
        t, _, label = line.split(" ", 2)
        if label.startswith("pod "):
            out.append((label.split(" ", 1)[1], []))
        elif out:
            out[-1][1].append((float(t) * 1000, label))
    return out


def milestones(name: str, stamps: Stamps) -> list[float] | None:
    """When the pod passed each milestone; None when a stamp is missing."""
    times: list[float] = []
    since = 0.0
    for _, pattern in MILESTONES:
        regex = re.compile(pattern.format(name=re.escape(name)))
        found = next((t for t, label in stamps if t >= since and regex.search(label)), None)
        if found is None:
            return None
        times.append(found)
        since = found
    return times


def report(path: Path) -> str:
    passed = [m for name, stamps in rounds(path)[WARM_UP:] if (m := milestones(name, stamps)) is not None]
    lines = ["| step (to the milestone) | median ms | p90 ms |", "|---|---|---|"]

    def row(label: str, values: list[float]) -> None:
        values = sorted(values)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        lines.append(f"| {label} | {statistics.median(values):.1f} | {p90:.1f} |")
    for i in range(1, len(MILESTONES)):
        row(MILESTONES[i][0], [m[i] - m[i - 1] for m in passed])
    for label, first, last in TOTALS:
        row(f"**{label}**", [m[last] - m[first] for m in passed])
    lines.append(f"\n{len(passed)} pods")
    return "\n".join(lines)


def steps(path: Path) -> str:
    """The runtime's steps within each pod's first sync (stamped `begin X`/`end X` around them): when
    the first began and the last ended, in ms from the sync's start, and the time spent in them
    summed (two containers' steps at once count twice); medians over the pods, as a Gantt chart."""
    spans: dict[str, list[tuple[float, float, float]]] = {}
    for name, stamps in rounds(path)[WARM_UP:]:
        sync = next((t for t, label in stamps if label == f"sync {name}"), None)
        status = next((t for t, label in stamps if label == f"status {name}"), None)
        if sync is None or status is None:
            continue
        open_: dict[str, list[float]] = {}
        pod: dict[str, list[float]] = {}
        for t, label in stamps:
            kind, _, step = label.partition(" ")
            if kind not in ("begin", "end") or not sync <= t <= status:
                continue
            if kind == "begin":
                open_.setdefault(step, []).append(t)
            elif open_.get(step):
                begun = open_[step].pop()
                first, last, total = pod.get(step, [begun, t, 0.0])
                pod[step] = [min(first, begun), max(last, t), total + t - begun]
        for step, (first, last, total) in pod.items():
            spans.setdefault(step, []).append((first - sync, last - sync, total))
    lines = ["| runtime step (first sync) | first begins, ms from sync | last ends | time in it, summed | pods |",
             "|---|---|---|---|---|"]
    for step, rows in sorted(spans.items(), key=lambda kv: statistics.median(r[0] for r in kv[1])):
        lines.append(f"| {step} | {statistics.median(r[0] for r in rows):.1f} | "
                     f"{statistics.median(r[1] for r in rows):.1f} | {statistics.median(r[2] for r in rows):.1f} | "
                     f"{len(rows)} |")
    return "\n".join(lines)


async def run(pods: int, path: Path) -> None:
    os.environ["PODBAY_TIMELINE"] = str(path)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH")) if p)
    importlib.import_module("bench.timeline_site.sitecustomize")  # this process's API calls too
    server = PodbayServer()
    try:
        for i in range(pods + WARM_UP):
            name = f"web-{i}"
            stamp(path, f"pod {name}")
            await server.client.create(pod_from(manifest(name, HOST_PORT)))
            await server.wait_pods({name}, all_running)
            stamp(path, f"seen-running {name}")
            # Torn down as in figure 1 (containers and sandbox gone), so the next pod starts on an idle server.
            monitors = children_named("conmon", str(server.base))
            await server.client.delete(Pod, name, "default", grace_period_seconds=0)
            await server.wait_pods({name}, lambda p: p is None)
            await asyncio.to_thread(wait_exited, monitors, time.monotonic() + 30)
            await asyncio.to_thread(wait_no_sandbox, server.base / "lib" / "sandboxes", time.monotonic() + 30)
    finally:
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="keep the stamps in this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="podbay-timeline-") as tmp:
        path = args.keep or Path(tmp) / "stamps"
        asyncio.run(run(args.pods, path))
        print(report(path))
        print(steps(path))


if __name__ == "__main__":
    main()
