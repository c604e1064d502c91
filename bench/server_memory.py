"""The all-in-one server's resident memory with no pods, then with 50 and with 110 running
(the kubelet's default --max-pods), each once the burst's work is over:

    sudo .venv/bin/python -m bench.server_memory [--pods 50,110]

Prints RSS and PSS (MiB, /proc/PID/smaps_rollup) and, with the last count, the process's
anonymous and file-backed RSS and its threads. Its own bridge, network and subnet, so it can run
beside bench.run. See bench/README.md ("Issue #19 target 6").
"""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bench.memory import rss_pss_kib
from bench.podbay_side import PodbayServer
from bench.run import create_until_running, delete_all

SETTLE_SECONDS = 5.0  # the agent's status writes and the warm-sandbox refill follow the last start


def status_fields(pid: int, names: tuple[str, ...]) -> dict[str, str]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: fields[name].strip() for name in names}


def line(label: str, pid: int) -> str:
    rss, pss = rss_pss_kib(pid)
    return f"{label:>8}: RSS {rss / 1024:6.1f} MiB  PSS {pss / 1024:6.1f} MiB"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", default="50,110", help="running pod counts to measure at, ascending")
    args = parser.parse_args()
    counts = [int(n) for n in args.pods.split(",")]
    server = PodbayServer("--max-pods", str(max(110, *counts)))
    names: list[str] = []
    try:
        pid = server.server_pid()
        await asyncio.sleep(SETTLE_SECONDS)
        print(line("0 pods", pid), flush=True)
        for count in counts:
            more = [f"mem-{i:04d}" for i in range(len(names), count)]
            await create_until_running(server, more)
            names += more
            await asyncio.sleep(SETTLE_SECONDS)
            print(line(f"{count} pods", pid), flush=True)
        print("   " + ", ".join(f"{k} {v}" for k, v in status_fields(pid, ("RssAnon", "RssFile", "Threads")).items()))
        await delete_all(server, names)
    finally:
        await server.close()


if __name__ == "__main__":
    asyncio.run(main())
