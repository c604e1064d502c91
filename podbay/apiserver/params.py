"""Client input read with bounds: JSON bodies and query parameters.

Every failure is a `BadRequest` (400) naming what was wrong, the way
kube-apiserver answers a body or parameter it cannot decode, so bad input
never reaches code that would fail with a 500.
"""
from __future__ import annotations

import json
import operator
import re
from itertools import accumulate, repeat
from typing import Any, Mapping

import yaml

from podbay.api.errors import BadRequest

# kube-apiserver accepts 10000 levels of JSON nesting. podbay processes a body with
# recursive Python (json, copy.deepcopy, the patch functions), each level costing up
# to three interpreter frames, so the bound sits well under the interpreter's
# recursion limit; no core/v1 object podbay serves nests deeper than about 20 levels.
MAX_JSON_DEPTH = 100
# Every request body, PATCH included (aiohttp answers 413 beyond it), and what JSON
# patch copies may add to a document.
MAX_BODY_BYTES = 8 * 1024 * 1024
# kube-apiserver's maxJSONPatchOperations.
MAX_JSON_PATCH_OPERATIONS = 10_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Opening brackets to 2 and closing to 0, so that (byte - 1) is the change in depth.
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_depth(raw: bytes) -> int:
    """The deepest nesting of `raw`'s arrays and objects, brackets in strings not counted.

    Runs in C-implemented loops (regex, translate, accumulate) with no recursion,
    so it is safe on any input the body size limit lets through."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS).translate(_DEPTH_STEP)
    return max(accumulate(map(operator.sub, brackets, repeat(1))), default=0)


def decode_json(raw: bytes) -> Any:
    """The request body as JSON (None when empty), refusing bodies nested too deeply."""
    if not raw:
        return None
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise BadRequest(
            f"the body of the request could not be decoded as JSON: exceeded max depth of {MAX_JSON_DEPTH}"
        )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body of the request could not be decoded as JSON: {exc}") from None


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: an alias can multiply a bounded body without bound."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise BadRequest("the body of the request could not be decoded as YAML: aliases are not allowed")
        return super().compose_node(parent, index)


def _value_depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [c for v in level if isinstance(v, (dict, list)) for c in (v.values() if isinstance(v, dict) else v)]
    return depth - 1


def decode_yaml(raw: bytes) -> Any:
    """A server-side apply body: YAML (JSON is YAML too, and what kubectl sends), bounded as
    JSON bodies are (depth, no aliases)."""
    if raw.lstrip()[:1] in (b"{", b"["):
        return decode_json(raw)
    try:
        value = yaml.load(raw, Loader=_NoAliasLoader)
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body of the request could not be decoded as YAML: {str(exc)[:256]}") from None
    if _value_depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"the body of the request could not be decoded as YAML: exceeded max depth of {MAX_JSON_DEPTH}")
    return value


def int64_param(query: Mapping[str, str], name: str) -> int | None:
    """An integer query parameter as Go's strconv.ParseInt(s, 10, 64) reads it."""
    value = query.get(name)
    if value in (None, ""):
        return None
    return parse_int64(value, name)


def parse_int64(value: str, name: str) -> int:
    # int() would also take "1_000", " 1" and non-ASCII digits, which Go refuses.
    if not re.fullmatch(r"[+-]?[0-9]{1,20}", value) or not INT64_MIN <= int(value) <= INT64_MAX:
        raise BadRequest(f'invalid value for {name}: "{value[:64]}": must be a 64-bit integer')
    return int(value)


def resource_version_param(query: Mapping[str, str]) -> str:
    """`resourceVersion`: empty, or a revision as storage parses it (an unsigned 64-bit integer)."""
    value = query.get("resourceVersion") or ""
    if value and (not re.fullmatch(r"[0-9]{1,20}", value) or int(value) > UINT64_MAX):
        raise BadRequest(f'invalid resource version: resourceVersion "{value[:64]}" is not an unsigned 64-bit integer')
    return value


def json_int64(value: Any, field: str, kind: str) -> int:
    """A JSON body's int64 field, refused as Go's decoder refuses a string, a fraction or a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()
    ) or not INT64_MIN <= value <= INT64_MAX:
        raise BadRequest(
            f"json: cannot unmarshal {json_type(value)} into Go struct field {kind}.{field} of type int64"
        )
    return int(value)


def json_string(value: Any, field: str, kind: str) -> str | None:
    """A JSON body's optional string field."""
    if value is None or isinstance(value, str):
        return value
    raise BadRequest(f"json: cannot unmarshal {json_type(value)} into Go struct field {kind}.{field} of type string")


def json_object(value: Any, field: str, kind: str, go_type: str) -> dict[str, Any]:
    """A JSON body's optional object field ({} when absent)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise BadRequest(f"json: cannot unmarshal {json_type(value)} into Go struct field {kind}.{field} of type {go_type}")


def json_type(value: Any) -> str:
    """The JSON type's name as Go's decoder reports it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"
