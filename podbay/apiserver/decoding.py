"""A write's body made the object the registry stores, as kube-apiserver's handlers decode it:
the kind and name the request names, unknown fields as fieldValidation says, then the model's
defaults and validation and the resource strategy's."""
from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from podbay.api.errors import BadRequest, Forbidden, Invalid
from podbay.api.kinds import ResourceInfo
from podbay.api.owners import validate_owner_references
from podbay.api.serialize import from_dict, to_dict, unknown_fields
from podbay.apiserver.fieldmanager import WriteOptions
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies import strategy_for


def check_type(info: ResourceInfo, body: Any) -> dict[str, Any]:
    """A copy of `body`, refused unless it is an object of `info`'s kind and version (or names none)."""
    if not isinstance(body, dict):
        raise BadRequest(f"the body of the request must be a {info.kind} object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", info.kind) or api_version not in (None, "", info.api_version):
        raise BadRequest(
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json (got {api_version}/{kind}, want {info.api_version}/{info.kind})"
        )
    typed: dict[str, Any] = copy.deepcopy(body)
    typed["kind"], typed["apiVersion"] = info.kind, info.api_version
    return typed


def check_name(info: ResourceInfo, meta: dict[str, Any], namespace: str, name: str, required: bool) -> None:
    """kube-apiserver's checkName: the object names what the URL names. An update may leave
    the name out (the URL's is kept); a patch's result may not."""
    if (required or meta.get("name")) and meta.get("name") != name:
        raise BadRequest(f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})")
    if info.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
        raise BadRequest(
            f"the namespace of the object ({meta['namespace']}) does not match the namespace on the request ({namespace})"
        )


def drop_unknown(info: ResourceInfo, obj: dict[str, Any], options: WriteOptions | None) -> dict[str, Any]:
    """`obj` without the fields the schema does not know, as the request's fieldValidation
    says: Strict refuses them (kube's strict decoding error), Warn drops them with a warning
    each, Ignore drops them. Without options (the server's own writes): Strict."""
    unknown = unknown_fields(info.model, obj)
    if not unknown:
        return obj
    validation = options.validation if options else "Strict"
    if validation == "Strict":
        listed = ", ".join(f'unknown field "{e.path}"' for e in unknown)
        raise BadRequest(f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                         f"strict decoding error: {listed}")
    obj = copy.deepcopy(obj)  # `obj` may share parts with the stored object
    unknown_fields(info.model, obj, drop=True)
    if validation == "Warn" and options is not None:
        options.warnings += [f'unknown field "{e.path}"' for e in unknown]
    return obj


def normalise(info: ResourceInfo, obj: dict[str, Any], name: str,
              options: WriteOptions | None = None) -> dict[str, Any]:
    """Parses through the model (unknown fields as fieldValidation says), defaults and validates."""
    return normalised(info, obj, name, options)[1]


def normalised(info: ResourceInfo, obj: dict[str, Any], name: str,
               options: WriteOptions | None = None) -> tuple[BaseModel, dict[str, Any]]:
    """`normalise`'s result and the model it was written from (defaulted and valid)."""
    if info.denied:
        group = f".{info.group}" if info.group else ""
        raise Forbidden(f'{info.name}{group} "{name}" is forbidden: {info.denied}', kind=info.name, name=name)
    obj = drop_unknown(info, obj, options)
    try:
        model = from_dict(info.model, obj, strict=False)
    except Invalid as exc:
        raise ObjectInvalid(info.kind, name, list(exc.errors)) from None
    meta_errors = validate_owner_references(model.metadata)
    if meta_errors:
        raise ObjectInvalid(info.kind, name, meta_errors)
    if info.defaults is not None:
        info.defaults(model)
    if info.validate is not None:
        errors = info.validate(model)
        if errors:
            raise ObjectInvalid(info.kind, name, errors)
    strategy = strategy_for(info.name)
    strategy.default(model)
    errors = strategy.validate(model)
    if errors:
        raise ObjectInvalid(info.kind, name, errors)
    out = to_dict(model)
    out["kind"], out["apiVersion"] = info.kind, info.api_version
    return model, out
