"""What the workload controllers share, after client-go's workqueue: a queue of object keys that
holds each key once (the shared informers, podbay.client.informer, feed it), and the pod/owner helpers of
pkg/controller (controller_utils.go)."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Awaitable, Callable, Generic, TypeVar

from podbay.api import ObjectMeta, OwnerReference, Pod
from podbay.api.apps import PodTemplateSpec
from podbay.api.serialize import to_dict
from podbay.client import Client
from podbay.client.informer import Object

log = logging.getLogger(__name__)

K = TypeVar("K")
_RETRY_MIN, _RETRY_MAX = 0.2, 30.0


O = TypeVar("O", bound=Object)


class WorkQueue(Generic[K]):
    """Keys waiting to be synced: a key queued again before it is taken is held once; a key
    whose sync failed comes back after a growing delay."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._pending: set[K] = set()
        self._failures: dict[K, int] = {}

    def add(self, key: K) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        asyncio.get_running_loop().call_later(max(delay, 0.0), self.add, key)

    def retry(self, key: K) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(_RETRY_MIN * 2 ** failures, _RETRY_MAX))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    async def get(self) -> K:
        key = await self._queue.get()
        self._pending.discard(key)
        return key

    async def work(self, sync: Callable[[K], Awaitable[None]], what: str) -> None:
        """Syncs keys one at a time, forever (one worker: a key is never synced twice at once)."""
        while True:
            key = await self.get()
            try:
                await sync(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s %s: sync failed, retrying: %s", what, key, exc)
                self.retry(key)
            else:
                self.forget(key)


def is_pod_active(pod: Pod) -> bool:
    """FilterActivePods: not finished and not being deleted."""
    return pod.status.phase not in ("Succeeded", "Failed") and pod.metadata.deletion_timestamp is None


def is_pod_ready(pod: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def ready_since(pod: Pod) -> datetime | None:
    ready = next((c for c in pod.status.conditions if c.type == "Ready" and c.status == "True"), None)
    return ready.last_transition_time if ready else None


def is_pod_available(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """IsPodAvailable: ready for at least minReadySeconds."""
    if not is_pod_ready(pod):
        return False
    since = ready_since(pod)
    return min_ready_seconds == 0 or (since is not None and (now - since).total_seconds() >= min_ready_seconds)


def controller_ref(owner: Object, api_version: str, kind: str) -> OwnerReference:
    """metav1.NewControllerRef: the reference a controller puts on what it makes."""
    return OwnerReference(api_version=api_version, kind=kind, name=owner.metadata.name or "",
                          uid=owner.metadata.uid or "", controller=True, block_owner_deletion=True)


def pod_from_template(template: PodTemplateSpec, namespace: str, owner_name: str, ref: OwnerReference) -> Pod:
    """GetPodFromTemplate: the template's labels, annotations, finalizers and spec, named
    `<owner>-<random>` by the API server, controlled by `ref`."""
    meta = ObjectMeta(generate_name=f"{owner_name}-", namespace=namespace,
                      labels=dict(template.metadata.labels), annotations=dict(template.metadata.annotations),
                      finalizers=list(template.metadata.finalizers), owner_references=[ref])
    return Pod(metadata=meta, spec=template.spec.model_copy(deep=True))


async def set_owner_references(client: Client, kind: type[O], obj: O, refs: list[OwnerReference]) -> O:
    """Replaces the object's ownerReferences, on the version read (Conflict when it changed):
    a JSON merge patch replaces the whole list, as the controller ref manager's patches do."""
    patch = {"metadata": {"ownerReferences": [to_dict(r) for r in refs] or None,
                          "resourceVersion": obj.metadata.resource_version, "uid": obj.metadata.uid}}
    return await client.patch(kind, obj.metadata.name or "", patch, obj.metadata.namespace, patch_type="merge")
