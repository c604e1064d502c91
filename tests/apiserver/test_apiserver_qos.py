"""A pod's status.qosClass as the API server reports it: Kubernetes' rules over quantities, not strings."""
from __future__ import annotations

from podbay.api import Pod
from podbay.api.formats import load_objects
from podbay.apiserver.embedded import EmbeddedServer
from podbay.client import Client

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: same-quantity}
spec:
  containers:
  - {name: a, image: busybox, resources: {requests: {cpu: "1", memory: 1Gi}, limits: {cpu: 1000m, memory: 1024Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: limits-only}
spec:
  initContainers:
  - {name: init, image: busybox, resources: {limits: {cpu: 500m, memory: 64Mi}}}
  containers:
  - {name: a, image: busybox, resources: {limits: {cpu: "2", memory: 128Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: init-without-limits}
spec:
  initContainers:
  - {name: init, image: busybox}
  containers:
  - {name: a, image: busybox, resources: {limits: {cpu: "2", memory: 128Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: nothing}
spec: {containers: [{name: a, image: busybox}]}
"""


async def test_status_qos_class_compares_quantities(api_server: EmbeddedServer, api_client: Client) -> None:
    for obj in load_objects(PODS):
        await api_client.create(obj)
    got = {name: (await api_client.get(Pod, name)).status.qos_class
           for name in ("same-quantity", "limits-only", "init-without-limits", "nothing")}
    assert got == {"same-quantity": "Guaranteed", "limits-only": "Guaranteed",
                   "init-without-limits": "Burstable", "nothing": "BestEffort"}
