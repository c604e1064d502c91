"""Terminals in a gVisor pod, as a user of kubectl sees them: `kubectl exec -it` and
`kubectl attach -it` to a `tty: true` container in RuntimeClass gvisor."""
from __future__ import annotations

import asyncio
import os
import shutil
from typing import AsyncIterator

import pytest

from podbay.runtime.console import set_window_size, write_all
from tests.conftest import HostEnv
from tests.exec.conftest import ExecTarget, exec_target
from tests.exec.test_exec_cli_e2e import ROOT, _controlling_terminal, press_enter_until, read_until

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("runsc") is None, reason="runsc is not installed (scripts/setup.sh)"),
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

POD = "gvterm"
# The console container's shell: says it has a terminal, then its size for each line typed.
CONSOLE = "[ -t 0 ] && echo on-a-terminal; while read line; do stty size; done; exit 3"


@pytest.fixture
async def target(host_env: HostEnv) -> AsyncIterator[ExecTarget]:
    async with exec_target(host_env, f"""
apiVersion: v1
kind: Pod
metadata: {{name: {POD}}}
spec:
  runtimeClassName: gvisor
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - {{name: console, image: "busybox:1.35", tty: true, stdin: true, command: [sh, -c, "{CONSOLE}"]}}
  - {{name: main, image: "busybox:1.35", command: [sleep, "3600"]}}
""", POD) as t:
        yield t


async def in_terminal(argv: list[str], *, banner: bool) -> int:
    """Runs `argv` on a terminal of the test's own, 111x33 then resized to 120x44, and checks
    that the far end follows both sizes (and, with `banner`, that the shell found a terminal);
    then types ^D. Returns the exit code."""
    master, slave = os.openpty()
    try:
        os.set_blocking(master, False)
        set_window_size(master, 111, 33)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, start_new_session=True,
            preexec_fn=_controlling_terminal)
        if banner:
            assert b"on-a-terminal" in await read_until(master, b"on-a-terminal")
        await press_enter_until(master, b"33 111")
        set_window_size(master, 120, 44)
        await press_enter_until(master, b"44 120")
        await write_all(master, b"\x04")  # ^D, passed through raw: the remote terminal's end of input
        return await asyncio.wait_for(proc.wait(), 30)
    finally:
        os.close(master)
        os.close(slave)


async def test_kubectl_exec_it_into_a_gvisor_pod(target: ExecTarget) -> None:
    kubectl = ["kubectl", f"--kubeconfig={target.kubeconfig}"]
    code = await in_terminal([*kubectl, "exec", "-it", POD, "-c", "main", "--", "sh", "-c", CONSOLE], banner=True)
    assert code == 3


async def test_kubectl_attach_it_to_a_tty_container_in_gvisor(target: ExecTarget) -> None:
    kubectl = ["kubectl", f"--kubeconfig={target.kubeconfig}"]
    # The banner went out before the attach: only the log has it.
    await in_terminal([*kubectl, "attach", "-it", POD, "-c", "console"], banner=False)
    pod = await target.cluster.wait_for(POD, lambda p: any(
        s.name == "console" and s.state.terminated for s in p.status.container_statuses))
    assert next(s for s in pod.status.container_statuses if s.name == "console").state.terminated.exit_code == 3
    log = b"".join([c async for c in target.cluster.client.logs(POD, "default", container="console")])
    assert b"on-a-terminal" in log
