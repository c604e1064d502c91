"""Owner references and deletion propagation as the API server handles them for the garbage
collector (apimachinery's ValidateOwnerReferences; the generic registry's
deletionFinalizersForGarbageCollection): pure rules over metadata."""
from __future__ import annotations

from typing import Literal

from podbay.api.errors import FieldError
from podbay.api.models import ObjectMeta

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
PropagationPolicy = Literal["Orphan", "Background", "Foreground"]
PROPAGATION_POLICIES: tuple[PropagationPolicy, ...] = ("Foreground", "Background", "Orphan")


def validate_owner_references(meta: ObjectMeta, path: str = "metadata.ownerReferences") -> list[FieldError]:
    """apiVersion, kind, name and uid are required; at most one reference is the controller.
    Kubernetes names the list itself (no index) in these errors."""
    errs: list[FieldError] = []
    controllers: list[str] = []
    for ref in meta.owner_references:
        version = ref.api_version.rpartition("/")[2]
        if not version:
            errs.append(FieldError(f"{path}.apiVersion", ref.api_version, "Invalid value: version must not be empty"))
        if not ref.kind:
            errs.append(FieldError(f"{path}.kind", ref.kind, "Invalid value: kind must not be empty"))
        if not ref.name:
            errs.append(FieldError(f"{path}.name", ref.name, "Invalid value: name must not be empty"))
        if not ref.uid:
            errs.append(FieldError(f"{path}.uid", ref.uid, "Invalid value: uid must not be empty"))
        if ref.controller:
            controllers.append(f"{ref.kind}/{ref.name}")
    if len(controllers) > 1:
        errs.append(FieldError(path, None, "Invalid value: Only one reference can have Controller set to true. "
                               f"Found \"true\" in references for {' and '.join(controllers)}"))
    return errs


def deletion_finalizers(finalizers: list[str], default: PropagationPolicy, policy: PropagationPolicy | None,
                        orphan_dependents: bool | None) -> list[str]:
    """The finalizers an object keeps when deleted with `policy` (or the legacy `orphan_dependents`):
    Orphan adds `orphan`, Foreground adds `foregroundDeletion`, Background adds neither; without
    either option a finalizer already there decides, then the kind's default policy."""
    if orphan_dependents is not None:
        orphan, foreground = orphan_dependents, False
    elif policy is not None:
        orphan, foreground = policy == "Orphan", policy == "Foreground"
    elif ORPHAN_FINALIZER in finalizers or FOREGROUND_FINALIZER in finalizers:
        orphan, foreground = ORPHAN_FINALIZER in finalizers, FOREGROUND_FINALIZER in finalizers
    else:
        orphan, foreground = default == "Orphan", False
    kept = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if orphan:
        kept.append(ORPHAN_FINALIZER)
    if foreground:
        kept.append(FOREGROUND_FINALIZER)
    if sorted(kept) == sorted(finalizers):
        return finalizers
    return kept
