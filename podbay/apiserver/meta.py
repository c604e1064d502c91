"""An object's metadata as the registry reads it before the model decodes the object."""
from __future__ import annotations

from typing import Any

from podbay.api.errors import BadRequest
from podbay.apiserver.params import json_type

# ObjectMeta's strings the registry reads before the model decodes the object.
_META_STRINGS = ("name", "generateName", "namespace", "uid", "resourceVersion")


def object_meta(obj: dict[str, Any]) -> dict[str, Any]:
    """The object's metadata; a type Go's decoder would refuse is a 400 naming the field."""
    kind = obj.get("kind", "")
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    cannot = f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal'
    if not isinstance(meta, dict):
        raise BadRequest(f"{cannot} {json_type(meta)} into Go struct field {kind}.metadata of type v1.ObjectMeta")
    for field in _META_STRINGS:
        if not isinstance(meta.get(field, ""), str):
            raise BadRequest(
                f"{cannot} {json_type(meta[field])} into Go struct field ObjectMeta.metadata.{field} of type string"
            )
    return meta
