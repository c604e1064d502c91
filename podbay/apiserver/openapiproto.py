"""The Swagger 2.0 document in gnostic's protobuf encoding (openapi_v2.Document), the
`application/com.github.proto-openapi.spec.v2@v1.0+protobuf` answer of /openapi/v2.

client-go's discovery asks /openapi/v2 for this encoding only and has no JSON fallback, and
kubectl up to 1.28 reads it to learn whether the server validates fields and to look up
schemas; so the server must speak it. The encoder covers the parts of the message set
(github.com/google/gnostic openapiv2/OpenAPIv2.proto) that podbay's documents use, with
that file's field numbers; vendor extensions travel as YAML text, which JSON is.
"""
from __future__ import annotations

import json
import typing

Json = dict[str, object]

_VARINT, _LENGTH = 0, 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


class _Message:
    """A message being written; proto3 leaves default values (empty, false) out."""

    def __init__(self) -> None:
        self.data = bytearray()

    def string(self, field: int, value: object) -> None:
        if isinstance(value, str) and value:
            self.bytes(field, value.encode())

    def strings(self, field: int, values: object) -> None:
        for value in typing.cast(list[str], values or []):
            self.bytes(field, value.encode())

    def boolean(self, field: int, value: object) -> None:
        if value:
            self.data += _varint(field << 3 | _VARINT) + b"\x01"

    def message(self, field: int, message: "_Message") -> None:
        self.bytes(field, bytes(message.data))

    def bytes(self, field: int, value: bytes) -> None:
        self.data += _varint(field << 3 | _LENGTH) + _varint(len(value)) + value


def _named(field: int, name: str, value: _Message) -> _Message:
    entry = _Message()
    entry.string(1, name)
    entry.message(2, value)
    out = _Message()
    out.message(field, entry)
    return out


def _extensions(out: _Message, field: int, node: Json) -> None:
    for key, value in node.items():
        if key.startswith("x-"):
            any_ = _Message()
            any_.string(2, json.dumps(value))  # Any.yaml
            named = _Message()
            named.string(1, key)
            named.message(2, any_)
            out.message(field, named)


def _schema(node: Json) -> _Message:
    out = _Message()
    out.string(1, node.get("$ref"))
    out.string(2, node.get("format"))
    out.string(4, node.get("description"))
    out.strings(19, node.get("required"))
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        item = _Message()
        item.message(1, _schema(additional))
        out.message(21, item)
    if "type" in node:
        type_item = _Message()
        type_item.strings(1, [node["type"]])
        out.message(22, type_item)
    items = node.get("items")
    if isinstance(items, dict):
        items_item = _Message()
        items_item.message(1, _schema(items))
        out.message(23, items_item)
    properties = typing.cast(dict[str, Json], node.get("properties") or {})
    if properties:
        props = _Message()
        for name, value in properties.items():
            props.data += _named(1, name, _schema(value)).data
        out.message(25, props)
    _extensions(out, 31, node)
    return out


def _parameter(node: Json) -> _Message:
    parameter = _Message()
    if node["in"] == "body":
        body = _Message()
        body.string(1, node.get("description"))
        body.string(2, node["name"])
        body.string(3, "body")
        body.boolean(4, node.get("required"))
        body.message(5, _schema(typing.cast(Json, node["schema"])))
        parameter.message(1, body)
    else:
        sub = _Message()
        sub.boolean(1, node.get("required"))
        sub.string(2, node["in"])
        sub.string(3, node.get("description"))
        sub.string(4, node["name"])
        if node["in"] == "query":  # QueryParameterSubSchema: type 6, uniqueItems 20
            sub.string(6, node.get("type"))
            sub.boolean(20, node.get("uniqueItems"))
        else:  # PathParameterSubSchema: type 5, uniqueItems 19
            sub.string(5, node.get("type"))
            sub.boolean(19, node.get("uniqueItems"))
        non_body = _Message()
        non_body.message(3 if node["in"] == "query" else 4, sub)
        parameter.message(2, non_body)
    item = _Message()
    item.message(1, parameter)
    return item


def _operation(node: Json) -> _Message:
    out = _Message()
    out.strings(1, node.get("tags"))
    out.string(3, node.get("description"))
    out.string(5, node.get("operationId"))
    out.strings(6, node.get("produces"))
    out.strings(7, node.get("consumes"))
    for parameter in typing.cast(list[Json], node.get("parameters") or []):
        out.message(8, _parameter(parameter))
    responses = _Message()
    for code, response in typing.cast(dict[str, Json], node.get("responses") or {}).items():
        value = _Message()
        value.string(1, response.get("description"))
        if "schema" in response:
            schema_item = _Message()
            schema_item.message(1, _schema(typing.cast(Json, response["schema"])))
            value.message(2, schema_item)
        response_value = _Message()
        response_value.message(1, value)
        responses.data += _named(1, code, response_value).data
    out.message(9, responses)
    out.strings(10, node.get("schemes"))
    _extensions(out, 13, node)
    return out


_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}


def _path_item(node: Json) -> _Message:
    out = _Message()
    for method, field in _METHODS.items():
        if method in node:
            out.message(field, _operation(typing.cast(Json, node[method])))
    for parameter in typing.cast(list[Json], node.get("parameters") or []):
        out.message(9, _parameter(parameter))
    return out


def encode_document(swagger: Json) -> bytes:
    """openapi_v2.Document for a Swagger 2.0 document as `podbay.apiserver.openapi` builds it."""
    out = _Message()
    out.string(1, swagger["swagger"])
    info = _Message()
    info_json = typing.cast(Json, swagger["info"])
    info.string(1, info_json["title"])
    info.string(2, info_json["version"])
    out.message(2, info)
    paths = _Message()
    for path, path_node in typing.cast(dict[str, Json], swagger["paths"]).items():
        paths.data += _named(2, path, _path_item(path_node)).data
    out.message(8, paths)
    definitions = _Message()
    for name, schema in typing.cast(dict[str, Json], swagger["definitions"]).items():
        definitions.data += _named(1, name, _schema(schema)).data
    out.message(9, definitions)
    for requirement in typing.cast(list[dict[str, list[str]]], swagger.get("security") or []):
        entries = _Message()
        for name, scopes in requirement.items():
            array = _Message()
            array.strings(1, scopes)
            entries.data += _named(1, name, array).data
        out.message(12, entries)
    security = _Message()
    for name, scheme in typing.cast(dict[str, Json], swagger.get("securityDefinitions") or {}).items():
        api_key = _Message()
        api_key.string(1, scheme.get("type"))
        api_key.string(2, scheme.get("name"))
        api_key.string(3, scheme.get("in"))
        api_key.string(4, scheme.get("description"))
        item = _Message()
        item.message(2, api_key)
        security.data += _named(1, name, item).data
    out.message(13, security)
    return bytes(out.data)
