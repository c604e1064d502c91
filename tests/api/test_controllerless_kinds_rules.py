"""Validation of the kinds stored without a controller (PersistentVolume, PersistentVolumeClaim,
Ingress): each error names its field path, as Kubernetes' validation does."""
from __future__ import annotations

from typing import Any

from podbay.api.networking import Ingress, validate_ingress
from podbay.api.serialize import from_dict
from podbay.api.storage import (
    PersistentVolume,
    PersistentVolumeClaim,
    default_persistent_volume,
    validate_persistent_volume,
    validate_persistent_volume_claim,
    validate_persistent_volume_claim_update,
)


def _errors(errors: list[Any]) -> list[str]:
    return [str(e) for e in errors]


def test_a_claim_needs_access_modes_and_a_positive_storage_request() -> None:
    claim = from_dict(PersistentVolumeClaim, {"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteSome"]}})
    assert _errors(validate_persistent_volume_claim(claim)) == [
        'spec.accessModes: Unsupported value: "ReadWriteSome": supported values: "ReadWriteOnce", "ReadOnlyMany", '
        '"ReadWriteMany", "ReadWriteOncePod"',
        "spec.resources.requests[storage]: Required value"]
    good = from_dict(PersistentVolumeClaim, {"metadata": {"name": "c"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert validate_persistent_volume_claim(good) == []
    bigger = good.model_copy(deep=True)
    bigger.spec.resources.requests["storage"] = "2Gi"
    assert _errors(validate_persistent_volume_claim_update(bigger, good)) == [
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims"]


def test_a_volume_needs_exactly_one_source_and_local_needs_node_affinity() -> None:
    spec = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}
    none = from_dict(PersistentVolume, {"metadata": {"name": "v"}, "spec": spec})
    default_persistent_volume(none)
    assert _errors(validate_persistent_volume(none)) == ["spec: Required value: must specify a volume type"]
    assert none.spec.persistent_volume_reclaim_policy == "Retain"
    two = from_dict(PersistentVolume, {"metadata": {"name": "v"}, "spec": {
        **spec, "hostPath": {"path": "/srv"}, "local": {"path": "/srv"}}})
    default_persistent_volume(two)
    assert _errors(validate_persistent_volume(two)) == [
        "spec.local: Forbidden: may not specify more than 1 volume type",
        "spec.nodeAffinity: Required value: Local volume requires node affinity"]


def test_an_ingress_needs_rules_or_a_backend_and_each_path_a_type_and_port() -> None:
    empty = from_dict(Ingress, {"metadata": {"name": "i"}})
    assert _errors(validate_ingress(empty)) == [
        "spec: Invalid value: either `defaultBackend` or `rules` must be specified"]
    paths = [{"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 0}}}},
             {"path": "/", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]
    ingress = from_dict(Ingress, {"metadata": {"name": "i"}, "spec": {"rules": [{"http": {"paths": paths}}]}})
    assert _errors(validate_ingress(ingress)) == [
        'spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path',
        "spec.rules[0].http.paths[0].backend.service.port: Required value: port name or number is required",
        "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified"]
