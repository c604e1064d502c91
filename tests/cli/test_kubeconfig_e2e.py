"""`podbay up` serves HTTPS and writes the admin kubeconfig; `podbay kubeconfig` prints it;
every kubectl found here and the official Python client use it with no other flag."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.cli.podbay_cli import podbay_cli
from tests.conftest import HostEnv, claimed_env, require_root

pytestmark = pytest.mark.e2e

KUBECTLS = ["/usr/bin/kubectl", *(f"/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}" for minor in range(27, 34))]
Podbay = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def up() -> Iterator[tuple[HostEnv, Podbay]]:
    require_root()
    with claimed_env() as env:
        podbay = podbay_cli(env)
        out = podbay("up").stdout
        try:
            assert f"export KUBECONFIG={env.state_root / 'kubeconfig'}" in out
            yield env, podbay
        finally:
            podbay("down", "--purge")


def test_podbay_kubeconfig_prints_the_private_file_up_wrote(up: tuple[HostEnv, Podbay], tmp_path: Path) -> None:
    env, podbay = up
    written = env.state_root / "kubeconfig"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE((env.state_root / "pki").stat().st_mode) == 0o700
    for key in (env.state_root / "pki").glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    printed = podbay("kubeconfig").stdout
    assert printed == written.read_text()
    config = yaml.safe_load(printed)
    assert config["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert {"client-certificate-data", "client-key-data"} <= set(config["users"][0]["user"])
    copy = tmp_path / "kubeconfig"
    copy.write_text(printed)
    k8s_config.load_kube_config(str(copy))
    core = k8s.CoreV1Api()
    try:
        assert "default" in {n.metadata.name for n in core.list_namespace().items}
    finally:
        core.api_client.close()


def test_podbay_kubeconfig_says_when_the_server_never_started(host_env: HostEnv) -> None:
    proc = podbay_cli(host_env)("kubeconfig", check=False)
    assert proc.returncode == 1 and f"no kubeconfig at {host_env.state_root / 'kubeconfig'}" in proc.stderr


def test_the_cli_reaches_an_https_server_with_the_kubeconfig(up: tuple[HostEnv, Podbay]) -> None:
    env, podbay = up
    server = yaml.safe_load((env.state_root / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
    proc = podbay("--server", server, "get", "pods", check=False)
    assert proc.returncode == 1 and "needs credentials: pass --kubeconfig PATH or set KUBECONFIG" in proc.stderr
    proc = podbay("--server", server, "--kubeconfig", str(env.state_root / "kubeconfig"), "get", "pods", "-A",
                  check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kubectl", KUBECTLS, ids=lambda p: Path(p).name)
def test_kubectl_with_the_default_kubeconfig(up: tuple[HostEnv, Podbay], kubectl: str, tmp_path: Path) -> None:
    if not os.access(kubectl, os.X_OK):
        pytest.skip(f"{kubectl} is not installed on this machine")
    env, _ = up
    name = "k-" + Path(kubectl).name.replace(".", "-")
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n"
                        "  terminationGracePeriodSeconds: 0\n"
                        "  containers: [{name: c, image: busybox:1.35, command: [sleep, '600']}]\n")
    environ = {**os.environ, "KUBECONFIG": str(env.state_root / "kubeconfig")}

    def run(*args: str) -> str:
        proc = subprocess.run([kubectl, *args], capture_output=True, text=True, env=environ, timeout=60)
        assert proc.returncode == 0, f"{kubectl} {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    # podbay serves no OpenAPI document for kubectl's client-side schema check.
    assert run("create", "--validate=false", "-f", str(manifest)).strip() == f"pod/{name} created"
    assert name in run("get", "pods")
    pod = yaml.safe_load(run("get", "pod", name, "-o", "yaml"))
    assert pod["metadata"]["name"] == name and pod["kind"] == "Pod"
    assert json.loads(run("get", "pod", name, "-o", "json"))["spec"]["containers"][0]["image"] == "busybox:1.35"
    run("delete", "pod", name, "--wait=false")


def test_the_running_server_serves_tls_without_the_cryptography_package(up: tuple[HostEnv, Podbay]) -> None:
    """The certificates are made by a short-lived child: the server that answers HTTPS (the tests
    above) has Python's ssl loaded and none of cryptography's ~10 MiB mapped."""
    env, _ = up
    pid = int((env.run_root / "podbay.pid").read_text())
    mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
              if len(line.split()) == 6}
    assert any("/_ssl." in path for path in mapped)
    assert not [path for path in mapped if "/cryptography/" in path]
