"""podbay get with kubectl's printing flags, against a running server and real pods."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.podbay_cli import podbay_cli, wait_until
from tests.conftest import HostEnv, require_root

pytestmark = pytest.mark.e2e

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: zeta, labels: {app: web, tier: front}}
spec:
  terminationGracePeriodSeconds: 0
  activeDeadlineSeconds: 9000
  containers: [{name: main, image: busybox:1.35, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: alpha}
spec:
  terminationGracePeriodSeconds: 0
  activeDeadlineSeconds: 10000
  containers: [{name: main, image: busybox:1.35, command: [sleep, "3600"]}]
"""


def test_get_jsonpath_custom_columns_sort_labels_no_headers(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(PODS)
    assert "podbay is up" in podbay("up").stdout
    try:
        podbay("apply", "-f", str(manifest))
        wait_until(lambda: podbay("get", "pods", "-o", "jsonpath={.items[*].status.phase}").stdout
                   == "Running Running")

        names = podbay("get", "pods", "-o", 'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}').stdout
        assert names == "alpha\nzeta\n"
        assert podbay("get", "pod", "zeta", "-o", "jsonpath={.metadata.labels.app}").stdout == "web"

        columns = podbay("get", "pods", "-o", "custom-columns=NAME:.metadata.name,APP:.metadata.labels.app",
                         "--sort-by", ".spec.activeDeadlineSeconds").stdout.splitlines()  # 9000 < 10000
        assert [line.split() for line in columns] == [["NAME", "APP"], ["zeta", "web"], ["alpha", "<none>"]]

        labelled = podbay("get", "pods", "--show-labels", "--no-headers").stdout.splitlines()
        assert [line.split()[0] for line in labelled] == ["alpha", "zeta"]
        assert labelled[0].split()[-1] == "<none>" and labelled[1].split()[-1] == "app=web,tier=front"

        sorted_desc = podbay("get", "pods", "--sort-by", "{.metadata.name}", "--no-headers",
                             "-o", "custom-columns=N:.metadata.name").stdout.split()
        assert sorted_desc == ["alpha", "zeta"]

        bad = podbay("get", "pods", "-o", "jsonpath={.items[", check=False)
        assert bad.returncode == 2 and "error parsing jsonpath" in bad.stderr
        unknown = podbay("get", "pods", "-o", "yml", check=False)
        assert unknown.returncode == 2 and "unable to match a printer" in unknown.stderr
    finally:
        podbay("down", "--purge")
