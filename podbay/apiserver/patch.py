"""PATCH bodies applied to an object dict: pure functions.

- JSON merge patch (RFC 7386, `application/merge-patch+json`).
- Strategic merge patch (`application/strategic-merge-patch+json`): a merge
  patch whose lists of objects merge by their `patchMergeKey` instead of
  being replaced, with the `$patch: replace|delete` directives. The merge
  keys below are core/v1's for the fields pods, nodes, namespaces and events
  have; lists not named here are replaced, as for atomic lists in Kubernetes.
- JSON patch (RFC 6902, `application/json-patch+json`).
Server-side apply (`application/apply-patch+yaml`) is `podbay.apiserver.fieldmanager`'s, over
the same merge keys.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any

from podbay.api.errors import BadRequest
from podbay.apiserver.params import MAX_BODY_BYTES, MAX_JSON_PATCH_OPERATIONS
from podbay.apiserver.status import HTTPError

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Field name -> merge key, for lists of objects (core/v1's patchMergeKey tags).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "addresses": "type",
    "taints": "key",
    "resourceClaims": "name",
    "schedulingGates": "name",
}
# The same field name on other kinds' items: a Service's ports (ServicePort) merge by `port`, its
# patchMergeKey; they are told apart from containers' ports by carrying no `containerPort`.
ALTERNATE_MERGE_KEYS: dict[str, str] = {"ports": "port"}
# Lists of objects whose items keep only the keys the patch names (`patchStrategy:"merge,retainKeys"`):
# a volume changed from emptyDir to hostPath loses its emptyDir.
RETAIN_KEYS_LISTS = frozenset({"volumes"})
# Lists of scalars merged as sets (`patchStrategy:"merge"` on []string).
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive is not None:
        raise BadRequest(f"unknown patch type: {directive!r}")
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue  # ordering hints (the merged order is already stable); $retainKeys is applied below
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if not isinstance(value, list) or not isinstance(result.get(field, []), list):
                raise BadRequest(f"invalid patch: {key} must be a list deleting from the list {field}")
            result[field] = [v for v in result.get(field, []) if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            current = result.get(key) or []
            result[key] = _merge_list(current, value, merge_key(key, [*current, *value]))
        elif isinstance(value, list) and key in MERGED_SCALAR_LISTS:
            current = result.get(key) or []
            merged = list(current) if isinstance(current, list) else []
            merged += [v for v in value if v not in merged]
            result[key] = merged
        else:
            merged_value = strategic_merge_patch(result.get(key), value)
            if merged_value is None:
                result.pop(key, None)
            else:
                result[key] = merged_value
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def merge_key(field: str, items: list[Any]) -> str:
    """The merge key of the list `field` whose items (old and patch) are `items`."""
    key, alternate = MERGE_KEYS[field], ALTERNATE_MERGE_KEYS.get(field)
    if alternate and any(isinstance(i, dict) and alternate in i and key not in i for i in items):
        return alternate
    return key


def _merge_list(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    result = [copy.deepcopy(i) for i in target]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise BadRequest(f"map: {item!r} does not contain declared merge key: {key}")
        index = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _pointer(path: Any, field: str = "path") -> list[str]:
    if not isinstance(path, str):
        raise BadRequest(f"json patch: {field} must be a string, not {path!r:.64}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise BadRequest(f'json patch: invalid {field} "{path:.256}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        try:
            doc = doc[_index(part, path)] if isinstance(doc, list) else doc[part]
        except (KeyError, IndexError, TypeError, BadRequest):
            raise BadRequest(f'json patch: path "{path:.256}" does not exist') from None
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 add/remove/replace/move/copy/test."""
    if not isinstance(operations, list):
        raise BadRequest("json patch: the body must be a list of operations")
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise HTTPError(413, "RequestEntityTooLarge", f"The allowed maximum operations in a JSON patch is "
                                                      f"{MAX_JSON_PATCH_OPERATIONS}, got {len(operations)}")
    doc = copy.deepcopy(target)
    copied = 0
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadRequest(f"json patch: invalid operation {op!r:.256}")
        name, path = op["op"], op["path"]
        parts = _pointer(path)
        if name == "test":
            if _resolve(doc, parts, path) != op.get("value"):
                raise BadRequest(f'json patch: test failed at "{path:.256}"')
            continue
        if name in ("move", "copy"):
            source = _pointer(op.get("from", ""), "from")
            value = copy.deepcopy(_resolve(doc, source, op.get("from", "")))
            if name == "copy":
                # Copies can double the document at every operation: bounded as the body is.
                copied += len(json.dumps(value))
                if copied > MAX_BODY_BYTES:
                    raise HTTPError(413, "RequestEntityTooLarge", "json patch: the accumulated size of copied "
                                                                  f"values exceeds the limit of {MAX_BODY_BYTES} bytes")
            if name == "move":
                doc = _remove(doc, source, op.get("from", ""))
            doc = _add(doc, parts, value, path)
        elif name == "remove":
            doc = _remove(doc, parts, path)
        elif name == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")), path)
        elif name == "replace":
            doc = _remove(doc, parts, path)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")), path)
        else:
            raise BadRequest(f"json patch: unknown op {name!r:.64}")
    return doc


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else _index(last, path)
        if index > len(parent):
            raise BadRequest(f'json patch: index out of range at "{path}"')
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise BadRequest(f'json patch: path "{path}" does not exist')
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        return None
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    try:
        if isinstance(parent, list):
            del parent[_index(last, path)]
        else:
            del parent[last]
    except (KeyError, IndexError, TypeError):
        raise BadRequest(f'json patch: path "{path}" does not exist') from None
    return doc


def _index(part: str, path: str) -> int:
    # RFC 6901 array indices: digits only ("-1" is not the last element, " 1" is no index).
    if not re.fullmatch(r"0|[1-9][0-9]{0,9}", part):
        raise BadRequest(f'json patch: invalid index in "{path:.256}"')
    return int(part)


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> Any:
    """Dispatches on the PATCH request's Content-Type (without parameters)."""
    if content_type == MERGE_PATCH:
        return merge_patch(target, patch)
    if content_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(target, patch)
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    raise ValueError(content_type)
