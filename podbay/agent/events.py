"""Events about pods, as the kubelet records them (source.component: kubelet)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import datetime, timezone
from typing import Any

from podbay.api import Event
from podbay.api.serialize import from_dict

log = logging.getLogger(__name__)


class EventRecorder:
    """Events go out from a queue in the background, as client-go's broadcaster sends
    them, so recording one never holds up a pod's sync."""

    def __init__(self, client: Any, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self._queue: asyncio.Queue[tuple[Any, Event]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    async def _send(self) -> None:
        while True:
            pod, event = await self._queue.get()
            try:
                await self.client.create_event(event)
            except Exception as exc:  # an event lost must never stop a pod's sync
                log.warning("event %s for %s/%s not recorded: %s", event.reason, pod.metadata.namespace,
                            pod.metadata.name, exc)
            finally:
                self._queue.task_done()

    async def close(self) -> None:
        """Sends what is queued, then stops."""
        if self._sender is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.join(), 5)
        self._sender.cancel()
        await asyncio.gather(self._sender, return_exceptions=True)

    async def record(self, pod: Any, reason: str, message: str, *, warning: bool = False,
                     container: str | None = None, init: bool = False) -> None:
        now = datetime.now(timezone.utc)
        ref: dict[str, Any] = {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name,
                               "namespace": pod.metadata.namespace, "uid": pod.metadata.uid}
        if container:
            ref["fieldPath"] = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
        event = from_dict(Event, {
            "metadata": {"name": f"{pod.metadata.name}.{secrets.token_hex(8)}", "namespace": pod.metadata.namespace},
            "involvedObject": ref, "reason": reason, "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        })
        self._queue.put_nowait((pod, event))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
