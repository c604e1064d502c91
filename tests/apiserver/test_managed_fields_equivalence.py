"""The managedFields an Update records are byte for byte what the plain algorithm gives (every field
of the new object compared, from the root, with the old one's; a set of paths per node), on a seeded
variety of pods and writes: duplicate and missing list keys, keys that are equal as numbers but
not as JSON (1, 1.0, true), set lists, empty maps, nulls, type changes, status writes, earlier
managers' entries. The reference below is the algorithm as it was before it was made cheaper."""
from __future__ import annotations

import copy
import json
import random
from typing import Any

import orjson
import pytest

from podbay.api.errors import BadRequest
from podbay.apiserver import fieldmanager as fm
from podbay.apiserver.patch import MERGE_KEYS, MERGED_SCALAR_LISTS

Path = tuple[str, ...]


def ref_fields_of(value: Any, prefix: Path = (), name: str = "") -> set[Path]:
    if isinstance(value, dict):
        if not value:
            return {prefix} if prefix else set()
        return {p for k, v in value.items() if v is not None for p in ref_fields_of(v, prefix + (f"f:{k}",), k)}
    if isinstance(value, list) and name in MERGE_KEYS:
        out: set[Path] = set()
        for item in value:
            if isinstance(item, dict):
                item_path = prefix + ("k:" + json.dumps({MERGE_KEYS[name]: item.get(MERGE_KEYS[name])},
                                                        separators=(",", ":"), sort_keys=True),)
                out.add(item_path)
                out |= ref_fields_of(item, item_path)
        return out
    if isinstance(value, list) and name in MERGED_SCALAR_LISTS:
        return {prefix + ("v:" + json.dumps(v, separators=(",", ":"), sort_keys=True),) for v in value}
    return {prefix}


def ref_get_at(obj: Any, path: Path) -> tuple[bool, Any]:
    node = obj
    for element in path:
        kind, text = element[:2], element[2:]
        if kind == "f:" and isinstance(node, dict) and text in node:
            node = node[text]
        elif kind == "k:" and isinstance(node, list):
            keys = json.loads(text)
            node = next((i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in keys.items())), None)
            if node is None:
                return False, None
        elif kind == "v:" and isinstance(node, list) and json.loads(text) in node:
            node = json.loads(text)
        else:
            return False, None
    return True, node


def ref_owned_by_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, time: str,
                        subresource: str | None) -> list[fm.Entry]:
    entries = fm.read_entries(new)
    previous = next((e.fields for e in entries
                     if (e.manager, e.operation, e.subresource) == (manager, fm.UPDATE, subresource or "")), frozenset())
    present = frozenset(ref_fields_of(new))
    if old:
        old_fields = ref_fields_of(old)
        diff = frozenset(p for p in ref_fields_of(new)
                         if p not in old_fields or ref_get_at(old, p) != ref_get_at(new, p))
    else:
        diff = present
    changed = fm.managed_scope(diff, subresource)
    mine = (previous & present) | changed
    entry = fm.Entry(manager, fm.UPDATE, "v1", time, frozenset(mine), subresource or "")
    gone = frozenset(p for e in entries for p in e.fields if p not in present)
    return [fm.Entry(e.manager, e.operation, e.api_version, e.time, e.fields - gone, e.subresource)
            for e in fm._record(entries, entry, changed) if e.fields - gone]


NAMES = ["web", "side", "init", "", None, 1]
PORTS = [80, 8080, 80.0, True, None, "80"]


def _container(rng: random.Random) -> dict[str, Any]:
    c: dict[str, Any] = {"image": rng.choice(["busybox:1.35", "nginx", None])}
    if rng.random() < 0.9:
        c["name"] = rng.choice(NAMES)
    if rng.random() < 0.6:
        c["ports"] = [{"containerPort": rng.choice(PORTS), "protocol": rng.choice(["TCP", "UDP"])}
                      for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.6:
        c["env"] = [{"name": rng.choice(["A", "B", "A"]), "value": rng.choice(["1", "2", None, ""])}
                    for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.4:
        c["resources"] = rng.choice([{}, {"requests": {"cpu": "100m"}}, {"limits": None}])
    if rng.random() < 0.3:
        c["command"] = rng.choice([["sh"], ["sleep", "1"], []])
    return c


def _pod(rng: random.Random) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "default", "uid": "u", "resourceVersion": str(rng.randint(1, 9))}
    if rng.random() < 0.6:
        meta["labels"] = {k: rng.choice(["x", "y"]) for k in rng.sample(["app", "tier", "v"], rng.randint(0, 3))}
    if rng.random() < 0.4:
        meta["finalizers"] = [rng.choice(["a/b", "c/d", "a/b"]) for _ in range(rng.randint(0, 3))]
    spec: dict[str, Any] = {"containers": [_container(rng) for _ in range(rng.randint(0, 3))]}
    if rng.random() < 0.3:
        spec["initContainers"] = [_container(rng)]
    if rng.random() < 0.5:
        spec["nodeName"] = rng.choice(["n1", "n2", None])
    if rng.random() < 0.3:
        spec["tolerations"] = [{"key": "k", "operator": "Exists"}]
    if rng.random() < 0.2:
        spec["securityContext"] = rng.choice([{}, 3, "x", [1, 2]])
    status: dict[str, Any] = {"phase": rng.choice(["Pending", "Running"])}
    if rng.random() < 0.6:
        status["conditions"] = [{"type": rng.choice(["Ready", "PodScheduled", "Ready"]),
                                 "status": rng.choice(["True", "False"])} for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.6:
        status["containerStatuses"] = [{"name": rng.choice(NAMES), "ready": rng.random() < 0.5,
                                        "state": rng.choice([{"running": {"startedAt": "t"}}, {"waiting": {}}])}
                                       for _ in range(rng.randint(0, 2))]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def _changed(rng: random.Random, pod: dict[str, Any]) -> dict[str, Any]:
    """`pod` with a few changes, or a pod of its own."""
    if rng.random() < 0.2:
        new = _pod(rng)
        new["metadata"]["managedFields"] = copy.deepcopy(pod["metadata"].get("managedFields"))
        return new
    new = copy.deepcopy(pod)
    for _ in range(rng.randint(0, 3)):
        part = rng.choice(["spec", "status", "metadata"])
        other = _pod(rng)[part]
        key = rng.choice(sorted(other) or ["x"])
        new[part][key] = other.get(key)
    return new


@pytest.mark.parametrize("seed", range(40))
def test_update_entries_are_byte_identical(seed: int) -> None:
    rng = random.Random(seed)
    old: dict[str, Any] | None = None
    pod = _pod(rng)
    for step in range(25):
        manager = rng.choice(["kubectl", "podbay-scheduler", "podbay-agent"])
        subresource = rng.choice([None, None, "status"])
        ours = fm.owned_by_update(old, pod, manager, "v1", f"t{step}", subresource)
        assert ours == ref_owned_by_update(old, pod, manager, f"t{step}", subresource)
        written, expected = copy.deepcopy(pod), copy.deepcopy(pod)
        fm.write_entries(written, ours)
        fm.write_entries(expected, ref_owned_by_update(old, pod, manager, f"t{step}", subresource))
        assert orjson.dumps(written) == orjson.dumps(expected)
        old, pod = written, _changed(rng, written)


@pytest.mark.parametrize("seed", range(10))
def test_field_sets_are_the_same(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(50):
        pod = _pod(rng)
        assert fm.fields_of(pod) == ref_fields_of(pod)
        paths = sorted(ref_fields_of(pod) | ref_fields_of(_pod(rng)))
        assert [fm.get_at(pod, p) for p in paths] == [ref_get_at(pod, p) for p in paths]


def test_fieldsv1_keys_are_checked_as_before() -> None:
    good = {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}}}},
            "f:metadata": {"f:finalizers": {'v:"a/b"': {}}}}
    assert fm.from_fields_v1(good, "w") == frozenset({
        ("f:spec", "f:containers", 'k:{"name":"c"}'), ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image"),
        ("f:metadata", "f:finalizers", 'v:"a/b"')})
    long_key = "k:" + json.dumps({"name": "x" * 300})
    assert ("f:spec", long_key) in fm.from_fields_v1({"f:spec": {long_key: {}}}, "w")
    for bad in ('k:{"name":', "v:nope", "k:" + '{"name":"' + "x" * 300):
        for _ in range(2):  # the second time from the cache
            with pytest.raises(BadRequest) as err:
                fm.from_fields_v1({"f:spec": {bad: {}}}, "metadata.managedFields[0].fieldsV1")
            assert str(err.value) == f'metadata.managedFields[0].fieldsV1: invalid FieldsV1 key "{bad[:64]}"'
