"""The autoscaling/v1 Scale subresource of scalable kinds (kube's ScaleREST): what an object shows
as its Scale, and a Scale a client sends, decoded."""
from __future__ import annotations

from typing import Any

from podbay.api.apps import LabelSelector, Scale, selector_string
from podbay.api.errors import Invalid
from podbay.api.serialize import from_dict
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies import Strategy


def scale_of(strategy: Strategy, obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale a scalable object shows (its replicas and selector)."""
    spec, status, meta = obj.get("spec", {}), obj.get("status", {}), obj["metadata"]
    selector = strategy.scale_selector(spec)
    if selector is None:
        selector = selector_string(from_dict(LabelSelector, spec.get("selector") or {}, strict=False))
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                  if k in meta}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": status.get("replicas", 0), "selector": selector}}


def decode_scale(wanted: dict[str, Any], name: str) -> Scale:
    try:
        scale = from_dict(Scale, {**wanted, "kind": "Scale", "apiVersion": "autoscaling/v1"}, strict=True)
    except Invalid as exc:
        raise ObjectInvalid("Scale.autoscaling", name, list(exc.errors)) from None
    return scale
