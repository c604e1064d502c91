"""kubectl events, and events.k8s.io/v1: the stored core Events converted as kube-apiserver converts them."""
from __future__ import annotations

import json

from podbay.api.formats import load_pods
from tests.kubectl.conftest import Kubectl, Result

POD = """
apiVersion: v1
kind: Pod
metadata: {name: evented}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: main, image: "busybox:1.35", command: [sleep, "3600"]}]
"""


def _started(result: Result) -> bool:
    return result.code == 0 and "Started" in result.out


async def test_kubectl_events_lists_the_pods_events(kubectl: Kubectl) -> None:
    await kubectl.cluster.client.create(load_pods(POD)[0])
    await kubectl.cluster.wait_for("evented", lambda p: p.status.phase == "Running")

    events = await kubectl.until("events", "--for", "pod/evented", check=_started)
    header = events.out.splitlines()[0].split()
    assert header == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], events.out
    assert "Scheduled" in events.out and "Pod/evented" in events.out
    assert "Started container main" in events.out

    raw = await kubectl("get", "--raw", "/apis/events.k8s.io/v1/namespaces/default/events")
    items = json.loads(raw.out)["items"]
    started = next(e for e in items if e["reason"] == "Started")
    assert started["regarding"]["name"] == "evented" and started["note"] == "Started container main"
    assert started["deprecatedCount"] >= 1 and "message" not in started
    one = await kubectl("get", "events.v1.events.k8s.io", started["metadata"]["name"], "-o", "json")
    assert one.code == 0, one.err
    assert json.loads(one.out)["regarding"]["kind"] == "Pod"
