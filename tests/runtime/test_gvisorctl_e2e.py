"""The sandbox's control server spoken to directly, on the installed runsc: a signal to one
container's init, a process run to its end in the sandbox's kernel, and the errors of a call
that reaches no sandbox or names no container."""
from __future__ import annotations

import asyncio
import signal

import pytest

from podbay.runtime.gvisorctl import Capabilities, ControlError, Exec, RemoteError, SandboxControl
from podbay.runtime.service import RuntimeService
from tests.polling import wait_until
from tests.runtime.test_gvisor_e2e import exited, gvisor_runtime, log_lines  # noqa: F401 - the fixture
from tests.runtime.test_runtime_e2e import container, run, sandbox

pytestmark = pytest.mark.e2e
SYS_ADMIN = 1 << 21


async def trapping(runtime: RuntimeService, sandbox_id: str, name: str, trap: str) -> str:
    """A container whose shell has set its trap: a signal sent before `trap` ran would meet the
    default action and give another exit code, so it says when it is ready and we wait for that."""
    cid = await run(runtime, sandbox_id, container(name, f"{trap}; echo ready; while true; do sleep 0.1; done"))
    log_path = (await runtime.container_status(cid)).log_path
    await wait_until(lambda: b"ready" in log_lines(log_path), f"{name} set its trap", 60)
    return cid


async def test_signal_and_run_through_the_control_server(gvisor_runtime: RuntimeService) -> None:  # noqa: F811
    runtime = gvisor_runtime
    sid = await runtime.run_pod_sandbox(sandbox("ctl", runtime_handler="runsc"))
    control = SandboxControl(sid, str(runtime.config.run_root / "runsc"))
    trapper = await trapping(runtime, sid, "trapper", "trap 'exit 9' USR1")
    sleeper = await run(runtime, sid, container("sleeper", "exec sleep 600"))

    # The pod's pause container runs busybox: `hostname NAME` there changes the pod's UTS name,
    # which every container of the pod shares.
    caps = Capabilities(SYS_ADMIN, SYS_ADMIN, SYS_ADMIN)
    assert await asyncio.to_thread(control.run, Exec(sid, "/.pause/busybox", ("busybox", "hostname", "renamed"),
                                  capabilities=caps)) == 0
    assert (await runtime.exec_sync(sleeper, ["hostname"], 30))[1] == b"renamed\n"
    # Without CAP_SYS_ADMIN, sethostname is refused inside: the exit code says so.
    assert await asyncio.to_thread(control.run, Exec(sid, "/.pause/busybox", ("busybox", "hostname", "again"),
                                  uid=65534, gid=65534)) == 1
    assert (await runtime.exec_sync(sleeper, ["hostname"], 30))[1] == b"renamed\n"

    # A signal goes to its container's init only.
    await asyncio.to_thread(control.signal, trapper, signal.SIGUSR1)
    assert await exited(runtime, trapper) == 9
    assert (await runtime.exec_sync(sleeper, ["true"], 30))[0] == 0

    with pytest.raises(RemoteError):
        await asyncio.to_thread(control.run, Exec("no-such-container", "/.pause/busybox", ("busybox", "true")))
    with pytest.raises(RemoteError):
        control.signal("no-such-container", signal.SIGTERM)
    with pytest.raises(ControlError, match="no control server for sandbox"):
        SandboxControl("no-such-sandbox", str(runtime.config.run_root / "runsc")).signal(sleeper, signal.SIGTERM)
    await runtime.remove_pod_sandbox(sid)


async def test_a_stop_signals_through_the_control_server_and_honours_the_grace_period(
        gvisor_runtime: RuntimeService) -> None:  # noqa: F811
    runtime = gvisor_runtime
    sid = await runtime.run_pod_sandbox(sandbox("stops", runtime_handler="runsc"))
    # SIGTERM reaches the container's own handler, which decides the exit code.
    graceful = await trapping(runtime, sid, "graceful", "trap 'exit 7' TERM")
    # One that ignores SIGTERM is killed once its grace period is over.
    stubborn = await trapping(runtime, sid, "stubborn", "trap '' TERM")
    await asyncio.gather(runtime.stop_container(graceful, 30), runtime.stop_container(stubborn, 1))
    assert (await runtime.container_status(graceful)).exit_code == 7
    assert (await runtime.container_status(stubborn)).exit_code == 137
    await runtime.remove_pod_sandbox(sid)
