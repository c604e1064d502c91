"""Shared test fixtures.

`host_env` gives a test its own roots, names, cgroup parent, bridge and pod
subnet, and after the test checks that nothing it made is left on the host:
no mount, network namespace, link, iptables rule, cgroup or process.
Fixtures that start runtimes or servers depend on it, so they are torn down
before the check runs.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from bench.hostnet import claim_subnet
from tests.etcd_server import EtcdServer

SUBNET_LOCK_DIR = Path(tempfile.gettempdir()) / "podbay-test-subnets"
# The service proxy's default chain prefix (kube-proxy's): a chain of it, or a rule naming one,
# in iptables-save's output. No test may run a proxy with it: its rules would be the host's.
_DEFAULT_PROXY_CHAIN = re.compile(r"(?:^:|\s)KUBE-")

# No test may send a DNS query off the machine: every podbay a test starts (in process, as a child,
# through scripts/cluster-demo.sh) serves cluster DNS without upstream resolvers.
os.environ["PODBAY_CLUSTER_DNS_UPSTREAMS"] = ""
# Nor boot a gVisor kernel it never uses (the tests of the warm gVisor pool ask for one).
os.environ["PODBAY_WARM_GVISOR_SANDBOXES"] = "0"


@dataclass(frozen=True)
class HostEnv:
    """Everything a test may create on the host is named or rooted here."""

    prefix: str  # short and unique: fits a 15-character interface name
    state_root: Path  # the test's /var/lib/podbay
    run_root: Path  # the test's /run/podbay
    cgroup_parent: str  # parent cgroup of every pod cgroup the test makes
    bridge: str
    network_name: str
    subnet: str  # a /24 no other running test uses


@dataclass(frozen=True)
class Leftovers:
    mounts: frozenset[str]
    links: frozenset[str]
    netns: frozenset[str]
    iptables: frozenset[str]
    default_proxy_rules: frozenset[str]  # KUBE-... chains and jumps that were not there before the test
    cgroups: frozenset[str]
    processes: frozenset[str]

    def empty(self) -> bool:
        return not any(vars(self).values())


def _claim_subnet() -> tuple[str, int]:
    """A /24 under 10.123.0.0/16 (the benches claim /16s above it), held until the fd closes."""
    return claim_subnet(((f"10.123.{n}.0/24", f"{n}.lock") for n in range(256)), SUBNET_LOCK_DIR)


def _iptables_save() -> dict[str, list[str]]:
    """The nat and filter tables' rules, as iptables-save prints them."""
    if not shutil.which("iptables-save"):
        return {}
    return {table: subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout.splitlines()
            for table in ("nat", "filter")}


def _default_proxy_rules(saved: dict[str, list[str]]) -> frozenset[str]:
    """The rules and chains of the default proxy prefix, by table (a chain by its name alone: its
    policy and counters change with traffic)."""
    return frozenset(f"{table} {ln.split()[0] if ln.startswith(':') else ln}" for table, lines in saved.items()
                     for ln in lines if _DEFAULT_PROXY_CHAIN.search(ln))


def _leftovers(env: HostEnv, default_proxy_rules_before: frozenset[str]) -> Leftovers:
    roots = (str(env.state_root), str(env.run_root))

    def mine(text: str) -> bool:
        return env.prefix in text or any(r in text for r in roots)

    mounts = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if mine(point):
            mounts.add(point)

    links = set()
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if env.prefix in name or f"master {env.bridge} " in line:
            links.add(name)

    netns = {p.name for p in Path("/run/netns").glob("*") if env.prefix in p.name} if Path("/run/netns").is_dir() else set()

    saved = _iptables_save()
    rules = {ln for lines in saved.values() for ln in lines if env.network_name in ln or env.subnet in ln}
    # sessionAffinity's `recent` lists are named for the proxy's chains (the kernel drops a list
    # with the last rule using it).
    recent = Path("/proc/net/xt_recent")
    rules |= {f"xt_recent {p.name}" for p in recent.glob(f"{env.network_name}-*")} if recent.is_dir() else set()

    cgroups = set()
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        candidate = hierarchy / env.cgroup_parent.strip("/")
        if candidate.exists():
            cgroups.add(str(candidate))

    procs = set()
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = (proc / "cgroup").read_text()
        except OSError:
            continue
        if mine(cmdline) or env.cgroup_parent in cgroup:
            procs.add(f"{proc.name}: {cmdline.strip()}")

    default_proxy = _default_proxy_rules(saved) - default_proxy_rules_before
    return Leftovers(*(frozenset(s) for s in (mounts, links, netns, rules, default_proxy, cgroups, procs)))


@contextlib.contextmanager
def claimed_env() -> Iterator[HostEnv]:
    """A HostEnv of its own, checked for leftovers when the block ends."""
    prefix = "pbt" + secrets.token_hex(3)
    subnet, lock_fd = _claim_subnet()
    base = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    env = HostEnv(
        prefix=prefix,
        state_root=base / "lib",
        run_root=base / "run",
        cgroup_parent=f"podbay-{prefix}",
        bridge=f"{prefix}br",
        network_name=f"{prefix}net",
        subnet=subnet,
    )
    env.state_root.mkdir()
    env.run_root.mkdir()
    # Another test's default-prefix rules count too: they name no test, so whichever test sees
    # them appear reports them (the host had none of its own, or they were there before).
    default_proxy_before = _default_proxy_rules(_iptables_save())
    try:
        yield env
        left = _leftovers(env, default_proxy_before)
        assert left.empty(), f"test left things behind on the host: {left}"
    finally:
        shutil.rmtree(base, ignore_errors=True)
        os.close(lock_fd)


@pytest.fixture
def host_env() -> Iterator[HostEnv]:
    with claimed_env() as env:
        yield env


@pytest.fixture
def second_host_env() -> Iterator[HostEnv]:
    """For tests with two nodes on this machine: other roots, names and subnet."""
    with claimed_env() as env:
        yield env


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: runs real containers")


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    """A real etcd of the test's own, its data under the test's tmp dir."""
    server = EtcdServer(tmp_path / "etcd")
    try:
        yield server
    finally:
        server.stop()
