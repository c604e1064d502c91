"""Times CNI attach and detach of fresh network namespaces on a scratch network.

Run as root: .venv/bin/python -m bench.network_attach [--rounds N] [--firewall]
Uses a bridge, network, subnet and hostPort of this run's own (bench/hostnet.py) and removes
them after, so runs may overlap.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.hostnet import BenchHost, claimed_host
from podbay.runtime.network import NetworkConfig, PodNetwork, PortMapping, default_conflist
from tests.e2e.conftest import free_port


async def main(rounds: int, firewall: bool, ports: bool, ipmasq: bool = True) -> None:
    with claimed_host() as host:
        await _run(rounds, firewall, ports, ipmasq, host)


async def _run(rounds: int, firewall: bool, ports: bool, ipmasq: bool, host: BenchHost) -> None:
    with tempfile.TemporaryDirectory(prefix="pbbench-") as tmp:
        config = NetworkConfig(name=host.network, bridge=host.bridge, subnet=host.subnet,
                               conf_dir=Path(tmp) / "net.d", cache_dir=Path(tmp) / "cni")
        network = PodNetwork(config)
        if firewall or not ipmasq:
            conflist = default_conflist(config)
            conflist["plugins"][0]["ipMasq"] = ipmasq
            if firewall:
                conflist["plugins"].append({"type": "firewall", "backend": "iptables"})
            config.conf_dir.mkdir()
            network.conflist_path().write_text(json.dumps(conflist))
        mappings = [PortMapping(host_port=free_port(), container_port=80, host_ip="127.0.0.1")] if ports else []
        attach, detach = [], []
        try:
            for n in range(rounds):
                name = f"{host.prefix}-{n}"
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
