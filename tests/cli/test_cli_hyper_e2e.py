"""The HyperContainer verbs and the rest of the command, each a separate `podbay` process as a
user runs them: run IMAGE, stop, start, create -p, replace, kubeconfig, validate, and the
errors for a missing pod."""
from __future__ import annotations

import json
from pathlib import Path

import kubernetes
import pytest

from tests.cli.podbay_cli import ROOT, podbay_cli, wait_until
from tests.conftest import HostEnv, require_root

pytestmark = pytest.mark.e2e


def test_hyper_verbs_and_kubeconfig_from_the_command_line(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)

    def pod(name: str) -> dict:
        return json.loads(podbay("get", "pod", name, "-o", "json").stdout)

    def status(name: str) -> str:
        return podbay("get", "pod", name).stdout.splitlines()[1].split()[2]

    validated = podbay("validate", str(ROOT / "examples/web-pod.yaml")).stdout
    assert "restartPolicy: Always" in validated and "terminationMessagePath: /dev/termination-log" in validated

    up = podbay("up").stdout
    assert "podbay is up" in up and f"export KUBECONFIG={host_env.state_root / 'kubeconfig'}" in up
    try:
        # A shell as PID 1 ignores SIGTERM unless it traps it; this one ends at once when stopped.
        assert podbay("run", "--name", "first", "busybox:1.35", "sh", "-c",
                      "trap 'exit 0' TERM; echo hi; sleep 600 & wait").stdout.strip() == "pod/first created"
        wait_until(lambda: status("first") == "Running")
        assert podbay("logs", "first").stdout == "hi\n"

        assert podbay("stop", "first").stdout.strip() == "pod/first stopped"
        wait_until(lambda: status("first") == "Created")
        podbay("start", "first")
        wait_until(lambda: status("first") == "Running")
        ip = pod("first")["status"]["podIP"]

        second = tmp_path / "second.yaml"
        second.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: second}\nspec:\n"
                          "  terminationGracePeriodSeconds: 1\n"
                          "  containers: [{name: c, image: busybox:1.35, command: [sleep, '600']}]\n")
        podbay("create", "-p", str(second))
        wait_until(lambda: status("second") == "Created")
        assert podbay("replace", "-o", "first", "-n", "second").stdout.strip() == "pod/second replaces pod/first"
        wait_until(lambda: status("second") == "Running" and status("first") == "Created")
        assert pod("second")["status"]["podIP"] == ip

        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(podbay("kubeconfig").stdout)
        api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(kubeconfig)))
        assert sorted(p.metadata.name for p in api.list_namespaced_pod("default").items) == ["first", "second"]

        proc = podbay("replace", "-o", "first", "-n", "second", check=False)
        assert proc.returncode == 1 and "pod/first is not running" in proc.stderr
        proc = podbay("get", "pod", "missing", check=False)
        assert proc.returncode == 1 and 'pods "missing" not found' in proc.stderr
        proc = podbay("start", "missing", check=False)
        assert proc.returncode == 1 and 'pods "missing" not found' in proc.stderr

        assert podbay("rm", "first", "second").stdout.split() == ["pod/first", "removed", "pod/second", "removed"]
        assert "No resources found" in podbay("get", "pods").stderr
    finally:
        podbay("down", "--purge")
