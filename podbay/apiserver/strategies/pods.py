"""pkg/registry/core/pod/strategy.go: a pod's status and QoS class are the server's, its spec is
immutable but for a few fields, its ephemeral containers come through their subresource, and a
pod on a node is deleted gracefully."""
from __future__ import annotations

import copy
from typing import Any, cast

from pydantic import BaseModel

from podbay.api import Pod
from podbay.api.defaults import DEFAULT_GRACE_SECONDS, apply_pod_defaults
from podbay.api.errors import FieldError
from podbay.api.kinds import ResourceInfo
from podbay.api.resources import qos_class
from podbay.api.serialize import from_dict
from podbay.api.validation import validate_ephemeral_update, validate_pod
from podbay.apiserver.runtimeclass import admit_pod
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies.base import Host, Strategy
from podbay.apiserver.strategies.namespaces import finish_namespace
from podbay.store.base import Store

_FINISHED = ("Succeeded", "Failed")


class PodStrategy(Strategy):
    graceful = True
    generation = True

    async def admit(self, store: Store, obj: dict[str, Any], name: str) -> None:
        await admit_pod(store, obj, name)

    def prepare_for_create(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta["generation"] = 1
        obj["status"] = {"phase": "Pending"}
        if obj.get("spec", {}).get("ephemeralContainers") if isinstance(obj.get("spec"), dict) else None:
            # ValidatePodCreate: they are added to a running pod, through their subresource only.
            raise ObjectInvalid(info.kind, meta["name"], [FieldError("spec.ephemeralContainers", None,
                                                                     "Forbidden: cannot be set on create")])

    def default(self, model: Any) -> None:
        apply_pod_defaults(model)

    def validate(self, model: Any) -> list[FieldError]:
        return validate_pod(model)

    def canonicalize_create(self, out: dict[str, Any], model: BaseModel) -> None:
        out.setdefault("status", {}).setdefault("phase", "Pending")
        out["status"]["qosClass"] = qos_class(cast(Pod, model))  # this strategy serves pods only

    def validate_update(self, out: dict[str, Any], old: dict[str, Any], subresource: str | None) -> list[FieldError]:
        if subresource == "ephemeralcontainers":
            return validate_ephemeral_update(from_dict(Pod, out), from_dict(Pod, old))
        if subresource is None:
            return _pod_update_errors(out, old)
        return []

    def check_graceful_delete(self, obj: dict[str, Any], requested: int | None) -> int:
        spec, status = obj.get("spec", {}), obj.get("status", {})
        # Nothing runs an unbound or finished pod.
        if not spec.get("nodeName") or status.get("phase") in _FINISHED:
            return 0
        if requested is not None:
            grace = requested
        else:
            grace = spec.get("terminationGracePeriodSeconds")
            grace = DEFAULT_GRACE_SECONDS if grace is None else grace
        current = obj["metadata"].get("deletionGracePeriodSeconds")
        if current is not None:
            # A second delete may only shorten the grace period.
            grace = min(grace, current)
        return grace

    def marks_before_forced_delete(self, obj: dict[str, Any]) -> bool:
        # A forced delete of a pod that may be running: its node's agent learns it
        # from the object (deletionGracePeriodSeconds 0) and kills at once.
        return bool(obj.get("spec", {}).get("nodeName")) and not obj["metadata"].get("deletionTimestamp") \
            and obj.get("status", {}).get("phase") not in _FINISHED

    async def after_delete(self, host: Host, obj: dict[str, Any]) -> None:
        # A Terminating namespace goes with its last pod.
        await finish_namespace(host.store, obj["metadata"]["namespace"])


def _pod_update_errors(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """ValidatePodUpdate's core rule: a pod's spec is immutable but for
    container images, activeDeadlineSeconds, additional tolerations and
    scheduling gates being removed."""

    def mutable_zeroed(spec: dict[str, Any]) -> dict[str, Any]:
        spec = copy.deepcopy(spec)
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for c in spec.get(key, []) or []:
                c.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        spec.pop("schedulingGates", None)
        return spec

    new_spec, old_spec = new.get("spec", {}), old.get("spec", {})
    if mutable_zeroed(new_spec) == mutable_zeroed(old_spec):
        old_tolerations = old_spec.get("tolerations", []) or []
        if all(t in (new_spec.get("tolerations") or []) for t in old_tolerations):
            return []
        return [FieldError("spec.tolerations", None, "Forbidden: existing toleration can not be modified except its tolerationSeconds")]
    return [
        FieldError(
            "spec",
            None,
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
            "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
            "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
            "(allow it to be set to 1 if it was previously negative)",
        )
    ]
