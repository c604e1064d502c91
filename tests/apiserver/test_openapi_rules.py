"""The OpenAPI documents (pure): Kubernetes' definition names, types and extensions, generated
from every model the API serves, and the protobuf encoding client-go reads."""
from __future__ import annotations

import hashlib
import json
import typing

from pydantic import BaseModel

from podbay.api.kinds import API_GROUPS, RESOURCES, ResourceInfo
from podbay.apiserver import openapi
from podbay.apiserver.patch import strategic_merge_patch

Json = dict[str, typing.Any]
CORE = "io.k8s.api.core.v1"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"


def v2() -> Json:
    return json.loads(openapi.documents().v2.body)


def v3(path: str) -> Json:
    return json.loads(openapi.documents().v3[path].body)


def served() -> list[ResourceInfo]:
    return [*RESOURCES.values(), *(i for v in API_GROUPS.values() for t in v.values() for i in t.values())]


def test_definitions_have_kubernetes_names_and_kinds_their_group_version_kind() -> None:
    definitions = v2()["definitions"]
    for name in (f"{CORE}.Pod", f"{CORE}.PodSpec", f"{CORE}.Container", f"{META}.ObjectMeta",
                 "io.k8s.api.coordination.v1.Lease", f"{META}.Status", f"{CORE}.Binding"):
        assert name in definitions, name
    assert definitions[f"{CORE}.Pod"]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}]
    assert definitions[f"{CORE}.PodList"]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "PodList", "version": "v1"}]
    assert definitions["io.k8s.api.coordination.v1.Lease"]["x-kubernetes-group-version-kind"] == [
        {"group": "coordination.k8s.io", "kind": "Lease", "version": "v1"}]
    pod = definitions[f"{CORE}.Pod"]
    assert pod["properties"]["metadata"]["$ref"] == f"#/definitions/{META}.ObjectMeta"
    assert pod["description"].startswith("Pod is a collection of containers")  # the model's docstring
    assert pod["properties"]["kind"]["description"].startswith("Kind is a string value")
    assert v3("api/v1")["components"]["schemas"][f"{CORE}.Pod"]["properties"]["spec"] == {
        "allOf": [{"$ref": f"#/components/schemas/{CORE}.PodSpec"}],
        "description": pod["properties"]["spec"]["description"]}


def test_leaf_types_are_kubernetes_strings() -> None:
    definitions = v2()["definitions"]
    assert definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"
    int_or_string = definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert (int_or_string["type"], int_or_string["format"]) == ("string", "int-or-string")
    assert (definitions[f"{META}.Time"]["type"], definitions[f"{META}.Time"]["format"]) == ("string", "date-time")
    requirements = definitions[f"{CORE}.ResourceRequirements"]["properties"]
    assert requirements["limits"]["additionalProperties"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"}
    assert definitions[f"{CORE}.HTTPGetAction"]["properties"]["port"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}
    assert definitions[f"{META}.ObjectMeta"]["properties"]["creationTimestamp"] == {
        "$ref": f"#/definitions/{META}.Time"}
    assert definitions[f"{CORE}.PodSpec"]["properties"]["activeDeadlineSeconds"]["format"] == "int64"


def test_patch_strategy_and_list_types_follow_the_servers_merge_table() -> None:
    definitions = v2()["definitions"]
    spec, container = definitions[f"{CORE}.PodSpec"]["properties"], definitions[f"{CORE}.Container"]["properties"]
    expected = [
        (spec, "containers", "name", "merge"), (spec, "initContainers", "name", "merge"),
        (spec, "volumes", "name", "merge,retainKeys"), (container, "env", "name", "merge"),
        (container, "ports", "containerPort", "merge"), (container, "volumeMounts", "mountPath", "merge"),
    ]
    for properties, field, key, strategy in expected:
        prop = properties[field]
        assert (prop["x-kubernetes-patch-merge-key"], prop["x-kubernetes-patch-strategy"]) == (key, strategy), field
        assert (prop["x-kubernetes-list-type"], prop["x-kubernetes-list-map-keys"]) == ("map", [key]), field
    assert container["command"]["x-kubernetes-list-type"] == "atomic"
    assert "x-kubernetes-patch-strategy" not in spec["tolerations"]
    finalizers = definitions[f"{META}.ObjectMeta"]["properties"]["finalizers"]
    assert (finalizers["x-kubernetes-list-type"], finalizers["x-kubernetes-patch-strategy"]) == ("set", "merge")
    assert set(definitions[f"{CORE}.Container"]["required"]) == {"name"}
    assert "containers" in definitions[f"{CORE}.PodSpec"]["required"]


def test_every_model_field_is_published_under_its_wire_name() -> None:
    definitions = v2()["definitions"]
    seen: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = [info.model for info in served()]
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        properties = definitions[openapi.definition_name(model)]["properties"]
        for attribute, field in model.model_fields.items():
            assert (field.alias or attribute) in properties, (model.__name__, attribute)
            for arg in [field.annotation, *typing.get_args(field.annotation)]:
                for inner in [arg, *typing.get_args(arg)]:
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        pending.append(inner)
    assert len(seen) > 60


def test_paths_carry_the_actions_and_parameters_kubectl_looks_for() -> None:
    paths = v2()["paths"]
    for info in served():
        prefix = f"/apis/{info.group}/{info.version}" if info.group else "/api/v1"
        collection = f"{prefix}/namespaces/{{namespace}}/{info.name}" if info.namespaced else f"{prefix}/{info.name}"
        item = paths[f"{collection}/{{name}}"]
        gvk = {"group": info.group, "kind": info.kind, "version": info.version}
        assert {m: op["x-kubernetes-action"] for m, op in item.items() if m != "parameters"} == {
            "get": "get", "put": "put", "patch": "patch", "delete": "delete"}
        assert item["patch"]["x-kubernetes-group-version-kind"] == gvk
        assert "fieldValidation" in [p["name"] for p in item["patch"]["parameters"]]
        assert {"dryRun", "fieldManager", "force"} <= {p["name"] for p in item["patch"]["parameters"]}
        assert "application/apply-patch+yaml" in item["patch"]["consumes"]
        assert paths[collection]["get"]["x-kubernetes-action"] == "list"
    assert paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]["x-kubernetes-group-version-kind"][
        "kind"] == "Binding"
    assert paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["post"]["x-kubernetes-action"] == "connect"
    assert paths["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"


def test_v3_index_names_each_group_version_by_the_hash_of_its_document() -> None:
    docs = openapi.documents()
    index = json.loads(docs.v3_index.body)["paths"]
    assert set(index) == {"api/v1", *(f"apis/{group}/{version}" for group, versions in API_GROUPS.items()
                                      for version in versions)}
    assert "apis/coordination.k8s.io/v1" in index
    assert "apis/discovery.k8s.io/v1" in index
    for path, entry in index.items():
        digest = hashlib.sha512(docs.v3[path].body).hexdigest().upper()
        assert entry["serverRelativeURL"] == f"/openapi/v3/{path}?hash={digest}"
    core = v3("api/v1")
    assert core["openapi"] == "3.0.0"
    schemas = core["components"]["schemas"]
    assert schemas[f"{CORE}.PodSpec"]["properties"]["containers"]["items"] == {
        "$ref": f"#/components/schemas/{CORE}.Container"}
    patch = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation").items()
    leases = v3("apis/coordination.k8s.io/v1")["components"]["schemas"]
    assert "io.k8s.api.coordination.v1.Lease" in leases and f"{CORE}.Pod" not in leases
    assert openapi.documents() is docs  # built once per process


def _fields(data: bytes) -> list[tuple[int, bytes | int]]:
    """One level of protobuf wire format (varints and length-delimited fields)."""
    out: list[tuple[int, bytes | int]] = []
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(data):
        tag = varint()
        if tag & 7 == 0:
            out.append((tag >> 3, varint()))
        else:
            length = varint()
            out.append((tag >> 3, data[i:i + length]))
            i += length
    return out


def test_protobuf_document_holds_the_definitions_and_extensions() -> None:
    top = dict(_fields(openapi.documents().v2_protobuf.body))
    assert top[1] == b"2.0"
    definitions = {}
    for _, named in _fields(typing.cast(bytes, top[9])):
        entry = dict(_fields(typing.cast(bytes, named)))
        definitions[typing.cast(bytes, entry[1]).decode()] = typing.cast(bytes, entry[2])
    assert set(definitions) == set(v2()["definitions"])
    pod = _fields(definitions[f"{CORE}.Pod"])
    extensions = [dict(_fields(typing.cast(bytes, v))) for f, v in pod if f == 31]
    [gvk] = [e for e in extensions if e[1] == b"x-kubernetes-group-version-kind"]
    assert json.loads(dict(_fields(typing.cast(bytes, gvk[2])))[2]) == [{"group": "", "kind": "Pod", "version": "v1"}]


def test_strategic_merge_patch_honours_retain_keys() -> None:
    # What kubectl sends when a volume changes source: the old source must go.
    pod = {"spec": {"volumes": [{"name": "data", "emptyDir": {}}]}}
    patch = {"spec": {"volumes": [{"$retainKeys": ["hostPath", "name"], "name": "data", "hostPath": {"path": "/d"}}]}}
    assert strategic_merge_patch(pod, patch)["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/d"}}]
