"""A real CNI network on the test's bridge and subnet, and network namespaces to attach."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import pytest

from podbay.runtime.network import NetworkConfig, PodNetwork
from tests.conftest import HostEnv, require_root


def network_config(env: HostEnv) -> NetworkConfig:
    return NetworkConfig(name=env.network_name, bridge=env.bridge, subnet=env.subnet,
                         conf_dir=env.state_root / "net.d", cache_dir=env.state_root / "cni")


@pytest.fixture
async def pod_network(host_env: HostEnv) -> AsyncIterator[PodNetwork]:
    require_root()
    network = PodNetwork(network_config(host_env))
    try:
        yield network
    finally:
        # A test that failed part-way still leaves no IP, rule or bridge behind.
        results = network.config.cache_dir / "results"
        for cached in results.glob(f"{network.config.name}-*.json") if results.is_dir() else ():
            await network.detach(cached.stem.removeprefix(f"{network.config.name}-"), None)
        await network.shutdown()


@pytest.fixture
def make_netns(host_env: HostEnv) -> Iterator[Callable[[str], Path]]:
    """Makes /run/netns/<prefix><suffix>; all are deleted (if still there) after the test."""
    made: list[str] = []

    def make(suffix: str) -> Path:
        name = f"{host_env.prefix}{suffix}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        return Path("/run/netns") / name

    yield make
    for name in made:
        if (Path("/run/netns") / name).exists():
            subprocess.run(["ip", "netns", "del", name], check=True)


def in_netns(netns: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns.name, *command], capture_output=True, text=True)


def links_in(netns: Path) -> dict[str, dict]:
    out = in_netns(netns, "ip", "-j", "addr", "show").stdout
    return {link["ifname"]: link for link in json.loads(out)}
