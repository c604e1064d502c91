"""kubectl top pod / node over metrics.k8s.io: CPU as the rate between the agent's last two
samples of the container's cgroup, memory as its working set; kubectl makes the tables."""
from __future__ import annotations

import re

from podbay.api.formats import load_pods
from tests.kubectl.conftest import Kubectl, Result

BUSY_POD = """
apiVersion: v1
kind: Pod
metadata: {name: busy, labels: {app: top}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: spin, image: "busybox:1.35", command: [sh, -c, "while :; do :; done"]}
  - {name: idle, image: "busybox:1.35", command: [sleep, "3600"]}
"""


def _ok(result: Result) -> bool:
    return result.code == 0


async def test_kubectl_top_pod_and_node_print_usage(kubectl: Kubectl) -> None:
    await kubectl.cluster.client.create(load_pods(BUSY_POD)[0])
    await kubectl.cluster.wait_for("busy", lambda p: p.status.phase == "Running")

    pods = await kubectl.until("top", "pod", check=_ok)
    assert pods.out.split("\n")[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"], pods.out
    row = re.search(r"^busy\s+(\d+)m\s+(\d+)Mi\s*$", pods.out, re.M)
    assert row is not None, pods.out
    assert int(row.group(1)) > 100, pods.out  # one container spins a core

    containers = await kubectl.until("top", "pod", "busy", "--containers", check=_ok)
    assert re.search(r"^busy\s+spin\s+\d+m\s+\d+Mi\s*$", containers.out, re.M), containers.out
    assert re.search(r"^busy\s+idle\s+\d+m\s+\d+Mi\s*$", containers.out, re.M), containers.out

    selected = await kubectl("top", "pod", "-l", "app=other")
    assert "busy" not in selected.out

    node = kubectl.cluster.settings.node_name
    nodes = await kubectl.until("top", "node", check=_ok)
    assert re.search(rf"^{node}\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%\s*$", nodes.out, re.M), nodes.out

    missing = await kubectl("top", "pod", "nope")
    assert missing.code != 0 and "nope" in missing.err
