"""Events about pods, as the kubelet records them (source.component: kubelet)."""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from typing import Any

from podbay.api import Event
from podbay.api.serialize import from_dict

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, client: Any, node_name: str) -> None:
        self.client = client
        self.node_name = node_name

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
        try:
            await self.client.create_event(event)
        except Exception as exc:  # an event lost must never stop a pod's sync
            log.warning("event %s for %s/%s not recorded: %s", reason, pod.metadata.namespace, pod.metadata.name, exc)
