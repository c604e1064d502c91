"""kubectl debug: an ephemeral container added through pods/ephemeralcontainers runs in the pod,
with --target in the target container's PID namespace; it is reported and never restarted."""
from __future__ import annotations

import json

from podbay.api import Pod
from podbay.api.formats import load_pods
from tests.kubectl.conftest import TARGET_POD, Kubectl, Result


def _terminated(result: Result) -> bool:
    return result.code == 0 and bool(result.out.strip())


async def test_kubectl_debug_runs_an_ephemeral_container_in_the_targets_pid_namespace(kubectl: Kubectl) -> None:
    await kubectl.cluster.client.create(load_pods(TARGET_POD)[0])
    await kubectl.cluster.wait_for("target", lambda p: p.status.phase == "Running")

    debug = await kubectl("debug", "target", "--image=busybox:1.35", "-c", "debugger", "--target=app",
                          "--", "ps", "-o", "pid,args")
    assert debug.code == 0, debug.err

    code = await kubectl.until("get", "pod", "target", "-o",
                               "jsonpath={.status.ephemeralContainerStatuses[0].state.terminated.exitCode}",
                               check=_terminated)
    assert code.out.strip() == "0"
    logs = await kubectl("logs", "target", "-c", "debugger")
    assert logs.code == 0, logs.err
    assert "sleep 3601" in logs.out, logs.out  # the target's process, seen from the debugger
    assert "ps -o pid,args" in logs.out

    pod = json.loads((await kubectl("get", "pod", "target", "-o", "json")).out)
    [status] = pod["status"]["ephemeralContainerStatuses"]
    assert (status["name"], status["restartCount"], status["ready"]) == ("debugger", 0, False)
    assert pod["spec"]["ephemeralContainers"][0]["targetContainerName"] == "app"
    # Never restarted: the app keeps running, the debugger stays terminated.
    again = await kubectl.cluster.client.get(Pod, "target")
    assert again.status.phase == "Running"

