"""`podbay exec -i` and `kubectl exec -i` through the exec stream, on a real container."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.exec.conftest import ExecTarget

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


async def run(argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err


def podbay(target: ExecTarget, *args: str) -> list[str]:
    return [sys.executable, "-m", "podbay", *target.cluster.settings.as_args(), *args]


async def test_podbay_exec_i_pipes_stdin_and_passes_the_exit_code(target: ExecTarget) -> None:
    data = b"".join(b"line %d\n" % i for i in range(2000))  # more than one pipe buffer
    code, out, err = await run(podbay(target, "exec", "-i", target.pod, "--", "cat"), data)
    assert (code, out) == (0, data), err
    code, out, err = await run(podbay(target, "exec", "-i", target.pod, "--", "sh", "-c", "wc -l; exit 5"), data)
    assert (code, out.strip()) == (5, b"2000"), err
    code, out, err = await run(podbay(target, "exec", "-i", "-c", "nope", target.pod, "--", "true"), b"")
    assert code == 1 and b"container nope is not valid for pod shell" in err


async def test_kubectl_exec_i(target: ExecTarget, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: podbay, cluster: {{server: "{target.http_url}"}}}}]
contexts: [{{name: podbay, context: {{cluster: podbay, user: me}}}}]
users: [{{name: me, user: {{}}}}]
current-context: podbay
""")
    kubectl = ["kubectl", f"--kubeconfig={kubeconfig}"]
    code, out, err = await run([*kubectl, "exec", "-i", target.pod, "--", "cat"], b"from kubectl\n")
    assert (code, out) == (0, b"from kubectl\n"), err
    code, out, err = await run([*kubectl, "exec", target.pod, "--", "sh", "-c", "echo out; echo err >&2; exit 6"], b"")
    assert (code, out, err) == (6, b"out\n", b"err\ncommand terminated with exit code 6\n")
