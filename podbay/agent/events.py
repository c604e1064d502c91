"""Events about a pod, or one of its containers as the kubelet names it in
involvedObject.fieldPath."""
from __future__ import annotations

import contextlib
from typing import Iterator

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

    @contextlib.contextmanager
    def held(self, uid: str) -> Iterator[None]:
        """The pod's Events wait for the end of the block (a sync's container starts and its status
        write) unless `release` sends them first."""
        self.recorder.hold(uid)
        try:
            yield
        finally:
            self.recorder.release(uid)

    def release(self, uid: str) -> None:
        """Before a wait a user may watch (an image pull, a postStart hook): what happened so far is
        told now, and what follows as it happens."""
        self.recorder.release(uid)

    async def close(self) -> None:
        await self.recorder.close()
