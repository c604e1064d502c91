"""Kubernetes' RuntimeClass admission plugin (plugin/pkg/admission/runtimeclass): a pod that
names a RuntimeClass takes its overhead and scheduling constraints when it is created, and
a pod that names none that exists is refused, so a typo fails at once rather than on a node."""
from __future__ import annotations

from typing import Any

from podbay.api.errors import Forbidden, NotFound
from podbay.api.quantity import parse_quantity
from podbay.store.base import Store


def _forbidden(name: str, why: str) -> Forbidden:
    return Forbidden(f'pods "{name}" is forbidden: {why}', kind="pods", name=name)


def _same_quantities(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Semantic equality, as apiequality compares quantities: "100m" is "0.1"."""
    try:
        return a.keys() == b.keys() and all(parse_quantity(str(a[k])) == parse_quantity(str(b[k])) for k in a)
    except ValueError:
        return False


async def admit_pod(store: Store, pod: dict[str, Any], name: str) -> None:
    """Admits a pod being created: mutates its spec (overhead, nodeSelector, tolerations) from
    its RuntimeClass, then validates its overhead against it; Forbidden otherwise."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return  # decoding reports the malformed spec by its field
    class_name = spec.get("runtimeClassName")
    rc: dict[str, Any] | None = None
    if isinstance(class_name, str) and class_name:
        try:
            rc = await store.get("runtimeclasses", "", class_name)
        except NotFound:
            raise _forbidden(name, f'pod rejected: RuntimeClass "{class_name}" not found') from None
    pod_overhead = spec.get("overhead") or None
    fixed = ((rc or {}).get("overhead") or {}).get("podFixed") or None
    if fixed is not None:
        if pod_overhead is not None and not (isinstance(pod_overhead, dict) and _same_quantities(pod_overhead, fixed)):
            raise _forbidden(name, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
        spec["overhead"] = dict(fixed)
    elif pod_overhead is not None:
        raise _forbidden(name, "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
    scheduling = (rc or {}).get("scheduling") or {}
    selector = scheduling.get("nodeSelector") or {}
    if selector:
        merged = dict(spec.get("nodeSelector") or {})
        for key, value in selector.items():
            if key in merged and merged[key] != value:
                raise _forbidden(name, f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; "
                                       f"pod.spec.nodeSelector[{key}] = {merged[key]}")
            merged[key] = value
        spec["nodeSelector"] = merged
    tolerations = list(spec.get("tolerations") or [])
    for t in scheduling.get("tolerations") or []:
        if t not in tolerations:
            tolerations.append(t)
    if tolerations:
        spec["tolerations"] = tolerations
