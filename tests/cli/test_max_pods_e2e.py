"""`podbay up --max-pods`: the Node's pods capacity, which the scheduler keeps to."""
from __future__ import annotations

import json
from pathlib import Path

from tests.cli.podbay_cli import podbay_cli, wait_until
from tests.conftest import HostEnv, require_root


def test_the_node_holds_max_pods_and_the_next_pod_stays_pending(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    podbay("--max-pods", "1", "up")
    try:
        node = json.loads(podbay("get", "node", f"node-{host_env.prefix}", "-o", "json").stdout)
        assert node["status"]["capacity"]["pods"] == "1" and node["status"]["allocatable"]["pods"] == "1"
        podbay("run", "--name", "first", "busybox:1.35", "--", "sleep", "600")
        wait_until(lambda: json.loads(podbay("get", "pod", "first", "-o", "json").stdout)["spec"].get("nodeName"))
        podbay("run", "--name", "second", "busybox:1.35", "--", "sleep", "600")

        def unschedulable() -> bool:
            pod = json.loads(podbay("get", "pod", "second", "-o", "json").stdout)
            return any(c["type"] == "PodScheduled" and c["status"] == "False" and "Too many pods" in c.get("message", "")
                       for c in pod["status"].get("conditions", []))
        wait_until(unschedulable)
    finally:
        podbay("down", "--purge")
