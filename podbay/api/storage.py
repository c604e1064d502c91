"""core/v1 PersistentVolume and PersistentVolumeClaim as stored objects, with Kubernetes'
defaulting and the validation of their required fields (pkg/apis/core/validation).

podbay runs no PersistentVolume binder and no provisioner: a claim stays Pending and a volume
stays as created, exactly as on a cluster whose storage class has no provisioner (see
docs/support.md). Pods cannot mount claims (validation refuses persistentVolumeClaim volumes)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from podbay.api.apps import LabelSelector
from podbay.api.base import Model, Quantity
from podbay.api.errors import FieldError
from podbay.api.models import HostPathVolumeSource, NodeSelector, ObjectMeta, ObjectReference
from podbay.api.quantity import parse_quantity
from podbay.api.validation import validate_metadata

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
RECLAIM_POLICIES = ("Retain", "Delete", "Recycle")
VOLUME_MODES = ("Block", "Filesystem")


class LocalVolumeSource(Model):
    path: str = ""
    fs_type: str | None = None


class VolumeNodeAffinity(Model):
    required: NodeSelector | None = None


class PersistentVolumeSpec(Model):
    capacity: dict[str, Quantity] = Field(default_factory=dict)
    access_modes: list[str] = Field(default_factory=list)
    claim_ref: ObjectReference | None = None
    persistent_volume_reclaim_policy: str | None = None
    storage_class_name: str | None = None
    mount_options: list[str] = Field(default_factory=list)
    volume_mode: str | None = None
    node_affinity: VolumeNodeAffinity | None = None
    volume_attributes_class_name: str | None = None
    host_path: HostPathVolumeSource | None = None
    local: LocalVolumeSource | None = None
    # Sources of remote storage: stored as given, checked only for being the one source.
    nfs: dict[str, Any] | None = None
    csi: dict[str, Any] | None = None
    iscsi: dict[str, Any] | None = None
    fc: dict[str, Any] | None = None
    rbd: dict[str, Any] | None = None
    cephfs: dict[str, Any] | None = None


class PersistentVolumeStatus(Model):
    phase: str | None = None
    message: str | None = None
    reason: str | None = None


class PersistentVolume(Model):
    """A piece of storage in the cluster; podbay stores it and binds nothing to it."""
    api_version: Literal["v1"] = "v1"
    kind: Literal["PersistentVolume"] = "PersistentVolume"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PersistentVolumeSpec = Field(default_factory=PersistentVolumeSpec)
    status: PersistentVolumeStatus = Field(default_factory=PersistentVolumeStatus)


class TypedLocalObjectReference(Model):
    api_group: str | None = None
    kind: str = ""
    name: str = ""


class VolumeResourceRequirements(Model):
    limits: dict[str, Quantity] = Field(default_factory=dict)
    requests: dict[str, Quantity] = Field(default_factory=dict)


class PersistentVolumeClaimSpec(Model):
    access_modes: list[str] = Field(default_factory=list)
    selector: LabelSelector | None = None
    resources: VolumeResourceRequirements = Field(default_factory=VolumeResourceRequirements)
    volume_name: str | None = None
    storage_class_name: str | None = None
    volume_mode: str | None = None
    data_source: TypedLocalObjectReference | None = None
    data_source_ref: dict[str, Any] | None = None
    volume_attributes_class_name: str | None = None


class PersistentVolumeClaimStatus(Model):
    phase: str | None = None
    access_modes: list[str] = Field(default_factory=list)
    capacity: dict[str, Quantity] = Field(default_factory=dict)


class PersistentVolumeClaim(Model):
    """A user's request for storage; without a provisioner or a matching volume it stays Pending."""
    api_version: Literal["v1"] = "v1"
    kind: Literal["PersistentVolumeClaim"] = "PersistentVolumeClaim"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PersistentVolumeClaimSpec = Field(default_factory=PersistentVolumeClaimSpec)
    status: PersistentVolumeClaimStatus = Field(default_factory=PersistentVolumeClaimStatus)


def _access_modes(path: str, modes: list[str]) -> list[FieldError]:
    if not modes:
        return [FieldError(path, None, "Required value: at least 1 access mode is required")]
    return [FieldError(path, mode, "Unsupported value: supported values: " + ", ".join(f'"{m}"' for m in ACCESS_MODES))
            for mode in modes if mode not in ACCESS_MODES]


def _storage(path: str, quantities: dict[str, str]) -> list[FieldError]:
    if "storage" not in quantities:
        return [FieldError(f"{path}[storage]", None, "Required value")]
    try:
        size = parse_quantity(quantities["storage"])
    except ValueError as exc:
        return [FieldError(f"{path}[storage]", quantities["storage"], str(exc))]
    if size <= 0:
        return [FieldError(f"{path}[storage]", quantities["storage"], "Invalid value: must be greater than zero")]
    return []


def _volume_mode(path: str, mode: str | None) -> list[FieldError]:
    if mode is not None and mode not in VOLUME_MODES:
        return [FieldError(path, mode, 'Unsupported value: supported values: "Block", "Filesystem"')]
    return []


def default_persistent_volume(pv: PersistentVolume) -> None:
    """SetDefaults_PersistentVolume."""
    if pv.spec.persistent_volume_reclaim_policy is None:
        pv.spec.persistent_volume_reclaim_policy = "Retain"
    if pv.spec.volume_mode is None:
        pv.spec.volume_mode = "Filesystem"


def validate_persistent_volume(pv: PersistentVolume) -> list[FieldError]:
    errors = validate_metadata(pv.metadata, namespaced=False)
    spec = pv.spec
    errors += _access_modes("spec.accessModes", spec.access_modes)
    errors += _storage("spec.capacity", spec.capacity)
    if spec.persistent_volume_reclaim_policy not in RECLAIM_POLICIES:
        errors.append(FieldError("spec.persistentVolumeReclaimPolicy", spec.persistent_volume_reclaim_policy,
                                 'Unsupported value: supported values: "Delete", "Recycle", "Retain"'))
    errors += _volume_mode("spec.volumeMode", spec.volume_mode)
    sources = [name for name in ("host_path", "local", "nfs", "csi", "iscsi", "fc", "rbd", "cephfs")
               if getattr(spec, name) is not None]
    if not sources:
        errors.append(FieldError("spec", None, "Required value: must specify a volume type"))
    elif len(sources) > 1:
        errors.append(FieldError(f"spec.{PersistentVolumeSpec.model_fields[sources[1]].alias}", None,
                                 "Forbidden: may not specify more than 1 volume type"))
    if spec.host_path is not None and not spec.host_path.path:
        errors.append(FieldError("spec.hostPath.path", None, "Required value"))
    if spec.local is not None:
        if not spec.local.path:
            errors.append(FieldError("spec.local.path", None, "Required value"))
        if spec.node_affinity is None:
            errors.append(FieldError("spec.nodeAffinity", None, "Required value: Local volume requires node affinity"))
    return errors


def default_persistent_volume_claim(pvc: PersistentVolumeClaim) -> None:
    """SetDefaults_PersistentVolumeClaimSpec."""
    if pvc.spec.volume_mode is None:
        pvc.spec.volume_mode = "Filesystem"


def validate_persistent_volume_claim(pvc: PersistentVolumeClaim) -> list[FieldError]:
    errors = validate_metadata(pvc.metadata)
    errors += _access_modes("spec.accessModes", pvc.spec.access_modes)
    errors += _storage("spec.resources.requests", pvc.spec.resources.requests)
    errors += _volume_mode("spec.volumeMode", pvc.spec.volume_mode)
    return errors


def validate_persistent_volume_claim_update(new: PersistentVolumeClaim,
                                            old: PersistentVolumeClaim) -> list[FieldError]:
    """ValidatePersistentVolumeClaimUpdate: an unbound claim's spec cannot change."""
    if new.spec != old.spec:
        return [FieldError("spec", None, "Forbidden: spec is immutable after creation except resources.requests "
                                         "and volumeAttributesClassName for bound claims")]
    return []
