"""Models to and from Kubernetes' JSON: camelCase, empties omitted, RFC 3339 times.

Lists and maps that are empty are omitted (Go's `omitempty`); a nested object
that is set is kept even when empty, because its presence means something
(`emptyDir: {}`).
"""
from __future__ import annotations

import functools
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from podbay.api.errors import FieldError, Invalid

M = TypeVar("M", bound=BaseModel)


def to_dict(obj: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = _keys(type(obj))
    # The instance's own dict holds its fields in declaration order (pydantic builds it so and
    # assignment keeps each key's place): most are unset, and reading them here skips a getattr each.
    for name, value in obj.__dict__.items():
        if value is None:
            continue
        if isinstance(value, (list, dict)) and not value:
            continue
        out[keys[name]] = _dump(value, obj, name)
    return out


@functools.cache
def _keys(cls: type[BaseModel]) -> dict[str, str]:
    """Each field's JSON key by attribute name: looked up once per model, not per object."""
    return {name: info.alias or name for name, info in cls.model_fields.items()}


def _dump(value: Any, owner: BaseModel, name: str) -> Any:
    if isinstance(value, BaseModel):
        return to_dict(value)
    if isinstance(value, list):
        return [to_dict(v) if isinstance(v, BaseModel) else v for v in value]
    if isinstance(value, dict):
        return {k: to_dict(v) if isinstance(v, BaseModel) else v for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)):
        return value
    # Times: the field's own serializer knows metav1.Time from MicroTime.
    return owner.__pydantic_serializer__.to_python(owner, include={name}, mode="json")[name]


def from_dict(cls: type[M], data: Any, *, strict: bool = True, path: str = "") -> M:
    """Decodes one object; every problem is a FieldError with its JSON path.

    `strict` also rejects fields the model does not know, as kubectl's strict
    field validation does, so a typo never silently disappears.
    """
    if not isinstance(data, dict):
        raise Invalid([FieldError(path or "<root>", None, f"must be an object, got {type(data).__name__}")])
    errors = unknown_fields(cls, data, path) if strict else []
    try:
        obj = cls.model_validate(data)
    except ValidationError as exc:
        errors += [_field_error(e, path) for e in exc.errors()]
    if errors:
        raise Invalid(errors)
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _field_error(err: Any, base: str) -> FieldError:
    path = base
    for part in err["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("str", "int", "bool", "float", "dict", "list", "function-before[_quantity(), str]") or "[" in str(part):
            continue
        else:
            path = _join(path, str(part))
    value = err.get("input")
    if isinstance(value, (dict, list)):
        value = None
    return FieldError(path or "<root>", value, _message(err))


_EXPECTED = {
    "int_parsing": "must be an integer", "int_type": "must be an integer",
    "int_from_float": "must be an integer", "string_type": "must be a string",
    "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "list_type": "must be a list", "dict_type": "must be an object", "model_type": "must be an object",
    "model_attributes_type": "must be an object", "literal_error": "unsupported value",
    "datetime_from_date_parsing": "must be an RFC 3339 time", "datetime_parsing": "must be an RFC 3339 time",
    "datetime_type": "must be an RFC 3339 time", "value_error": "invalid value",
}


def _message(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "literal_error":
        return f"Unsupported value: {err.get('ctx', {}).get('expected', '')}"
    return _EXPECTED.get(kind, str(err.get("msg", "invalid value")))


@functools.cache
def _wire_fields(cls: type[BaseModel]) -> dict[str, Any]:
    return {(info.alias or name): info.annotation for name, info in cls.model_fields.items()}


def unknown_fields(cls: type[BaseModel], data: dict[str, Any], path: str = "", drop: bool = False) -> list[FieldError]:
    """The fields of `data` `cls` does not know; `drop` also removes them from `data` (in place),
    as kube-apiserver's Ignore and Warn field validation do."""
    known = _wire_fields(cls)
    nested = _wire_models(cls)
    errors: list[FieldError] = []
    for key, value in list(data.items()):
        if key not in known:
            errors.append(FieldError(_join(path, key), None, "unknown field"))
            if drop:
                del data[key]
            continue
        inner = nested.get(key)
        if inner is not None and value is not None:
            errors += _unknown_in(inner, value, _join(path, key), drop)
    return errors


@functools.cache
def _wire_models(cls: type[BaseModel]) -> dict[str, tuple[type[BaseModel], str | None]]:
    """The fields holding models, with `_model_of`'s answer: a scalar field needs no look-up (an
    annotation's hash is computed anew each time) nor a path string."""
    out: dict[str, tuple[type[BaseModel], str | None]] = {}
    for key, annotation in _wire_fields(cls).items():
        model, container = _model_of(annotation)
        if model is not None:
            out[key] = (model, container)
    return out


def _unknown_in(nested: tuple[type[BaseModel], str | None], value: Any, path: str, drop: bool) -> list[FieldError]:
    model, container = nested
    if container == "list" and isinstance(value, list):
        return [e for i, v in enumerate(value) if isinstance(v, dict)
                for e in unknown_fields(model, v, f"{path}[{i}]", drop)]
    if container == "dict" and isinstance(value, dict):
        return [e for k, v in value.items() if isinstance(v, dict)
                for e in unknown_fields(model, v, f"{path}[{k}]", drop)]
    if container is None and isinstance(value, dict):
        return unknown_fields(model, value, path, drop)
    return []


@functools.cache
def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, str | None]:
    """The model type inside `X | None`, `list[X]` or `dict[str, X]`, and which wrapper."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found[0] is not None:
                return found
        return None, None
    if origin is list:
        inner, _ = _model_of(typing.get_args(annotation)[0])
        return inner, "list"
    if origin is dict:
        inner, _ = _model_of(typing.get_args(annotation)[1])
        return inner, "dict"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    return None, None
