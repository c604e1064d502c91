"""The names and subnet a bench run makes on the host (bridge, CNI network, cgroup parent, pod
subnet), its own: two runs at once, or a run beside the tests, never share a bridge or routes."""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from podbay.runtime.config import RuntimeConfig

BENCH_SUBNET_LOCK_DIR = Path(tempfile.gettempdir()) / "podbay-bench-subnets"
# /16s, as a burst of hundreds of pods needs. Not the tests' (their pods' /24s under 10.123.0.0/16,
# their Services' under 10.127.0.0/16), nor the default cluster CIDR 10.244.0.0/16.
BENCH_SUBNETS = [(f"10.{n}.0.0/16", f"10.{n}.lock") for n in range(128, 244)]


def routed_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    nets = []
    for line in out.splitlines():
        with contextlib.suppress(ValueError, IndexError):
            first = line.split()[0]
            nets.append(ipaddress.IPv4Network("0.0.0.0/0" if first == "default" else first, strict=False))
    return [n for n in nets if n.prefixlen > 0]


def claim_subnet(candidates: Iterable[tuple[str, str]], lock_dir: Path) -> tuple[str, int]:
    """The first of `candidates` (subnet, its lock file's name) the host routes none of and no
    other process holds, with the descriptor of its lock file (held until closed): a subnet a
    crashed run left routed is skipped, not shared."""
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    routed = routed_networks()
    for subnet, lock_name in candidates:
        net = ipaddress.IPv4Network(subnet)
        if any(net.overlaps(r) for r in routed):
            continue
        fd = os.open(lock_dir / lock_name, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return subnet, fd
    raise RuntimeError("no free subnet")


@dataclass(frozen=True)
class BenchHost:
    prefix: str  # short and unique: "<prefix>br" fits a 15-character interface name
    subnet: str

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def network(self) -> str:
        return f"{self.prefix}net"

    @property
    def cgroup_parent(self) -> str:
        return f"podbay-{self.prefix}"

    def runtime_config(self, base: Path, **settings: Any) -> RuntimeConfig:
        """A runtime on roots under `base` with this run's names and subnet."""
        return RuntimeConfig(state_root=base / "lib", run_root=base / "run", cgroup_parent=self.cgroup_parent,
                             network_name=self.network, bridge=self.bridge, subnet=self.subnet, **settings)

    def flags(self) -> list[str]:
        """As `podbay up` and `podbay agent` take them."""
        return ["--cgroup-parent", self.cgroup_parent, "--network", self.network, "--bridge", self.bridge,
                "--subnet", self.subnet, "--proxy-chain-prefix", self.network]


@contextlib.contextmanager
def claimed_host() -> Iterator[BenchHost]:
    """A BenchHost of this run's own, its subnet held until the block ends."""
    subnet, fd = claim_subnet(BENCH_SUBNETS, BENCH_SUBNET_LOCK_DIR)
    try:
        yield BenchHost(prefix="pbb" + secrets.token_hex(3), subnet=subnet)
    finally:
        os.close(fd)
