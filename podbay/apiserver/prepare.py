"""The object a create or an update stores, as kube-apiserver's rest.BeforeCreate and
BeforeUpdate make it: the fields only the server sets, the subresource's part of the change,
then decoding, validation and the strategy's hooks."""
from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any, Callable

from podbay.api.base import rfc3339
from podbay.api.errors import BadRequest, FieldError, NotFound
from podbay.api.kinds import ResourceInfo
from podbay.api.serialize import from_dict
from podbay.apiserver.decoding import normalise, normalised
from podbay.apiserver.fieldmanager import WriteOptions
from podbay.apiserver.meta import object_meta
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies import Strategy, strategy_for

# Kubernetes' name generator alphabet (no vowels, no confusable digits).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Metadata only the server sets: an update keeps the stored values.
_SERVER_FIELDS = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "resourceVersion")


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def name_errors(strategy: Strategy, name: str) -> list[FieldError]:
    if not name:
        return [FieldError("metadata.name", "", "Required value: name or generateName is required")]
    return strategy.validate_name(name)


def prepare_create(info: ResourceInfo, obj: dict[str, Any], clock: Callable[[], datetime],
                   options: WriteOptions | None = None) -> dict[str, Any]:
    """The object to store for `obj`, which is the caller's own copy (`check_type`'s) and is
    changed in place: the result is a new dict, so no second copy is made here."""
    meta = obj["metadata"]
    if options is not None and "managedFields" in meta and not isinstance(meta["managedFields"], list):
        raise BadRequest("metadata.managedFields: must be a list")
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(field, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = rfc3339(clock())
    strategy = strategy_for(info.name)
    strategy.prepare_for_create(info, obj)
    model, out = normalised(info, obj, meta["name"], options)
    strategy.canonicalize_create(out, model)
    return out


def prepare_update(info: ResourceInfo, new: dict[str, Any], old: dict[str, Any], subresource: str | None,
                   options: WriteOptions | None = None) -> dict[str, Any]:
    meta, old_meta = object_meta(new), old["metadata"]
    if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
        # ValidateObjectMetaUpdate; an absent uid keeps the stored one, as BeforeUpdate does.
        raise ObjectInvalid(info.kind, old_meta["name"],
                            [FieldError("metadata.uid", meta["uid"], "Invalid value: field is immutable")])
    for field in _SERVER_FIELDS:
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    new = _subresource_update(info, new, old, subresource)
    name = old_meta["name"]
    out = normalise(info, new, name, options)
    strategy = strategy_for(info.name)
    errors = strategy.validate_update(out, old, subresource)
    if errors:
        raise ObjectInvalid(info.kind, name, errors)
    if info.validate_update is not None and subresource is None:
        errors = info.validate_update(from_dict(info.model, out, strict=False),
                                      from_dict(info.model, old, strict=False))
        if errors:
            raise ObjectInvalid(info.kind, name, errors)
    if (strategy.generation or info.generation) and subresource is None and out.get("spec") != old.get("spec"):
        out["metadata"]["generation"] = old_meta.get("generation", 1) + 1
    return out


def _subresource_update(info: ResourceInfo, new: dict[str, Any], old: dict[str, Any],
                        subresource: str | None) -> dict[str, Any]:
    """What of `new` a write through `subresource` may change, the rest the stored `old`'s."""
    if subresource == "status":
        # ResetObjectMetaForStatus and the status strategies: only status changes.
        # Shared with `old` without a copy: what follows only reads it and builds anew.
        return {**old, "status": new.get("status", {})}
    if subresource == "ephemeralcontainers":
        # dropNonEphemeralContainerUpdates (with ResetObjectMetaForStatus): the stored pod with
        # only its ephemeral containers taken.
        given = new.get("spec")
        spec = given if isinstance(given, dict) else {}
        return {**old, "spec": {**old.get("spec", {}), "ephemeralContainers": spec.get("ephemeralContainers") or []}}
    if subresource is None:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
        return new
    raise NotFound(f'the server could not find the requested resource ({info.name}/{subresource})')


def unchanged(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether a write changes nothing but managedFields' times: then it is not written, as
    kube-apiserver leaves an object a no-op update or apply does not change."""
    def timeless(obj: dict[str, Any]) -> dict[str, Any]:
        entries = [{k: v for k, v in e.items() if k != "time"} for e in obj["metadata"].get("managedFields", [])]
        return {**obj, "metadata": {**obj["metadata"], "managedFields": entries}}
    return new == old or timeless(new) == timeless(old)
