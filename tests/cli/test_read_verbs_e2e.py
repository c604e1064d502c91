"""The read-only verbs on their lean path (podbay.client.rest, the server's Tables) print what the
async client and the models printed, byte for byte but for ages, for each verb and flag, and
fail with the same messages and exit codes; against a running server with real pods."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import yaml

from podbay.api import Event, Pod
from podbay.api.serialize import from_dict, to_dict
from podbay.cli.common import run_with_client
from podbay.cli.describe import describe_pod
from podbay.cli.main import build_parser
from podbay.client.rest import RESTClient
from tests.cli.model_printer import get_with_models
from tests.cli.podbay_cli import podbay_cli, wait_until
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: main, image: busybox:1.35, command: [sh, -c, "echo one; echo two; exec sleep 3600"]}
  - {name: side, image: busybox:1.35, command: [sh, -c, "echo side; exec sleep 3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: alpha}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: main, image: busybox:1.35, command: [sleep, "3600"]}]
"""

GETS = [
    ["get", "pods"], ["get", "pods", "-o", "wide"], ["get", "po", "web"], ["get", "pod/web", "alpha"],
    ["get", "pods", "-A"], ["get", "pods", "--show-labels", "--no-headers"], ["get", "pods", "-l", "app=web"],
    ["get", "pods", "-o", "name"], ["get", "nodes", "-o", "wide"], ["get", "ns"], ["get", "events"],
    ["get", "leases", "-A"], ["get", "svc", "-A", "-o", "yaml"], ["get", "ns", "-o", "json"], ["get", "pods", "-o", "json"],
    ["get", "pod", "web", "-o", "yaml"], ["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
    ["get", "pods", "-o", "custom-columns=NAME:.metadata.name,IP:.status.podIP"],
    ["get", "pods", "--sort-by", ".metadata.name", "-o", "wide"], ["get", "configmaps"], ["get", "deploy"],
    ["get", "pods", "nosuch"], ["get", "foos"], ["get", "pods", "-n", "empty"],
]
_AGE = re.compile(r"\b\d+[smhd](\d+[smhd])?\b")


def _same_but_ages(text: str) -> str:
    return re.sub(r" +", " ", _AGE.sub("AGE", text))


def _before(flags: list[str], argv: list[str]) -> tuple[int, str, str]:
    """What the async client and the models print for `argv` (the path every get took before)."""
    args = build_parser().parse_args([*flags, *argv])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_with_client(args, lambda c, s: get_with_models(c, args))
    return code, out.getvalue(), err.getvalue()


def test_the_lean_read_path_prints_what_the_models_printed(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(PODS)
    assert "podbay is up" in podbay("up").stdout
    flags = ["--state-root", str(host_env.state_root), "--run-root", str(host_env.run_root)]
    try:
        podbay("apply", "-f", str(manifest))
        wait_until(lambda: podbay("get", "pods", "-o", "jsonpath={.items[*].status.phase}").stdout
                   == "Running Running")
        for argv in GETS:
            for _ in range(3):  # a second may pass between the two, and the ages with it
                proc = podbay(*argv, check=False)
                code, out, err = _before(flags, argv)
                if (proc.returncode, _same_but_ages(proc.stdout), proc.stderr) == (code, _same_but_ages(out), err):
                    break
            else:
                assert (proc.returncode, proc.stdout, proc.stderr) == (code, out, err), argv

        assert podbay("logs", "web", "-c", "main").stdout == "one\ntwo\n"
        both = podbay("logs", "web")
        assert both.stdout == "one\ntwo\n" and 'Defaulted container "main" out of: main, side' in both.stderr
        assert podbay("logs", "web", "-c", "main", "--tail", "1").stdout == "two\n"
        missing = podbay("logs", "nosuch", check=False)
        assert (missing.returncode, missing.stderr) == (1, 'Error from server (NotFound): pods "nosuch" not found\n')
        described = podbay("describe", "pod", "web").stdout
        assert described.startswith("Name:             web\nNamespace:        default\n")
        # The same text from the objects as the models read them (their defaults filled in).
        rest = RESTClient.connect(f"unix://{host_env.run_root / 'api.sock'}")
        pod = rest.get("/api/v1/namespaces/default/pods/web")
        events = rest.get("/api/v1/namespaces/default/events", {"fieldSelector": "involvedObject.name=web"})["items"]
        modelled = describe_pod(to_dict(from_dict(Pod, pod)), [to_dict(from_dict(Event, e)) for e in events])
        assert _same_but_ages(described) == _same_but_ages(modelled + "\n")
        assert "State:         Running" in described and "Events:\n  Type" in described
    finally:
        podbay("down", "--purge", check=False)


def test_https_errors_give_the_same_messages_and_exit_codes(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    up = podbay("up").stdout
    port = re.search(r"https://127\.0\.0\.1:(\d+)", up)
    assert port is not None, up
    kubeconfig = host_env.state_root / "kubeconfig"
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"][0]["user"] = {"token": "not-a-token"}
    stranger = tmp_path / "stranger"
    stranger.write_text(yaml.safe_dump(config))
    flags = ["--state-root", str(host_env.state_root), "--run-root", str(host_env.run_root)]
    closed = free_port()
    try:
        for argv in (["--server", f"https://127.0.0.1:{port[1]}", "--kubeconfig", str(kubeconfig), "get", "pods", "nosuch"],
                     ["--server", f"https://127.0.0.1:{port[1]}", "--kubeconfig", str(stranger), "get", "pods"],
                     ["--server", f"https://127.0.0.1:{closed}", "--kubeconfig", str(kubeconfig), "get", "pods"],
                     ["--server", f"https://127.0.0.1:{port[1]}", "get", "pods"]):
            proc = podbay(*argv, check=False)
            assert (proc.returncode, proc.stdout, proc.stderr) == _before(flags, argv), argv
        assert "Error from server (Unauthorized)" in podbay("--server", f"https://127.0.0.1:{port[1]}", "--kubeconfig",
                                                            str(stranger), "get", "pods", check=False).stderr
    finally:
        podbay("down", "--purge", check=False)
