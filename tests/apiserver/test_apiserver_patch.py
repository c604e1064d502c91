"""PATCH semantics (pure): merge patch, strategic merge patch, JSON patch."""
from __future__ import annotations

import pytest

from podbay.api.errors import BadRequest
from podbay.apiserver.patch import json_patch, merge_patch, strategic_merge_patch

POD = {
    "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "log", "image": "busybox"},
        ],
        "tolerations": [{"key": "k1"}],
    },
}


def test_merge_patch_replaces_lists_and_deletes_with_null() -> None:
    out = merge_patch(POD, {"metadata": {"labels": {"a": None, "c": "3"}},
                            "spec": {"containers": [{"name": "only", "image": "x"}]}})
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]
    assert POD["metadata"]["labels"] == {"a": "1", "b": "2"}  # input untouched


def test_strategic_merge_patch_merges_containers_by_name() -> None:
    out = strategic_merge_patch(POD, {"spec": {"containers": [
        {"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]},
        {"name": "new", "image": "alpine"},
    ]}})
    by_name = {c["name"]: c for c in out["spec"]["containers"]}
    assert [c["name"] for c in out["spec"]["containers"]] == ["web", "log", "new"]
    assert by_name["web"]["image"] == "nginx:2"
    assert by_name["web"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert by_name["log"] == {"name": "log", "image": "busybox"}


def test_strategic_merge_patch_directives() -> None:
    out = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "log", "$patch": "delete"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["web"]
    out = strategic_merge_patch(POD, {"metadata": {"labels": {"$patch": "replace", "z": "9"}}})
    assert out["metadata"]["labels"] == {"z": "9"}
    out = strategic_merge_patch(POD, {"metadata": {"finalizers": ["y"]}})
    assert out["metadata"]["finalizers"] == ["x", "y"]
    out = strategic_merge_patch(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})
    assert out["metadata"]["finalizers"] == []
    # A list without a merge key is replaced (atomic).
    out = strategic_merge_patch(POD, {"spec": {"tolerations": [{"key": "k2"}]}})
    assert out["spec"]["tolerations"] == [{"key": "k2"}]
    with pytest.raises(BadRequest, match="merge key"):
        strategic_merge_patch(POD, {"spec": {"containers": [{"image": "x"}]}})


def test_json_patch_operations() -> None:
    out = json_patch(POD, [
        {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:3"},
        {"op": "add", "path": "/metadata/labels/c", "value": "3"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "z", "image": "z"}},
        {"op": "test", "path": "/metadata/name", "value": "p"},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/annotations"},
    ])
    assert out["spec"]["containers"][0]["image"] == "nginx:3"
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["spec"]["containers"][-1]["name"] == "z"
    assert out["metadata"]["annotations"] == "p"
    with pytest.raises(BadRequest, match="test failed"):
        json_patch(POD, [{"op": "test", "path": "/metadata/name", "value": "q"}])
    with pytest.raises(BadRequest, match="does not exist"):
        json_patch(POD, [{"op": "remove", "path": "/nope"}])
