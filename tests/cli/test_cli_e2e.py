"""The podbay command as a user runs it: up in the background, apply, get, describe, logs,
the Hyper verbs, delete, down --purge, each a separate process."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.podbay_cli import ROOT, podbay_cli, wait_until
from tests.conftest import HostEnv, require_root

pytestmark = pytest.mark.e2e


def test_no_server_says_how_to_start_one(host_env: HostEnv) -> None:
    podbay = podbay_cli(host_env)
    proc = podbay("get", "pods", check=False)
    assert proc.returncode == 1
    assert "podbay is not running" in proc.stderr and "podbay up" in proc.stderr


def test_up_apply_get_logs_delete_down(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    manifest = tmp_path / "job.yaml"
    manifest.write_text("""
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  restartPolicy: Never
  containers:
  - {name: say, image: busybox:1.35, command: [sh, -c, "echo hello from $(hostname)"]}
""")
    assert "podbay is up" in podbay("up").stdout
    try:
        assert podbay("apply", "-f", str(manifest)).stdout.strip() == "pod/hello created"
        assert podbay("apply", "-f", str(manifest)).stdout.strip() == "pod/hello unchanged"
        wait_until(lambda: "Completed" in podbay("get", "pods").stdout)
        table = podbay("get", "pods").stdout.splitlines()
        assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert table[1].split()[:4] == ["hello", "0/1", "Completed", "0"]
        assert podbay("logs", "hello").stdout == "hello from hello\n"
        assert "Successfully assigned default/hello" in podbay("describe", "pod", "hello").stdout
        assert podbay("get", "pod", "hello", "-o", "name").stdout.strip() == "pod/hello"

        bad = tmp_path / "bad.yaml"
        bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n"
                       "  - {name: Web, image: busybox}\n")
        proc = podbay("apply", "-f", str(bad), check=False)
        assert proc.returncode == 1
        assert 'spec.containers[0].name: Invalid value: "Web": must be a lowercase RFC 1123 label' in proc.stderr

        assert podbay("create", "-p", str(ROOT / "examples/hyper-pod.json")).stdout.strip() == "pod/hyper-web created"
        wait_until(lambda: "Created" in podbay("get", "pod", "hyper-web").stdout)
        podbay("start", "hyper-web")
        podbay("wait", "--for=condition=Ready", "pod/hyper-web", "--timeout=60s")
        assert podbay("exec", "hyper-web", "--", "sh", "-c", "hostname; echo $GREETING").stdout == "hyper-web\nhello\n"
        assert podbay("exec", "hyper-web", "--", "sh", "-c", "exit 4", check=False).returncode == 4
        assert podbay("rm", "hyper-web").stdout.strip() == "pod/hyper-web removed"

        assert podbay("delete", "pod", "hello").stdout.strip() == 'pod "hello" deleted'
        assert "No resources found" in podbay("get", "pods").stderr
    finally:
        podbay("down", "--purge")


def test_image_verbs_build_list_remove(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    source = tmp_path / "rootfs"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (source / "bin" / "busybox").chmod(0o755)
    image_id = podbay("image", "build", str(source), "-t", "localhost/mini:1", "--cmd", "/bin/busybox",
                      "echo", "hi").stdout.strip()
    listing = podbay("image", "ls").stdout.splitlines()
    assert listing[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert any(line.split()[:3] == ["localhost/mini", "1", image_id.removeprefix("sha256:")[:13]]
               for line in listing[1:])
    assert podbay("image", "rm", "localhost/mini:1").stdout.strip() == "Untagged: localhost/mini:1"
    assert "localhost/mini" not in podbay("image", "ls").stdout
