"""Events about a pod, or one of its containers as the kubelet names it in
involvedObject.fieldPath."""
from __future__ import annotations

from podbay.api import Pod
from podbay.client.record import EventRecorder


def container_path(name: str, init: bool) -> str:
    return f"spec.{'initContainers' if init else 'containers'}{{{name}}}"


class PodEvents:
    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder

    async def record(self, pod: Pod, reason: str, message: str, *, warning: bool = False,
                     container: str | None = None, init: bool = False) -> None:
        await self.recorder.record(pod, reason, message, warning=warning,
                                   field_path=container_path(container, init) if container else None)

    async def close(self) -> None:
        await self.recorder.close()
