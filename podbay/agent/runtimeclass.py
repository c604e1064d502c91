"""The kubelet's LookupRuntimeHandler."""
from __future__ import annotations

from podbay.api import Pod, RuntimeClass
from podbay.api.errors import NotFound
from podbay.client.client import Client


async def runtime_handler(client: Client, pod: Pod) -> str:
    """The handler of the pod's RuntimeClass ("" without one)."""
    name = pod.spec.runtime_class_name
    if not name:
        return ""
    try:
        return (await client.get(RuntimeClass, name)).handler
    except NotFound:
        raise NotFound(f'runtimeclass.node.k8s.io "{name}" not found') from None
