"""kubectl wait (condition, jsonpath, delete) and kubectl delete's flags (--wait, --grace-period,
--force, -l, --all) against real pods, with each kubectl version."""
from __future__ import annotations

import asyncio

from podbay.api import Pod
from podbay.api.formats import load_pods
from tests.kubectl.conftest import Kubectl

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 30
  containers: [{name: main, image: "busybox:1.35", command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 30
  containers: [{name: main, image: "busybox:1.35", command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: other}
spec:
  terminationGracePeriodSeconds: 30
  containers: [{name: main, image: "busybox:1.35", command: [sleep, "3600"]}]
"""


async def test_kubectl_wait_and_delete_flags(kubectl: Kubectl) -> None:
    for pod in load_pods(PODS):
        await kubectl.cluster.client.create(pod)

    ready = await kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=90s")
    assert ready.code == 0, ready.err
    assert sorted(ready.out.splitlines()) == ["pod/web-1 condition met", "pod/web-2 condition met"]
    phase = await kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/other", "--timeout=90s")
    assert (phase.code, phase.out.strip()) == (0, "pod/other condition met"), phase.err
    never = await kubectl("wait", "--for=condition=Ready=false", "pod/other", "--timeout=1s")
    assert never.code == 1 and "timed out waiting for the condition" in never.err

    # sleep ignores SIGTERM as PID 1: --grace-period=1 is what ends it within a second.
    deleted = await kubectl("delete", "pod", "-l", "app=web", "--grace-period=1", "--wait=true")
    assert deleted.code == 0, deleted.err
    assert sorted(deleted.out.splitlines()) == ['pod "web-1" deleted', 'pod "web-2" deleted']
    pods, _ = await kubectl.cluster.client.list(Pod, "default")
    assert [p.metadata.name for p in pods] == ["other"]  # --wait returned once they were gone

    waiter = asyncio.create_task(kubectl("wait", "--for=delete", "pod/other", "--timeout=60s"))
    forced = await kubectl("delete", "--all", "pods", "--force", "--grace-period=0")
    assert forced.code == 0, forced.err
    assert "Immediate deletion does not wait for confirmation" in forced.err
    assert forced.out.strip() in ('pod "other" force deleted', 'pod "other" deleted')
    gone = await waiter
    assert gone.code == 0, gone.err
    missing = await kubectl("wait", "--for=delete", "pod/other", "--timeout=5s")
    assert missing.code == 0, missing.err
