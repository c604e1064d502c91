"""The OpenAPI documents kube-apiserver publishes, generated from podbay's own models.

`/openapi/v2` is one Swagger 2.0 document; `/openapi/v3` is an index of one OpenAPI 3.0
document per group version (`api/v1`, `apis/coordination.k8s.io/v1`), each served at
`/openapi/v3/<path>?hash=<its hash>` as k8s.io/kube-openapi's handler3 does. kubectl reads
them for `apply` (the strategic merge patch metadata: `x-kubernetes-patch-merge-key` and
`-strategy`), `explain`, and to learn that the server validates fields itself
(`fieldValidation`), so its own client-side validation is not needed.

Schemas come from walking the pydantic models' fields (their annotations, not pydantic's
JSON schema, whose names and shapes are not Kubernetes'), with Kubernetes' definition
names and vendor extensions. The merge keys are `podbay.apiserver.patch`'s, the table the
server merges with, so what kubectl computes is what the server applies. Documents are
built once per process (`documents()`), never per request.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import types
import typing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Literal, Union

from aiohttp import web
from pydantic import BaseModel

from podbay.api import base, models, services
from podbay.api.kinds import API_GROUPS, RESOURCES, ResourceInfo
from podbay.apiserver.discovery import KUBERNETES_VERSION
from podbay.apiserver.patch import (
    ALTERNATE_MERGE_KEYS,
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_KEYS,
    MERGE_PATCH,
    MERGED_SCALAR_LISTS,
    RETAIN_KEYS_LISTS,
    STRATEGIC_MERGE_PATCH,
)
from podbay.apiserver.openapiproto import encode_document
from podbay.apiserver.status import HTTPError

Schema = dict[str, object]

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
CORE = "io.k8s.api.core.v1"
# The Go package of each model outside core/v1, which Kubernetes' definition names carry. A model
# of a new API group is listed here with its kind.
_PACKAGES: dict[type[BaseModel], str] = {
    **{m: META for m in (models.ObjectMeta, models.ListMeta, models.OwnerReference, models.Status,
                         models.StatusDetails, models.StatusCause)},
    **{m: "io.k8s.api.coordination.v1" for m in (models.Lease, models.LeaseSpec)},
    **{m: "io.k8s.api.discovery.v1" for m in (services.EndpointSlice, services.Endpoint, services.EndpointPort,
                                               services.EndpointConditions)},
}

# Scalars and leaf types that have their own definition in Kubernetes' documents.
_LEAF_DEFINITIONS: dict[str, Schema] = {
    QUANTITY: {
        "description": "Quantity is a fixed-point representation of a number: `128974848`, `129e6`, "
                       "`129M`, `123Mi`, `0.5`, `100m`.",
        "type": "string",
    },
    INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string.",
        "type": "string",
        "format": "int-or-string",
    },
    f"{META}.Time": {
        "description": "Time is a wrapper around time.Time; it is serialized as RFC 3339 to the second.",
        "type": "string",
        "format": "date-time",
    },
    f"{META}.MicroTime": {
        "description": "MicroTime is version of Time with microsecond level precision.",
        "type": "string",
        "format": "date-time",
    },
    f"{META}.Patch": {
        "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
        "type": "object",
    },
    f"{META}.DeleteOptions": {
        "description": "DeleteOptions may be provided when deleting an API object.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "gracePeriodSeconds": {"type": "integer", "format": "int64"},
            "preconditions": {"type": "object", "properties": {
                "resourceVersion": {"type": "string"}, "uid": {"type": "string"}}},
            "propagationPolicy": {"type": "string"},
        },
    },
    f"{META}.WatchEvent": {
        "description": "Event represents a single event to a watched resource.",
        "type": "object",
        "required": ["type", "object"],
        "properties": {"type": {"type": "string"}, "object": {"type": "object"}},
    },
}
_ANNOTATED_LEAVES: dict[object, str] = {
    base.Quantity: QUANTITY,
    base.Time: f"{META}.Time",
    base.MicroTime: f"{META}.MicroTime",
}

# Kubernetes' int64 fields (the rest of the integers are int32).
_INT64 = frozenset({
    "activeDeadlineSeconds", "terminationGracePeriodSeconds", "deletionGracePeriodSeconds", "generation",
    "runAsUser", "runAsGroup", "fsGroup", "supplementalGroups", "tolerationSeconds", "sizeBytes",
    "retryAfterSeconds", "remainingItemCount",
})
# Fields Kubernetes requires that the models give an empty default (a list or an object):
# scalars defaulting to "" or 0 are recognised as required by their type alone.
_REQUIRED_OBJECTS = frozenset({
    ("PodSpec", "containers"), ("NodeSelector", "nodeSelectorTerms"), ("PreferredSchedulingTerm", "preference"),
    ("Binding", "target"), ("Event", "metadata"), ("Event", "involvedObject"),
})


def definition_name(model: type[BaseModel]) -> str:
    """Kubernetes' name of a model's definition: `io.k8s.api.core.v1.Pod`."""
    return f"{_PACKAGES.get(model, CORE)}.{model.__name__}"


@dataclass
class _Walker:
    """Collects the definitions reachable from the models it is given."""

    definitions: dict[str, Schema]

    def ref(self, model: type[BaseModel]) -> Schema:
        name = definition_name(model)
        if name not in self.definitions:
            self.definitions[name] = {}  # claimed first, so a model that refers to itself ends the walk
            self.definitions[name] = self.model_schema(model)
        return {"$ref": f"#/definitions/{name}"}

    def model_schema(self, model: type[BaseModel]) -> Schema:
        hints = typing.get_type_hints(model, include_extras=True)
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for attribute, field in model.model_fields.items():
            wire = field.alias or attribute  # the camelCase alias generator names every field
            annotation = hints[attribute]
            prop = self.type_schema(annotation, wire)
            if field.description:
                prop = {**prop, "description": field.description}
            properties[wire] = prop
            if (model.__name__, wire) in _REQUIRED_OBJECTS or (field.default in ("", 0, False) and
                                                                 not _optional(annotation)):
                required.append(wire)
        schema: Schema = {"type": "object", "properties": dict(sorted(properties.items()))}
        doc = model.__dict__.get("__doc__")
        if doc:
            schema = {"description": " ".join(doc.split()), **schema}
        if required:
            schema["required"] = sorted(required)
        return schema

    def type_schema(self, annotation: object, wire: str) -> Schema:
        if annotation in _ANNOTATED_LEAVES:
            return {"$ref": f"#/definitions/{_ANNOTATED_LEAVES[annotation]}"}
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            if set(rest) == {int, str}:
                return {"$ref": f"#/definitions/{INT_OR_STRING}"}
            return self.type_schema(rest[0], wire)
        if origin is Literal:
            return {"type": "string"}
        if origin is list:
            items = self.type_schema(args[0], wire)
            return {"type": "array", "items": items, **_list_extensions(wire, args[0])}
        if origin is dict:
            if args[1] is typing.Any:
                return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            return {"type": "object", "additionalProperties": self.type_schema(args[1], wire)}
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return self.ref(annotation)
        if annotation is bool:
            return {"type": "boolean"}
        if annotation is int:
            return {"type": "integer", "format": "int64" if wire in _INT64 else "int32"}
        if annotation is str:
            return {"type": "string"}
        raise TypeError(f"no OpenAPI schema for {annotation!r} ({wire})")


def _optional(annotation: object) -> bool:
    return type(None) in typing.get_args(annotation)


def _list_extensions(wire: str, item: object) -> Schema:
    """Strategic merge patch metadata and the list type, from the table the server merges with."""
    is_model = isinstance(item, type) and issubclass(item, BaseModel)
    fields = {f.alias or n for n, f in item.model_fields.items()} \
        if isinstance(item, type) and issubclass(item, BaseModel) else set()
    if is_model and wire in MERGE_KEYS and MERGE_KEYS[wire] not in fields:
        # The name's usual key is not this item's: its alternate (a Service's ports), else atomic.
        alternate = ALTERNATE_MERGE_KEYS.get(wire)
        if alternate not in fields:
            return {"x-kubernetes-list-type": "atomic"}
        return {"x-kubernetes-list-map-keys": [alternate], "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": alternate, "x-kubernetes-patch-strategy": "merge"}
    if is_model and wire in MERGE_KEYS:
        key = MERGE_KEYS[wire]
        strategy = "merge,retainKeys" if wire in RETAIN_KEYS_LISTS else "merge"
        return {"x-kubernetes-list-map-keys": [key], "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": strategy}
    if not is_model and wire in MERGED_SCALAR_LISTS:
        return {"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}
    return {"x-kubernetes-list-type": "atomic"}


def _gvk(info: ResourceInfo, kind: str | None = None) -> dict[str, str]:
    return {"group": info.group, "kind": kind or info.kind, "version": info.version}


_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
# What kube-apiserver says of the fields every kind has.
_ENVELOPE = {
    "apiVersion": "APIVersion defines the versioned schema of this representation of an object. Servers should "
                  "convert recognized schemas to the latest internal value, and may reject unrecognized values. "
                  f"More info: {_CONVENTIONS}#resources",
    "kind": "Kind is a string value representing the REST resource this object represents. Servers may infer "
            "this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. "
            f"More info: {_CONVENTIONS}#types-kinds",
    "metadata": f"Standard object's metadata. More info: {_CONVENTIONS}#metadata",
}


def _describe_envelope(schema: Schema, kind: str) -> None:
    properties = typing.cast(dict[str, Schema], schema["properties"])
    for name, text in {**_ENVELOPE,
                       "spec": f"Specification of the desired behavior of the {kind}. "
                               f"More info: {_CONVENTIONS}#spec-and-status",
                       "status": f"Most recently observed status of the {kind}. Populated by the system. "
                                 f"Read-only. More info: {_CONVENTIONS}#spec-and-status"}.items():
        if name in properties and "description" not in properties[name]:
            properties[name] = {**properties[name], "description": text}


def _list_schema(info: ResourceInfo, item_ref: Schema) -> Schema:
    return {
        "description": f"{info.kind}List is a list of {info.kind} objects.",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _ENVELOPE["apiVersion"]},
            "items": {"type": "array", "items": item_ref, "description": f"List of {info.name}."},
            "kind": {"type": "string", "description": _ENVELOPE["kind"]},
            "metadata": {"$ref": f"#/definitions/{META}.ListMeta",
                         "description": f"Standard list metadata. More info: {_CONVENTIONS}#types-kinds"},
        },
        "x-kubernetes-group-version-kind": [_gvk(info, f"{info.kind}List")],
    }


# --- paths --------------------------------------------------------------------

def _query(name: str, type_: str, description: str) -> Schema:
    return {"name": name, "in": "query", "type": type_, "uniqueItems": True, "description": description}


_PRETTY = _query("pretty", "string", "If 'true', then the output is pretty printed.")
_FIELD_VALIDATION = _query(
    "fieldValidation", "string",
    "fieldValidation instructs the server on how to handle objects in the request containing unknown or "
    "duplicate fields: Ignore drops unknown fields, Warn (the default) drops them with a warning each, "
    "Strict refuses them.")
_DRY_RUN = _query("dryRun", "string", "When present, indicates that modifications should not be persisted. "
                                      "Valid values are: - All: all dry run stages will be processed")
_FORCE = _query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire "
                                    "conflicting fields owned by other people.")
_FIELD_MANAGER = _query("fieldManager", "string", "fieldManager is a name associated with the actor making "
                                                  "these changes.")
_LIST_PARAMETERS = [
    _query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
    _query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
    _query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    _query("continue", "string", "The continue option should be set when retrieving more results from the server."),
    _query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request "
                                        "may be served from."),
    _query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
    _query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, "
                               "update, and remove notifications."),
]
_DELETE_PARAMETERS: list[Schema] = [
    _query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
    _DRY_RUN,
    {"name": "body", "in": "body", "schema": {"$ref": f"#/definitions/{META}.DeleteOptions"}},
]
_JSON_TYPES = ["application/json"]
_PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]
_EXEC_PARAMETERS = [
    _query("command", "string", "Command is the remote command to execute. argv array."),
    _query("container", "string", "Container in which to execute the command."),
    _query("stdin", "boolean", "Redirect the standard input stream of the pod for this call."),
    _query("stdout", "boolean", "Redirect the standard output stream of the pod for this call."),
    _query("stderr", "boolean", "Redirect the standard error stream of the pod for this call."),
    _query("tty", "boolean", "TTY if true indicates that a tty will be allocated for the exec call."),
]
_LOG_PARAMETERS = [
    _query("container", "string", "The container for which to stream logs."),
    _query("follow", "boolean", "Follow the log stream of the pod."),
    _query("previous", "boolean", "Return previous terminated container logs."),
    _query("tailLines", "integer", "The number of lines from the end of the logs to show."),
    _query("timestamps", "boolean", "If true, add an RFC3339 timestamp at the beginning of every line."),
    _query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
    _query("limitBytes", "integer", "The number of bytes to read from the server before terminating the log output."),
]


def _operation_id(verb: str, info: ResourceInfo, scope: str, suffix: str = "") -> str:
    # readCoreV1NamespacedPodStatus, listCoordinationV1NamespacedLease, as kube-apiserver names them.
    # connectCoreV1GetNamespacedPodExec: the HTTP method of a connect follows the group version.
    group = info.group.split(".")[0].capitalize() if info.group else "Core"
    method = ""
    if verb.startswith("connect"):
        verb, method = "connect", verb[len("connect"):]
    return f"{verb}{group}{info.version.capitalize()}{method}{scope}{info.kind}{suffix}"


def _tag(info: ResourceInfo) -> str:
    return f"{info.group.split('.')[0]}_{info.version}" if info.group else f"core_{info.version}"


def _description(verb: str, info: ResourceInfo, suffix: str) -> str:
    """kube-apiserver's wording: "partially update status of the specified Pod"."""
    sub = suffix.lower() if suffix and suffix != "ForAllNamespaces" else ""
    if verb == "list":
        return f"list or watch objects of kind {info.kind}"
    if verb.startswith("connect"):
        return f"connect {verb[len('connect'):].upper()} requests to {sub} of {info.kind}"
    if verb == "create":
        return f"create {sub} of a {info.kind}" if sub else f"create a {info.kind}"
    target = f"{sub} of the specified {info.kind}" if sub else f"the specified {info.kind}"
    return f"{_VERB_WORDS[verb]} {target}"


_VERB_WORDS = {"read": "read", "replace": "replace", "patch": "partially update", "delete": "delete"}


def _operation(info: ResourceInfo, verb: str, action: str, scope: str, response: Schema,
               parameters: list[Schema], *, suffix: str = "", kind: str | None = None,
               consumes: list[str] | None = None, produces: list[str] | None = None,
               created: bool = False) -> Schema:
    ok: Schema = {"description": "OK", "schema": response}
    responses: dict[str, Schema] = {"200": ok, "401": {"description": "Unauthorized"}}
    if created:
        responses["201"] = {**ok, "description": "Created"}
    return {
        "description": _description(verb, info, suffix),
        "operationId": _operation_id(verb, info, scope, suffix),
        "tags": [_tag(info)],
        "consumes": consumes or ["*/*"],
        "produces": produces or [*_JSON_TYPES, "application/yaml"],
        "schemes": ["https"],
        "parameters": parameters,
        "responses": dict(sorted(responses.items())),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(info, kind),
    }


def _body(ref: Schema) -> Schema:
    return {"name": "body", "in": "body", "required": True, "schema": ref}


def _path_parameter(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "type": "string", "uniqueItems": True,
            "description": description}


def _resource_paths(info: ResourceInfo, ref: Schema, list_ref: Schema) -> dict[str, Schema]:
    """The paths podbay serves for one resource, with kube-apiserver's operations and parameters."""
    prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    scope = "Namespaced" if info.namespaced else ""
    collection = f"{prefix}/namespaces/{{namespace}}/{info.name}" if info.namespaced else f"{prefix}/{info.name}"
    common = [_PRETTY]
    if info.namespaced:
        common = [_path_parameter("namespace", "object name and auth scope, such as for teams and projects"), *common]
    named = [_path_parameter("name", f"name of the {info.kind}"), *common]
    status: Schema = {"$ref": f"#/definitions/{META}.Status"}
    write = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    paths: dict[str, Schema] = {
        collection: {
            "get": _operation(info, "list", "list", scope, list_ref, _LIST_PARAMETERS,
                              produces=[*_JSON_TYPES, "application/yaml", "application/json;stream=watch"]),
            "post": _operation(info, "create", "post", scope, ref, [_body(ref), *write], created=True),
            "parameters": common,
        },
        f"{collection}/{{name}}": {
            "get": _operation(info, "read", "get", scope, ref, []),
            "put": _operation(info, "replace", "put", scope, ref, [_body(ref), *write], created=True),
            "patch": _operation(info, "patch", "patch", scope, ref,
                                [_body({"$ref": f"#/definitions/{META}.Patch"}), *write, _FORCE],
                                consumes=_PATCH_TYPES),
            "delete": _operation(info, "delete", "delete", scope, ref if info.name in ("pods", "namespaces") else
                                 status, _DELETE_PARAMETERS),
            "parameters": named,
        },
    }
    if info.namespaced:
        paths[f"{prefix}/{info.name}"] = {
            "get": _operation(info, "list", "list", "", list_ref, _LIST_PARAMETERS, suffix="ForAllNamespaces",
                              produces=[*_JSON_TYPES, "application/yaml", "application/json;stream=watch"]),
            "parameters": [_PRETTY],
        }
    for sub in info.subresources:
        operations = _subresource_operations(info, sub, scope, ref, write)
        if operations:
            paths[f"{collection}/{{name}}/{sub}"] = {**operations, "parameters": named}
    return paths


def _subresource_operations(info: ResourceInfo, sub: str, scope: str, ref: Schema,
                            write: list[Schema]) -> dict[str, Schema]:
    """The operations of one subresource's path (none: a subresource the document leaves out)."""
    suffix = sub.capitalize()
    if sub == "status":
        return {
            "get": _operation(info, "read", "get", scope, ref, [], suffix=suffix),
            "put": _operation(info, "replace", "put", scope, ref, [_body(ref), *write], suffix=suffix, created=True),
            "patch": _operation(info, "patch", "patch", scope, ref,
                                [_body({"$ref": f"#/definitions/{META}.Patch"}), *write, _FORCE], suffix=suffix,
                                consumes=_PATCH_TYPES),
        }
    if sub == "binding":
        binding: Schema = {"$ref": f"#/definitions/{definition_name(models.Binding)}"}
        return {"post": _operation(info, "create", "post", scope, binding, [_body(binding), *write],
                                   suffix=suffix, kind="Binding", created=True)}
    if sub == "log":
        return {"get": _operation(info, "read", "get", scope, {"type": "string"}, _LOG_PARAMETERS,
                                  suffix=suffix, produces=["text/plain", *_JSON_TYPES])}
    if sub == "exec":
        return {verb: _operation(info, f"connect{verb.capitalize()}", "connect", scope, {"type": "string"},
                                 _EXEC_PARAMETERS, suffix=suffix, kind="PodExecOptions", produces=["*/*"])
                for verb in ("get", "post")}
    return {}


# --- documents ----------------------------------------------------------------

@dataclass(frozen=True)
class Document:
    """One served document: its JSON and the hash its ETag and v3 URL carry."""

    body: bytes
    hash: str

    @property
    def etag(self) -> str:
        return f'"{self.hash}"'


@dataclass(frozen=True)
class Documents:
    v2: Document
    v2_protobuf: Document
    v3_index: Document
    v3: dict[str, Document]  # "api/v1", "apis/coordination.k8s.io/v1" -> its document


def _group_versions() -> dict[str, dict[str, ResourceInfo]]:
    served = {"api/v1": RESOURCES}
    for group, versions in API_GROUPS.items():
        for version, table in versions.items():
            served[f"apis/{group}/{version}"] = table
    return served


def _swagger(tables: list[dict[str, ResourceInfo]]) -> Schema:
    """A Swagger 2.0 document for the resources in `tables`, with only the definitions they reach."""
    walker = _Walker({})
    paths: dict[str, Schema] = {}
    walker.ref(models.Status)
    for table in tables:
        for info in table.values():
            ref = walker.ref(info.model)
            kind_schema = walker.definitions[definition_name(info.model)]
            kind_schema["x-kubernetes-group-version-kind"] = [_gvk(info)]
            _describe_envelope(kind_schema, info.kind)
            list_name = f"{definition_name(info.model)}List"
            walker.definitions[list_name] = _list_schema(info, ref)
            paths.update(_resource_paths(info, ref, {"$ref": f"#/definitions/{list_name}"}))
            if "binding" in info.subresources:
                walker.ref(models.Binding)
                binding = walker.definitions[definition_name(models.Binding)]
                binding["x-kubernetes-group-version-kind"] = [_gvk(info, "Binding")]
                _describe_envelope(binding, "Binding")
    walker.ref(models.ListMeta)
    definitions = {**walker.definitions, **_LEAF_DEFINITIONS}
    reached = _reachable(paths, definitions)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": dict(sorted(paths.items())),
        "definitions": {name: definitions[name] for name in sorted(reached)},
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "type": "apiKey",
                                                "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }


def _reachable(root: object, definitions: dict[str, Schema]) -> set[str]:
    seen: set[str] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[1]
                if name not in seen:
                    seen.add(name)
                    pending.append(definitions[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return seen


def _to_v3_schema(node: object) -> object:
    """Swagger 2.0 schemas and references in OpenAPI 3.0's shape (components/schemas)."""
    if isinstance(node, dict):
        out = {k: _to_v3_schema(v) for k, v in node.items()}
        ref = out.pop("$ref", None)
        if isinstance(ref, str):
            ref = ref.replace("#/definitions/", "#/components/schemas/")
            # OpenAPI 3.0 ignores a reference's siblings: kube-apiserver wraps it in allOf to keep them.
            return {"allOf": [{"$ref": ref}], **out} if out else {"$ref": ref}
        return out
    if isinstance(node, list):
        return [_to_v3_schema(v) for v in node]
    return node


def _v3_parameter(parameter: Schema) -> Schema:
    out = {k: v for k, v in parameter.items() if k not in ("type", "uniqueItems")}
    out["schema"] = {"type": parameter["type"], "uniqueItems": True}
    return out


def _v3_operation(operation: Schema) -> Schema:
    """An operation: body parameters become a requestBody, `produces` the response content."""
    produces = [m for m in typing.cast(list[str], operation["produces"]) if m != "*/*"] or ["*/*"]
    consumes = typing.cast(list[str], operation["consumes"])
    out: Schema = {k: v for k, v in operation.items()
                   if k not in ("consumes", "produces", "schemes", "parameters", "responses")}
    parameters = typing.cast(list[Schema], operation["parameters"])
    body = next((p for p in parameters if p["in"] == "body"), None)
    rest = [_v3_parameter(p) for p in parameters if p["in"] != "body"]
    if rest:
        out["parameters"] = rest
    if body is not None:
        out["requestBody"] = {"content": {media: {"schema": _to_v3_schema(body["schema"])} for media in consumes},
                              "required": bool(body.get("required"))}
    responses: dict[str, Schema] = {}
    for code, response in typing.cast(dict[str, Schema], operation["responses"]).items():
        entry: Schema = {"description": response["description"]}
        if "schema" in response:
            entry["content"] = {media: {"schema": _to_v3_schema(response["schema"])} for media in produces}
        responses[code] = entry
    out["responses"] = responses
    return out


def _openapi3(swagger: Schema) -> Schema:
    paths: dict[str, Schema] = {}
    for path, item in typing.cast(dict[str, Schema], swagger["paths"]).items():
        converted: Schema = {}
        for key, value in item.items():
            if key == "parameters":
                converted[key] = [_v3_parameter(p) for p in typing.cast(list[Schema], value)]
            else:
                converted[key] = _v3_operation(typing.cast(Schema, value))
        paths[path] = converted
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {
            "schemas": _to_v3_schema(swagger["definitions"]),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        },
    }


def _document(body: Schema) -> Document:
    raw = json.dumps(body, separators=(",", ":")).encode()
    # handler3 names a document by the upper-case hex SHA-512 of its bytes.
    return Document(raw, hashlib.sha512(raw).hexdigest().upper())


@cache
def documents() -> Documents:
    """Every OpenAPI document, built on first use and kept for the life of the process."""
    served = _group_versions()
    swagger = _swagger(list(served.values()))
    protobuf = encode_document(swagger)
    v2_protobuf = Document(protobuf, hashlib.sha512(protobuf).hexdigest().upper())
    v3 = {path: _document(_openapi3(_swagger([table]))) for path, table in served.items()}
    index: Schema = {"paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={doc.hash}"}
                       for path, doc in v3.items()}}
    return Documents(_document(swagger), v2_protobuf, _document(index), v3)


# --- HTTP ------------------------------------------------------------------------

JSON = "application/json"
# kube-openapi's handler answers both names of the protobuf encoding with the one a Go mime
# parser accepts: client-go asks for the "@" name but rejects it in a Content-Type.
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
V2_PROTOBUF_REQUESTED = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


@dataclass(frozen=True)
class _Offer:
    accepted: str  # the media type a client names in Accept
    returned: str  # the Content-Type of the answer
    document: Document


def _negotiate(request: web.Request, offers: list[_Offer]) -> _Offer | None:
    """kube-openapi's negotiation: the Accept clauses by preference (q, then order), the first
    offer a clause matches; None (406) when none does. No Accept means */*."""
    clauses: list[tuple[float, int, str]] = []
    for index, part in enumerate((request.headers.get("Accept") or "*/*").split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = next((p.split("=", 1)[1] for p in params if p.startswith("q=")), "1")
        try:
            clauses.append((-float(q), index, media))
        except ValueError:
            continue
    for negative_q, _, media in sorted(clauses):
        if negative_q == 0:
            continue
        kind, _, subtype = media.partition("/")
        for offer in offers:
            offered_kind, _, offered_subtype = offer.accepted.partition("/")
            if kind in ("*", offered_kind) and subtype in ("*", offered_subtype):
                return offer
    return None


def _serve(request: web.Request, offers: list[_Offer], cache_control: str = "no-cache, private",
           extra: dict[str, str] | None = None) -> web.Response:
    """handler.go and handler3.go: the ETag is the document's hash; If-None-Match is answered 304."""
    offer = _negotiate(request, offers)
    if offer is None:
        return web.Response(status=406, headers={"Vary": "Accept"})
    document = offer.document
    headers = {"Vary": "Accept", "Etag": document.etag, "Cache-Control": cache_control, **(extra or {})}
    if document.etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=document.body, headers={**headers, "Content-Type": offer.returned})


def _json(document: Document) -> list[_Offer]:
    return [_Offer(JSON, JSON, document)]


class _Build:
    """The documents built once, on the first request for one rather than at startup: they take a
    second or more of CPU and ~4 MiB that a server no client asks for its OpenAPI does not spend.
    Off the event loop, so that first request does not stall watches; concurrent first requests
    share the one build."""

    def __init__(self) -> None:
        self.task: asyncio.Future[Documents] | None = None

    async def documents(self) -> Documents:
        if self.task is None:
            self.task = asyncio.ensure_future(asyncio.to_thread(documents))
        return await asyncio.shield(self.task)


BUILD_KEY = web.AppKey("openapi_build", _Build)


async def _v2(request: web.Request) -> web.Response:
    docs = await request.app[BUILD_KEY].documents()
    return _serve(request, [_Offer(JSON, JSON, docs.v2), _Offer(V2_PROTOBUF_REQUESTED, V2_PROTOBUF, docs.v2_protobuf),
                            _Offer(V2_PROTOBUF, V2_PROTOBUF, docs.v2_protobuf)])


async def _v3_index(request: web.Request) -> web.Response:
    return _serve(request, _json((await request.app[BUILD_KEY].documents()).v3_index))


async def _v3_group_version(request: web.Request) -> web.Response:
    path = request.match_info["path"]
    document = (await request.app[BUILD_KEY].documents()).v3.get(path)
    if document is None:
        raise HTTPError(404, "NotFound", "the server could not find the requested resource")
    wanted = request.query.get("hash")
    if wanted is None:
        return _serve(request, _json(document))
    if wanted != document.hash:
        # A client holding an older index is sent to the document it names now.
        raise web.HTTPMovedPermanently(f"/openapi/v3/{path}?hash={document.hash}")
    # The URL names these exact bytes: caches may keep them for good (a year, as handler3 says).
    expires = (datetime.now(timezone.utc) + timedelta(days=365)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    return _serve(request, _json(document), "public, immutable", {"Expires": expires})


def setup(app: web.Application) -> None:
    """Routes /openapi/v2, /openapi/v3 and /openapi/v3/<group version> (authenticated, as
    kube-apiserver's system:discovery role allows them to every authenticated user)."""

    app[BUILD_KEY] = _Build()
    app.router.add_get("/openapi/v2", _v2)
    app.router.add_get("/openapi/v3", _v3_index)
    app.router.add_get("/openapi/v3/", _v3_index)
    app.router.add_get("/openapi/v3/{path:.+}", _v3_group_version)
