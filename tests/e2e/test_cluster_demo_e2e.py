"""scripts/cluster-demo.sh as a user runs it: `up` shows web pods on three different nodes and a
page fetched across hosts by pod IP; `down` leaves nothing of it on the machine."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_root

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster-demo.sh"


def leftovers() -> list[str]:
    """What the demo makes outside its state: namespaces, links, the FORWARD rule, cgroups, processes."""
    found = [line for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
             if line.startswith("pbdemo-")]
    found += [line for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
              if "pbdemo" in line]
    found += [line for line in subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True,
                                              text=True).stdout.splitlines() if "podbay-cluster-demo" in line]
    # The nodes' cgroup parents, under each v1 hierarchy (or the v2 root).
    found += [str(p) for p in (*Path("/sys/fs/cgroup").glob("podbay-demo-h*"),
                               *Path("/sys/fs/cgroup").glob("*/podbay-demo-h*")) if p.is_dir()]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "podbay-cluster-demo" in cmdline or "demo-state" in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


def test_the_demo_runs_three_hosts_and_cleans_up(tmp_path: Path) -> None:
    require_root()
    if leftovers():
        pytest.skip("a cluster demo is already running on this machine")
    # PODBAY_CLUSTER_DNS_UPSTREAMS empty: the nodes' cluster DNS forwards nothing off the machine.
    env = {**os.environ, "DEMO_STATE": str(tmp_path / "demo-state"), "DEMO_RUN": str(tmp_path / "demo-run"),
           "PODBAY_CLUSTER_DNS_UPSTREAMS": ""}
    try:
        up = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, env=env, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        rows = {m.group(1): (m.group(2), m.group(3)) for m in
                re.finditer(r"^(web-\d)\s+1/1\s+Running\s+\d+\s+\S+\s+(10\.250\.\d+\.\d+)\s+(demo-h\d)", up.stdout, re.M)}
        assert {name: node for name, (_, node) in rows.items()} == \
            {"web-1": "demo-h1", "web-2": "demo-h2", "web-3": "demo-h3"}, up.stdout
        assert len({ip.split(".")[2] for ip, _ in rows.values()}) == 3  # three /24 podCIDRs
        assert "hello from web-1 on demo-h1" in up.stdout.split(f"fetches http://{rows['web-1'][0]}:8080/")[1]
    finally:
        down = subprocess.run([str(SCRIPT), "down"], capture_output=True, text=True, env=env, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers() == []
    assert not (tmp_path / "demo-state").exists() and not (tmp_path / "demo-run").exists()
