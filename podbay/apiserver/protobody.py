"""Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`).

kubectl from 1.32 on sends the objects of its typed clients (`kubectl create deployment|job|
configmap|secret|namespace|service|ingress|cronjob`, `kubectl debug --copy-to`) and their
DeleteOptions (`kubectl drain`) as protobuf,
whatever the server's discovery says, and does not retry as JSON. This decodes any kind podbay
serves into the JSON form the registry takes: the envelope (`k8s\\0` + runtime.Unknown), then the
object, with the field numbers of Kubernetes' generated.proto (protofields.FIELDS) and the field
types of podbay's own models. A set field that the table or the model does not know is refused
with 415 rather than dropped."""
from __future__ import annotations

import base64
import functools
import types
import typing
from datetime import datetime, timezone
from typing import Any, Literal, Union

from pydantic import BaseModel

from podbay.api import base
from podbay.api.kinds import ALL_RESOURCES
from podbay.api.options import DeleteOptions
from podbay.apiserver.protofields import FIELDS

MAGIC = b"k8s\x00"
# Option kinds sent as bodies (typed clients' Delete: `kubectl drain`), by envelope apiVersion and kind.
_OPTIONS: dict[tuple[str, str], type[BaseModel]] = {
    ("v1", "DeleteOptions"): DeleteOptions, ("meta.k8s.io/v1", "DeleteOptions"): DeleteOptions}


class Undecodable(ValueError):
    pass


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise Undecodable("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise Undecodable("truncated field")
            out.append((number, data[at:at + length]))
            at += length
        else:
            raise Undecodable(f"wire type {wire} of field {number}")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes(item: int | bytes, where: str) -> bytes:
    if not isinstance(item, bytes):
        raise Undecodable(f"{where}: unexpected encoding")
    return item


def _int(item: int | bytes, where: str) -> int:
    if not isinstance(item, int):
        raise Undecodable(f"{where}: unexpected encoding")
    return _signed(item)


@functools.cache
def _model_fields(model: type[BaseModel]) -> dict[str, object]:
    """The model's field types by JSON name, `X | None` read as X."""
    hints = typing.get_type_hints(model, include_extras=True)
    out: dict[str, object] = {}
    for attribute, field in model.model_fields.items():
        annotation = hints[attribute]
        if typing.get_origin(annotation) in (Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = rest[0] if len(rest) == 1 else Union[tuple(rest)]
        out[field.alias or attribute] = annotation
    return out


def _time(item: int | bytes, where: str, micro: bool) -> str | None:
    parts = dict(_fields(_bytes(item, where)))
    seconds, nanos = _int(parts.get(1, 0), where), _int(parts.get(2, 0), where)
    if not seconds and not nanos:
        return None
    moment = datetime.fromtimestamp(seconds + nanos / 1e9, timezone.utc)
    return base.rfc3339_micro(moment) if micro else base.rfc3339(moment)


def _value(annotation: object, item: int | bytes, where: str, raw_bytes: bool) -> Any:
    """One encoded value as the JSON the model's `annotation` reads."""
    if annotation is base.Time or annotation is base.MicroTime:
        return _time(item, where, annotation is base.MicroTime)
    if annotation is base.Quantity:
        return _value(str, dict(_fields(_bytes(item, where))).get(1, b""), where, False)
    if annotation is base.IntOrString or set(typing.get_args(annotation)) == {int, str}:
        parts = dict(_fields(_bytes(item, where)))
        if parts.get(1, 0) == 1:
            return _value(str, parts.get(3, b""), where, False)
        return _int(parts.get(2, 0), where)
    if typing.get_origin(annotation) is Literal or annotation is str:
        raw = _bytes(item, where)
        return base64.b64encode(raw).decode() if raw_bytes else raw.decode()
    if annotation is bool:
        return bool(_int(item, where))
    if annotation is int:
        return _int(item, where)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _message(annotation, annotation.__name__, _bytes(item, where), where)
    if item in (b"", 0):  # an empty message of a type the model leaves open: Go's zero value
        return None
    raise Undecodable(f"{where}: this field is not supported in protobuf")


def _zero(value: Any) -> bool:
    return value in (None, "", 0, {}, [])  # False == 0


def _message(model: type[BaseModel], message: str, data: bytes, where: str,
             only: frozenset[str] | None = None) -> dict[str, Any]:
    """`data`, a `message`, as the JSON of `model` (which may be the message's enclosing model:
    Go's embedded structs are inlined)."""
    table = FIELDS.get(message)
    if table is None:
        raise Undecodable(f"{where or message}: {message} is not supported in protobuf")
    known = _model_fields(model)
    out: dict[str, Any] = {}
    for number, item in _fields(data):
        entry = table.get(number)
        if entry is not None and entry.startswith("^"):
            out.update(_message(model, entry[1:], _bytes(item, where), where))
            continue
        name = (entry or "").rstrip("~?")
        if only is not None and name not in only:
            continue
        path = f"{where}.{name}" if where else name
        if entry is None or name not in known:
            if item in (0, b""):  # Go encodes its zero values; JSON would leave them out
                continue
            raise Undecodable(f"{path if entry else f'{where or message}: field {number}'} is not supported")
        annotation, pointer, raw_bytes = known[name], entry.endswith("?"), entry.endswith("~")
        origin = typing.get_origin(annotation)
        if origin is list:
            [element] = typing.get_args(annotation)
            values = out.setdefault(name, [])
            if element is int and isinstance(item, bytes):  # a packed repeated integer
                values += [_int(v, path) for _, v in _fields(_pack(item))]
            else:
                values.append(_value(element, item, f"{path}[{len(values)}]", raw_bytes))
        elif origin is dict and typing.get_args(annotation)[1] is not Any:  # a map, not an open message
            value_type = typing.get_args(annotation)[1]
            entry_fields = dict(_fields(_bytes(item, path)))
            key = _value(str, entry_fields.get(1, b""), path, False)
            out.setdefault(name, {})[key] = _value(value_type, entry_fields.get(2, b""), f"{path}[{key}]", raw_bytes)
        else:
            value = _value(annotation, item, path, raw_bytes)
            if pointer or not _zero(value):
                out[name] = value
            else:
                out.pop(name, None)
    return out


def _pack(data: bytes) -> bytes:
    """Packed varints re-keyed as field 1, so that `_fields` reads them one by one."""
    out, at = bytearray(), 0
    while at < len(data):
        start = at
        _, at = _varint(data, at)
        out += b"\x08" + data[start:at]
    return bytes(out)


def decode(body: bytes, metadata_only: bool = False) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of a kind podbay serves; Undecodable otherwise.
    `metadata_only`: the rest is skipped (for kinds that admission refuses whatever they hold)."""
    try:
        return _decode(body, metadata_only)
    except Undecodable:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # bytes that are not what they claim
        raise Undecodable(f"malformed protobuf: {exc}") from None


def _decode(body: bytes, metadata_only: bool) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise Undecodable("the body does not start with the protobuf magic")
    api_version = kind = ""
    raw = b""
    for number, item in _fields(body[len(MAGIC):]):
        if number == 1 and isinstance(item, bytes):
            meta = {n: v for n, v in _fields(item)}
            api_version = _value(str, meta.get(1, b""), "apiVersion", False)
            kind = _value(str, meta.get(2, b""), "kind", False)
        elif number == 2 and isinstance(item, bytes):
            raw = item
        elif number == 3 and item not in (b"", 0):
            raise Undecodable("content encodings are not supported")
    info = next((i for i in ALL_RESOURCES.values() if (i.api_version, i.kind) == (api_version, kind)), None)
    model = info.model if info is not None else _OPTIONS.get((api_version, kind))
    if model is None:
        raise Undecodable(f"{api_version} {kind} in protobuf is not supported")
    only = frozenset({"metadata"}) if metadata_only else None
    return {"apiVersion": api_version, "kind": kind, **_message(model, kind, raw, "", only)}
