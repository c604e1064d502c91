"""The pods/binding subresource (pkg/registry/core/pod/storage's BindingREST): a Binding
assigns an unbound pod to a node and marks it PodScheduled."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from podbay.api.base import rfc3339
from podbay.api.errors import BadRequest, Conflict, FieldError
from podbay.apiserver.meta import object_meta
from podbay.apiserver.params import json_object, json_string
from podbay.apiserver.status import ObjectInvalid
from podbay.store.base import Store

_MAX_RETRIES = 16


async def bind_pod(store: Store, clock: Callable[[], datetime], namespace: str, name: str, binding: Any) -> None:
    if not isinstance(binding, dict):
        raise BadRequest("the body of the request must be a Binding")
    binding = {**binding, "kind": "Binding"}
    meta = object_meta(binding)
    if meta.get("name") and meta["name"] != name:
        raise BadRequest(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
        )
    target = json_object(binding.get("target"), "target", "Binding", "v1.ObjectReference")
    node = json_string(target.get("name"), "target.name", "ObjectReference") or ""
    kind = json_string(target.get("kind"), "target.kind", "ObjectReference")
    if not node:
        raise ObjectInvalid("Binding", name, [FieldError("target.name", "", "Required value")])
    if kind not in (None, "", "Node"):
        raise ObjectInvalid(
            "Binding", name, [FieldError("target.kind", kind, 'Unsupported value: must be empty or "Node"')]
        )
    uid = meta.get("uid")
    for _ in range(_MAX_RETRIES):
        pod = await store.get("pods", namespace, name)
        pmeta = pod["metadata"]
        if uid and pmeta.get("uid") != uid:
            raise Conflict(
                f'Operation cannot be fulfilled on pods/binding "{name}": Precondition failed: '
                f"UID in precondition: {uid}, UID in object meta: {pmeta.get('uid')}",
                kind="pods/binding", name=name,
            )
        if pmeta.get("deletionTimestamp"):
            raise Conflict(
                f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is being deleted, '
                "cannot be assigned to a host",
                kind="pods/binding", name=name,
            )
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise Conflict(
                f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is already '
                f"assigned to node \"{spec['nodeName']}\"",
                kind="pods/binding", name=name,
            )
        spec["nodeName"] = node
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions", []) if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(clock())}
        )
        status["conditions"] = conditions
        try:
            await store.update("pods", namespace, name, pod, expected_rv=pmeta["resourceVersion"])
            return
        except Conflict:
            continue
    raise Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": too many concurrent updates',
                   kind="pods/binding", name=name)
