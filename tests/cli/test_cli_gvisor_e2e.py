"""gVisor pods from the command line, as a user runs `podbay`: the default RuntimeClass, a pod's
log from inside its own kernel, HyperContainer's stop and start, and replace refused across
RuntimeClasses."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.podbay_cli import podbay_cli, wait_until
from tests.conftest import HostEnv, require_root

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("runsc") is None, reason="runsc is not installed (scripts/setup.sh)")]


def test_gvisor_pods_from_the_command_line(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)

    def status(name: str) -> str:
        return podbay("get", "pod", name).stdout.splitlines()[1].split()[2]

    podbay("up")
    try:
        header, row = podbay("get", "runtimeclasses").stdout.splitlines()
        assert header.split() == ["NAME", "HANDLER", "AGE"] and row.split()[:2] == ["gvisor", "runsc"]
        for name, extra in (("gv", "  runtimeClassName: gvisor\n"), ("plain", "")):
            (tmp_path / f"{name}.yaml").write_text(
                f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}"
                "  terminationGracePeriodSeconds: 1\n"
                "  containers: [{name: c, image: busybox:1.35, command: [sh, -c, \"uname -r; trap 'exit 0' TERM; "
                "sleep 600 & wait\"]}]\n")
            podbay("create", "-p", str(tmp_path / f"{name}.yaml"))
        podbay("start", "gv")
        wait_until(lambda: status("gv") == "Running")
        wait_until(lambda: podbay("logs", "gv").stdout == "4.4.0\n")
        pod = json.loads(podbay("get", "pod", "gv", "-o", "json").stdout)
        assert pod["spec"]["runtimeClassName"] == "gvisor"

        proc = podbay("replace", "-o", "gv", "-n", "plain", check=False)
        assert proc.returncode == 1 and "changes hands only within one RuntimeClass" in proc.stderr

        assert podbay("stop", "gv").stdout.strip() == "pod/gv stopped"
        wait_until(lambda: status("gv") == "Created")
        podbay("start", "gv")
        wait_until(lambda: status("gv") == "Running")
        assert podbay("rm", "gv", "plain").stdout.split() == ["pod/gv", "removed", "pod/plain", "removed"]

        # `podbay run --runtime-class` names the class; describe shows it as kubectl describe does.
        assert podbay("run", "--runtime-class", "gvisor", "--name", "rc", "busybox:1.35", "--",
                      "uname", "-r").stdout.strip() == "pod/rc created"
        wait_until(lambda: status("rc") == "Completed")
        assert podbay("logs", "rc").stdout == "4.4.0\n"
        assert "Runtime Class Name:  gvisor" in podbay("describe", "pod", "rc").stdout.splitlines()
        proc = podbay("run", "--runtime-class", "nosuch", "busybox:1.35", "--", "true", check=False)
        assert proc.returncode == 1 and 'pod rejected: RuntimeClass "nosuch" not found' in proc.stderr
    finally:
        podbay("down", "--purge")
