"""Malformed requests answer 4xx Statuses naming what is wrong, never a 500 or a hang
(each case here was a 500, a dropped connection or no answer before)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

import aiohttp
import pytest

from podbay.apiserver.embedded import EmbeddedServer
from podbay.apiserver.params import MAX_JSON_DEPTH

POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
PODS = "/api/v1/namespaces/default/pods"


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


class API:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   content_type: str = "application/json") -> Answer:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.session.request(method, self.base + path, data=data,
                                        headers={"Content-Type": content_type}) as response:
            text = await response.text()
            return Answer(response.status, json.loads(text) if text.strip() else None, response.headers)


@pytest.fixture
async def api(api_server: EmbeddedServer) -> AsyncIterator[API]:
    # The unix socket: what is tested is the API, not the TCP listener's transport.
    # A generous total timeout: a hang fails the test instead of blocking the suite.
    connector = aiohttp.UnixConnector(path=str(api_server.socket_path))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        client = API(session, "http://localhost")
        assert (await client.call("POST", PODS, POD)).status == 201
        yield client


def assert_status(answer: Answer, code: int, reason: str, *words: str) -> None:
    assert answer.status == code, answer.body
    assert answer.body["kind"] == "Status" and answer.body["code"] == code
    assert answer.body["reason"] == reason
    for word in words:
        assert word in answer.body["message"], answer.body["message"]


async def test_a_number_as_metadata_name_is_400_naming_the_field(api: API) -> None:
    answer = await api.call("POST", PODS, {**POD, "metadata": {"name": 5}})
    assert_status(answer, 400, "BadRequest", "metadata.name", "cannot unmarshal number")
    answer = await api.call("PUT", f"{PODS}/p", {**POD, "metadata": {"name": "p", "resourceVersion": 7}})
    assert_status(answer, 400, "BadRequest", "metadata.resourceVersion")


@pytest.mark.parametrize("content_type,method,path", [
    ("application/json", "POST", PODS),
    ("application/merge-patch+json", "PATCH", f"{PODS}/p"),
    ("application/strategic-merge-patch+json", "PATCH", f"{PODS}/p"),
    ("application/json-patch+json", "PATCH", f"{PODS}/p"),
])
async def test_deeply_nested_json_is_400(api: API, content_type: str, method: str, path: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = await api.call(method, path, raw=deep, content_type=content_type)
    assert_status(answer, 400, "BadRequest", "max depth")
    objects = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    assert_status(await api.call(method, path, raw=objects, content_type=content_type), 400, "BadRequest", "max depth")


async def test_nesting_at_the_limit_is_decoded(api: API) -> None:
    # Decoded, then refused by strict field validation (an unknown field), not by the decoder.
    nested = "1"
    for _ in range(MAX_JSON_DEPTH - 2):
        nested = f'{{"x":{nested}}}'
    answer = await api.call("PATCH", f"{PODS}/p?fieldValidation=Strict", raw=f'{{"spec":{nested}}}'.encode(),
                            content_type="application/merge-patch+json")
    assert answer.status == 400 and 'strict decoding error: unknown field "spec.x"' in answer.body["message"]


async def test_brackets_inside_strings_are_not_nesting(api: API) -> None:
    deep_text = {"metadata": {"name": "q", "annotations": {"a": "[{" * 50_000 + '\\"'}}, "spec": POD["spec"]}
    answer = await api.call("POST", PODS, deep_text)
    assert answer.status == 201, answer.body
    assert answer.body["metadata"]["annotations"]["a"] == deep_text["metadata"]["annotations"]["a"]


async def test_a_body_over_the_limit_is_413_for_patch_too(api: API) -> None:
    huge = b'{"metadata":{"labels":{"a":"' + b"x" * (9 * 1024 * 1024) + b'"}}}'
    answer = await api.call("PATCH", f"{PODS}/p", raw=huge, content_type="application/merge-patch+json")
    assert_status(answer, 413, "RequestEntityTooLarge")


async def test_log_parameters_are_decoded_and_validated_before_the_pod_is_looked_up(api: API) -> None:
    assert_status(await api.call("GET", f"{PODS}/p/log?tailLines=abc"), 400, "BadRequest", "tailLines")
    assert_status(await api.call("GET", f"{PODS}/p/log?limitBytes=99999999999999999999"), 400, "BadRequest", "limitBytes")
    assert_status(await api.call("GET", f"{PODS}/p/log?sinceTime=yesterday"), 400, "BadRequest", "sinceTime")
    assert_status(await api.call("GET", f"{PODS}/p/log?tailLines=-1"), 422, "Invalid", "tailLines")
    assert_status(await api.call("GET", f"{PODS}/p/log?sinceSeconds=0"), 422, "Invalid", "sinceSeconds")


async def test_a_binding_whose_target_is_a_string_is_400(api: API) -> None:
    answer = await api.call("POST", f"{PODS}/p/binding", {"metadata": {"name": "p"}, "target": "node-1"})
    assert_status(answer, 400, "BadRequest", "Binding.target")
    answer = await api.call("POST", f"{PODS}/p/binding", {"metadata": {"name": "p"}, "target": {"name": 3}})
    assert_status(answer, 400, "BadRequest", "target.name")
    assert (await api.call("GET", f"{PODS}/p")).body["spec"].get("nodeName") is None


@pytest.mark.parametrize("options,field", [
    ({"gracePeriodSeconds": "abc"}, "gracePeriodSeconds"),
    ({"gracePeriodSeconds": 1.5}, "gracePeriodSeconds"),
    ({"gracePeriodSeconds": True}, "gracePeriodSeconds"),
    ({"gracePeriodSeconds": 2**64}, "gracePeriodSeconds"),
    ({"preconditions": "x"}, "preconditions"),
    ({"preconditions": {"uid": 5}}, "preconditions.uid"),
])
async def test_malformed_delete_options_are_400(api: API, options: dict[str, Any], field: str) -> None:
    assert_status(await api.call("DELETE", f"{PODS}/p", options), 400, "BadRequest", field)
    assert (await api.call("GET", f"{PODS}/p")).status == 200


async def test_delete_grace_period_in_the_query_must_be_an_int64(api: API) -> None:
    answer = await api.call("DELETE", f"{PODS}/p?gracePeriodSeconds=abc")
    assert_status(answer, 400, "BadRequest", "gracePeriodSeconds")


@pytest.mark.parametrize("rv", ["99999999999999999999999", "abc", "-1", "1e3"])
async def test_a_watch_from_a_malformed_resource_version_is_400(api: API, rv: str) -> None:
    answer = await api.call("GET", f"{PODS}?watch=1&resourceVersion={rv}")
    assert_status(answer, 400, "BadRequest", "resourceVersion")


async def test_a_watch_beyond_sqlites_range_ends_with_an_error_event(api: API) -> None:
    # A valid uint64 the store cannot hold: refused in the stream, the connection kept.
    answer = await api.call("GET", f"{PODS}?watch=1&resourceVersion={2**63}")
    assert answer.status == 200
    assert answer.body["type"] == "ERROR" and answer.body["object"]["code"] == 400


async def test_a_watch_with_a_negative_timeout_ends_at_once(api: API) -> None:
    # kube-apiserver's watch timer fires at once for a negative timeoutSeconds.
    async with api.session.get(api.base + f"{PODS}?watch=1&resourceVersion=0&timeoutSeconds=-1") as response:
        assert response.status == 200
        await response.read()  # the stream ends: no hang


@pytest.mark.parametrize("query,code,field", [
    ("timeoutSeconds=abc&watch=1", 400, "timeoutSeconds"),
    ("timeoutSeconds=99999999999999999999", 400, "timeoutSeconds"),
    ("limit=ten", 400, "limit"),
    ("resourceVersion=abc", 400, "resourceVersion"),
    ("resourceVersionMatch=Exact", 422, "resourceVersionMatch"),
    ("resourceVersion=5&resourceVersionMatch=Sometimes", 422, "resourceVersionMatch"),
    ("watch=1&resourceVersionMatch=NotOlderThan&resourceVersion=1", 422, "resourceVersionMatch"),
    ("sendInitialEvents=true", 422, "sendInitialEvents"),
    ("labelSelector=a%20in%20(", 400, ""),
    ("fieldSelector=spec.nope%3Dx", 400, "spec.nope"),
    ("watch=1&labelSelector=%3D%3D%3D", 400, ""),
])
async def test_list_and_watch_parameters_are_validated(api: API, query: str, code: int, field: str) -> None:
    answer = await api.call("GET", f"{PODS}?{query}")
    assert_status(answer, code, "BadRequest" if code == 400 else "Invalid", field)


@pytest.mark.parametrize("content_type,patch", [
    ("application/json-patch+json", [{"op": "remove", "path": "/metadata"}]),
    ("application/json-patch+json", [{"op": "replace", "path": "/metadata/name", "value": "q"}]),
    ("application/merge-patch+json", {"metadata": None}),
    ("application/merge-patch+json", {"metadata": {"name": "q"}}),
    ("application/strategic-merge-patch+json", {"metadata": {"name": "q"}}),
    ("application/strategic-merge-patch+json", {"metadata": {"$patch": "delete"}}),
])
async def test_a_patch_may_not_rename_the_object_or_drop_its_metadata(api: API, content_type: str, patch: Any) -> None:
    answer = await api.call("PATCH", f"{PODS}/p", patch, content_type=content_type)
    assert_status(answer, 400, "BadRequest", "the name of the object", "does not match the name on the URL (p)")
    assert (await api.call("GET", f"{PODS}/q")).status == 404


async def test_a_patch_may_not_move_the_object_or_change_its_uid(api: API) -> None:
    answer = await api.call("PATCH", f"{PODS}/p", {"metadata": {"namespace": "kube-system"}},
                            content_type="application/merge-patch+json")
    assert_status(answer, 400, "BadRequest", "namespace of the object (kube-system)")
    answer = await api.call("PATCH", f"{PODS}/p", [{"op": "replace", "path": "/metadata/uid", "value": "x"}],
                            content_type="application/json-patch+json")
    assert_status(answer, 422, "Invalid", "metadata.uid", "immutable")
    answer = await api.call("PATCH", f"{PODS}/p", [{"op": "replace", "path": "/metadata", "value": 5}],
                            content_type="application/json-patch+json")
    assert_status(answer, 400, "BadRequest", "Pod.metadata")


@pytest.mark.parametrize("patch,code,words", [
    ([{"op": "add", "path": 5, "value": 1}], 400, ("path must be a string",)),
    ([{"op": "move", "path": "/metadata/labels"}], 400, ("does not exist",)),
    ([{"op": "add", "path": "/spec/containers/-1", "value": {}}], 400, ("invalid index",)),
    ([{"op": "test", "path": "/metadata/name"}] * 10_001, 413, ("maximum operations",)),
    # Each copy doubles the document: bounded long before memory is.
    ([{"op": "copy", "from": "/metadata", "path": f"/metadata/x{i}"} for i in range(40)], 413, ("copied",)),
])
async def test_malformed_json_patches_are_4xx(api: API, patch: Any, code: int, words: tuple[str, ...]) -> None:
    answer = await api.call("PATCH", f"{PODS}/p", patch, content_type="application/json-patch+json")
    assert_status(answer, code, "BadRequest" if code == 400 else "RequestEntityTooLarge", *words)


async def test_strategic_directives_of_the_wrong_type_are_400(api: API) -> None:
    answer = await api.call("PATCH", f"{PODS}/p", {"metadata": {"$deleteFromPrimitiveList/finalizers": 5}},
                            content_type="application/strategic-merge-patch+json")
    assert_status(answer, 400, "BadRequest", "$deleteFromPrimitiveList/finalizers")


async def test_an_unknown_include_object_is_400(api: API) -> None:
    table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    for query in ("includeObject=Everything", "watch=1&includeObject=Everything"):
        async with api.session.get(api.base + f"{PODS}?{query}", headers={"Accept": table}) as response:
            assert response.status == 400
            assert "includeObject" in (await response.json())["message"]
