"""Times CNI attach and detach of fresh network namespaces on a scratch network.

Run as root: .venv/bin/python -m bench.network_attach [--rounds N] [--firewall]
Uses its own bridge (pbbench0), network and subnet (10.123.254.0/24) and removes them after;
one run at a time (a lock in /tmp), as two would share the bridge.
"""
from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from podbay.runtime.network import NetworkConfig, PodNetwork, PortMapping, default_conflist


async def main(rounds: int, firewall: bool, ports: bool, ipmasq: bool = True) -> None:
    with open(Path(tempfile.gettempdir()) / "podbay-bench-network.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit("another bench.network_attach is running") from None
        await _run(rounds, firewall, ports, ipmasq)


async def _run(rounds: int, firewall: bool, ports: bool, ipmasq: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="pbbench-") as tmp:
        config = NetworkConfig(name="pbbenchnet", bridge="pbbench0", subnet="10.123.254.0/24",
                               conf_dir=Path(tmp) / "net.d", cache_dir=Path(tmp) / "cni")
        network = PodNetwork(config)
        if firewall or not ipmasq:
            conflist = default_conflist(config)
            conflist["plugins"][0]["ipMasq"] = ipmasq
            if firewall:
                conflist["plugins"].append({"type": "firewall", "backend": "iptables"})
            config.conf_dir.mkdir()
            network.conflist_path().write_text(json.dumps(conflist))
        mappings = [PortMapping(host_port=39080, container_port=80, host_ip="127.0.0.1")] if ports else []
        attach, detach = [], []
        try:
            for n in range(rounds):
                name = f"pbbench{n}"
                subprocess.run(["ip", "netns", "add", name], check=True)
                netns = Path("/run/netns") / name
                try:
                    t0 = time.perf_counter()
                    await network.attach(f"bench{n}", netns, port_mappings=mappings)
                    t1 = time.perf_counter()
                    await network.detach(f"bench{n}", netns, port_mappings=mappings)
                    t2 = time.perf_counter()
                finally:
                    subprocess.run(["ip", "netns", "del", name], check=True)
                if n:  # the first round also creates the bridge
                    attach.append((t1 - t0) * 1000)
                    detach.append((t2 - t1) * 1000)
        finally:
            await network.shutdown()
    print(f"firewall={firewall} ports={ports} ipMasq={ipmasq} rounds={len(attach)}: "
          f"attach median {statistics.median(attach):.1f} ms (min {min(attach):.1f}), "
          f"detach median {statistics.median(detach):.1f} ms (min {min(detach):.1f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--firewall", action="store_true", help="append the firewall plugin to the list")
    parser.add_argument("--ports", action="store_true", help="one hostPort mapping")
    parser.add_argument("--no-ipmasq", action="store_true", help="bridge without per-pod masquerade rules")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.firewall, args.ports, not args.no_ipmasq))
