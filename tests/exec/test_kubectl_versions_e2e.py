"""exec -i, cp both ways and port-forward with every kubectl present: those before 1.30
stream exec over SPDY/3.1, those before 1.31 port-forward over SPDY, the newer ones over
WebSocket (exec) and SPDY tunnelled in a WebSocket (port-forward)."""
from __future__ import annotations

import asyncio
import glob
import os
import re
from pathlib import Path

import pytest

from tests.exec.conftest import ExecTarget

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", os.path.basename(path)))


VERSIONED = sorted(glob.glob("/usr/lib/google-cloud-sdk/bin/kubectl.1.*"), key=_version)
KUBECTLS = [pytest.param(p, id=os.path.basename(p)) for p in VERSIONED] or [
    pytest.param(None, id="kubectl", marks=pytest.mark.skip(reason="no /usr/lib/google-cloud-sdk/bin/kubectl.1.* present"))]


async def run(argv: list[str], stdin: bytes = b"", timeout: float = 60) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out, err


def kubectl(binary: str | None, target: ExecTarget) -> list[str]:
    assert binary is not None
    return [binary, f"--kubeconfig={target.kubeconfig}"]


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_exec_i_and_cp_both_ways(target: ExecTarget, binary: str | None, tmp_path: Path) -> None:
    k = kubectl(binary, target)
    data = b"".join(b"line %d\n" % i for i in range(3000))  # more than one frame
    code, out, err = await run([*k, "exec", "-i", target.pod, "--", "cat"], data)
    assert (code, out) == (0, data), err
    code, out, err = await run([*k, "exec", target.pod, "--", "sh", "-c", "echo out; echo err >&2; exit 6"])
    assert (code, out, err) == (6, b"out\n", b"err\ncommand terminated with exit code 6\n")

    local = tmp_path / "in.bin"
    local.write_bytes(os.urandom(200_000))
    code, out, err = await run([*k, "cp", str(local), f"{target.pod}:/tmp/in.bin"])
    assert code == 0, err
    code, out, err = await run([*k, "exec", target.pod, "--", "md5sum", "/tmp/in.bin"])
    import hashlib
    assert code == 0 and out.split()[0].decode() == hashlib.md5(local.read_bytes()).hexdigest(), err
    back = tmp_path / "back.bin"
    code, out, err = await run([*k, "cp", f"{target.pod}:/tmp/in.bin", str(back)])
    assert code == 0, err
    assert back.read_bytes() == local.read_bytes()
