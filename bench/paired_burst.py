"""Two trees' bursts side by side, for a change too small to see across separate runs on a shared
machine whose speed drifts (issue #19 target 2):

    sudo .venv/bin/python -m bench.paired_burst --base DIR [--pods 50] [--pairs 6]

DIR is another checkout (`git worktree add` or `git archive | tar -x`). Both trees' servers run at
once on private roots; after a warm-up burst each, bursts of `--pods` pods alternate between them,
the order flipped every pair, so a slow minute of the machine falls on both. Per tree: the median
pods/s and the event loop's and the whole server's CPU per pod (from /proc, robust to load), and
how many pairs this tree won.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from bench.burst_profile import burst, cpu_seconds, delete
from bench.podbay_side import ROOT, PodbayServer


async def measured_burst(server: PodbayServer, names: set[str]) -> tuple[float, float, float]:
    """pods/s, loop CPU ms/pod, process CPU ms/pod of one burst; its pods deleted after."""
    pid = server.server_pid()
    before = cpu_seconds(pid)
    took = await burst(server, names)
    after = cpu_seconds(pid)
    await delete(server, names)
    n = len(names)
    return n / took, (after[0] - before[0]) * 1000 / n, (after[1] - before[1]) * 1000 / n


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True, help="the other tree's checkout")
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "this": ROOT}
    servers: dict[str, PodbayServer] = {}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    try:
        for name, tree in trees.items():
            servers[name] = PodbayServer(tree=tree)
            warm = {f"warm-{i}" for i in range(args.pods)}
            await burst(servers[name], warm)
            await delete(servers[name], warm)
        for pair in range(args.pairs):
            order = ("base", "this") if pair % 2 == 0 else ("this", "base")
            for name in order:
                result = await measured_burst(servers[name], {f"p{pair}-{i}" for i in range(args.pods)})
                results[name].append(result)
                print(f"pair {pair} {name}: {result[0]:.1f} pods/s, loop {result[1]:.1f} ms/pod, "
                      f"process {result[2]:.1f} ms/pod", flush=True)
    finally:
        for server in servers.values():
            await server.close()
    wins = sum(t[0] > b[0] for t, b in zip(results["this"], results["base"]))
    for name in trees:
        rate, loop, process = (statistics.median(r[i] for r in results[name]) for i in range(3))
        print(f"{name:5} median {rate:.1f} pods/s, loop {loop:.1f} ms/pod, process {process:.1f} ms/pod")
    print(f"this tree faster in {wins} of {len(results['this'])} pairs")


if __name__ == "__main__":
    asyncio.run(main())
