"""Managed fields and server-side apply as kube-apiserver's fieldmanager does them
(sigs.k8s.io/structured-merge-diff): pure functions over object dicts.

A field set is a set of paths; a path is a tuple of FieldsV1 keys: `f:<name>` (a map or
struct field), `k:{"name":"c"}` (an item of a list of type map, by its keys), `v:<json>`
(an item of a set list). List types come from `podbay.apiserver.patch`'s tables, the ones
/openapi publishes (`x-kubernetes-list-type`): lists named in MERGE_KEYS are maps, those in
MERGED_SCALAR_LISTS are sets, every other list is atomic (owned and replaced whole).

- `owned_by_update` gives an Update manager the fields its write changed or added;
- `apply` merges an applied configuration into the live object, refusing (409) fields
  other managers own with a different value unless forced, and removing fields the
  manager applied before, applies no more, and no one else owns.
"""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from multidict import MultiMapping

from podbay.api.errors import BadRequest, Conflict, FieldError
from podbay.apiserver.patch import MERGE_KEYS, MERGED_SCALAR_LISTS
from podbay.apiserver.status import ObjectInvalid

Path = tuple[str, ...]
FieldSet = frozenset[Path]
APPLY, UPDATE = "Apply", "Update"
# kube-apiserver's bound on a manager's name (ValidateFieldManager).
MAX_MANAGER_LENGTH = 128
VALIDATION_DIRECTIVES = ("Ignore", "Warn", "Strict")
# The manager `kubectl apply --server-side` uses, and client-side apply's annotation, which
# kube-apiserver reads and keeps for that manager only.
KUBECTL = "kubectl"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# What Go's strconv.ParseBool reads, as kube-apiserver decodes a boolean query parameter.
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")

# Fields no manager owns (the fieldmanager's stripper): identity and server-set metadata.
_STRIPPED: frozenset[Path] = frozenset({
    ("f:apiVersion",), ("f:kind",),
    *((("f:metadata", f"f:{name}")) for name in (
        "name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation", "selfLink",
        "managedFields")),
})
# Their lengths: a path is stripped when its prefix of one of these lengths is, a set lookup each.
_STRIPPED_LENGTHS = sorted({len(p) for p in _STRIPPED})
# The longest key text the caches below keep (a name, a port, an IP): bounds their memory.
_CACHED_TEXT = 256


@dataclass
class WriteOptions:
    """A write's options as kube-apiserver's Create/Update/PatchOptions carry them; the
    registry appends the warnings the response's `Warning` headers carry."""
    manager: str = ""
    dry_run: bool = False
    validation: str = "Warn"
    force: bool = False
    warnings: list[str] = field(default_factory=list)


def manager_from_user_agent(user_agent: str) -> str:
    """kube-apiserver's default manager: the User-Agent's program name (`kubectl/v1.30 ...` ->
    `kubectl`), printable characters only, at most 128 bytes."""
    name = ""
    for char in user_agent.split("/")[0]:
        if char.isprintable() and len((name + char).encode()) <= MAX_MANAGER_LENGTH:
            name += char
        elif char.isprintable():
            break
    return name


def write_options(query: MultiMapping[str], user_agent: str, options_kind: str, applying: bool) -> WriteOptions:
    """A write's query (`dryRun`, `fieldManager`, `fieldValidation`, `force`) validated as
    kube-apiserver validates Create/Update/Patch/DeleteOptions: 422 naming the field."""
    errors: list[FieldError] = []
    dry_run = list(query.getall("dryRun", []))
    for value in dry_run:
        if value != "All":
            errors.append(FieldError("dryRun", None, f'Unsupported value: {json.dumps(value[:64])}: '
                                                     'supported values: "All"'))
    manager = query.get("fieldManager")
    if manager is not None:
        if len(manager.encode()) > MAX_MANAGER_LENGTH:
            errors.append(FieldError("fieldManager", None,
                                     f"Too long: may not be more than {MAX_MANAGER_LENGTH} bytes"))
        elif not manager.isprintable():
            errors.append(FieldError("fieldManager", manager, "Invalid value: must only contain printable characters"))
    if applying and not manager:
        errors.append(FieldError("fieldManager", None, "Required value: is required for apply patch"))
    validation = query.get("fieldValidation") or "Warn"  # kube-apiserver's default
    if validation not in VALIDATION_DIRECTIVES:
        errors.append(FieldError("fieldValidation", None, f"Unsupported value: {json.dumps(validation[:64])}: "
                                                          'supported values: "Ignore", "Strict", "Warn"'))
    force = query.get("force")
    if force is not None and force not in _GO_TRUE + _GO_FALSE:
        raise BadRequest(f'invalid value for force: strconv.ParseBool: parsing {json.dumps(force[:64])}: invalid syntax')
    if force is not None and not applying:
        errors.append(FieldError("force", None, "Forbidden: may not be specified for non-apply patch"))
    if errors:
        raise ObjectInvalid(f"{options_kind}.meta.k8s.io", "", errors)
    return WriteOptions(manager=manager or manager_from_user_agent(user_agent), dry_run=bool(dry_run),
                        validation=validation, force=force in _GO_TRUE)


def warning_header(text: str) -> str:
    """An RFC 7234 warning as kube-apiserver sends one: `299 - "<text>"`."""
    return "299 - " + json.dumps(text)


# -- field sets ---------------------------------------------------------------------------

def _key_element(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    # bool is an int: `typed` keeps 1, 1.0 and True apart. Long strings are not kept.
    if isinstance(value, (int, float)) or (isinstance(value, str) and len(value) <= _CACHED_TEXT):
        return _scalar_key_element(key, value)
    return "k:" + json.dumps({key: value}, separators=(",", ":"), sort_keys=True)


@functools.lru_cache(maxsize=4096, typed=True)
def _scalar_key_element(key: str, value: str | int | float) -> str:
    # The same few container names and ports on every write of an object.
    return "k:" + json.dumps({key: value}, separators=(",", ":"), sort_keys=True)


def _value_element(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"), sort_keys=True)


def fields_of(value: Any, prefix: Path = (), name: str = "") -> set[Path]:
    """The leaf fields of `value` (and the items of map and set lists, which are members
    themselves): what a manager applying `value` owns."""
    out: set[Path] = set()
    _collect_fields(value, prefix, name, out)
    return out


def _collect_fields(value: Any, prefix: Path, name: str, out: set[Path]) -> None:
    # Into one set: a set per node, merged upwards, was most of a write's managedFields time.
    if isinstance(value, dict):
        if not value:
            if prefix:
                out.add(prefix)
            return
        for k, v in value.items():
            if v is not None:
                _collect_fields(v, prefix + (f"f:{k}",), k, out)
        return
    if isinstance(value, list) and name in MERGE_KEYS:
        for item in value:
            if isinstance(item, dict):
                item_path = prefix + (_key_element(item, MERGE_KEYS[name]),)
                out.add(item_path)
                _collect_fields(item, item_path, "", out)
        return
    if isinstance(value, list) and name in MERGED_SCALAR_LISTS:
        out.update(prefix + (_value_element(v),) for v in value)
        return
    out.add(prefix)


def managed_scope(paths: Iterable[Path], subresource: str | None) -> FieldSet:
    """Only the fields a manager of the endpoint may own: the main resource's managers never
    own status (the strategies reset it), the status subresource's own nothing else."""
    def kept(path: Path) -> bool:
        if any(path[:n] in _STRIPPED for n in _STRIPPED_LENGTHS):
            return False
        is_status = path[:1] == ("f:status",)
        return is_status if subresource == "status" else not is_status
    return frozenset(p for p in paths if p and kept(p))


_ABSENT: tuple[bool, Any] = (False, None)


def _step(node: Any, element: str) -> tuple[bool, Any]:
    """The child of `node` that one path element names, and whether it is there."""
    kind, text = element[:2], element[2:]
    if kind == "f:" and isinstance(node, dict) and text in node:
        return True, node[text]
    if kind == "k:" and isinstance(node, list):
        keys = json.loads(text)
        item = next((i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in keys.items())), None)
        return _ABSENT if item is None else (True, item)
    if kind == "v:" and isinstance(node, list) and json.loads(text) in node:
        return True, json.loads(text)
    return _ABSENT


def get_at(obj: Any, path: Path) -> tuple[bool, Any]:
    """The value at `path` in `obj`, and whether it is there."""
    node = obj
    for element in path:
        found, node = _step(node, element)
        if not found:
            return _ABSENT
    return True, node


class _Resolver:
    """`get_at` over one object for many paths, each prefix walked once: most paths share their
    parents with their siblings."""

    def __init__(self, obj: Any) -> None:
        self._memo: dict[Path, tuple[bool, Any]] = {(): (True, obj)}

    def __call__(self, path: Path) -> tuple[bool, Any]:
        hit = self._memo.get(path)
        if hit is None:
            found, parent = self(path[:-1])
            hit = _step(parent, path[-1]) if found else _ABSENT
            self._memo[path] = hit
        return hit


def remove_at(obj: Any, path: Path) -> None:
    """Removes the field, list item or set value at `path` from `obj` (in place)."""
    found, parent = get_at(obj, path[:-1])
    if not found:
        return
    kind, text = path[-1][:2], path[-1][2:]
    if kind == "f:" and isinstance(parent, dict):
        parent.pop(text, None)
    elif kind == "k:" and isinstance(parent, list):
        keys = json.loads(text)
        parent[:] = [i for i in parent if not (isinstance(i, dict) and all(i.get(k) == v for k, v in keys.items()))]
    elif kind == "v:" and isinstance(parent, list):
        value = json.loads(text)
        parent[:] = [i for i in parent if i != value]


# -- FieldsV1 -----------------------------------------------------------------------------

def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 JSON of a set: nested keys, `.` marking a member that also has children."""
    root: dict[str, Any] = {}
    members = set(paths)
    for path in sorted(members):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = root
        for element in path:
            node = node[element]
        if any(k != "." for k in node):
            node["."] = {}
    return root


def from_fields_v1(fields: Any, where: str) -> FieldSet:
    """The set a FieldsV1 JSON names; a malformed one is a 400 naming `where`."""
    out: set[Path] = set()

    def walk(node: Any, prefix: Path) -> None:
        if not isinstance(node, dict):
            raise BadRequest(f"{where}: FieldsV1 must be an object of objects")
        children = [k for k in node if k != "."]
        if prefix and (not children or "." in node):
            out.add(prefix)
        for key in children:
            if not isinstance(key, str) or key[:2] not in ("f:", "k:", "v:"):
                raise BadRequest(f'{where}: unexpected FieldsV1 key "{str(key)[:64]}"')
            if key[:2] in ("k:", "v:") and not (_is_json(key[2:]) if len(key) <= _CACHED_TEXT else _parses(key[2:])):
                raise BadRequest(f'{where}: invalid FieldsV1 key "{key[:64]}"')
            walk(node[key], prefix + (key,))

    walk(fields, ())
    return frozenset(out)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# Every write reads the stored managedFields again: the same keys each time.
_is_json = functools.lru_cache(maxsize=4096)(_parses)


def path_string(path: Path) -> str:
    """structured-merge-diff's fieldpath.Path.String(): `.spec.containers[name="c"].image`."""
    text = ""
    for element in path:
        kind, rest = element[:2], element[2:]
        if kind == "f:":
            text += f".{rest}"
        elif kind == "k:":
            keys = json.loads(rest)
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(keys.items())) + "]"
        else:
            text += f"[={rest}]"
    return text


# -- managedFields entries ----------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet
    subresource: str = ""

    def same_manager(self, other: "Entry") -> bool:
        # kube's manager identity: everything but the time and the fields.
        return (self.manager, self.operation, self.api_version, self.subresource) == (
            other.manager, other.operation, other.api_version, other.subresource)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
                               "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def describe(self) -> str:
        """How kube's conflict messages name a manager (printManager)."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return f"{text} using {self.api_version}" if self.operation == UPDATE else text


def read_entries(obj: Mapping[str, Any]) -> list[Entry]:
    """The object's metadata.managedFields; a malformed entry is a 400 naming it."""
    raw = obj.get("metadata", {}).get("managedFields") or []
    if not isinstance(raw, list):
        raise BadRequest("metadata.managedFields: must be a list")
    entries = []
    for i, item in enumerate(raw):
        where = f"metadata.managedFields[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where}: must be an object")
        if not item:
            continue  # `[{}]` is how a client resets managedFields
        if item.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise BadRequest(f'{where}.fieldsType: Unsupported value: "{str(item["fieldsType"])[:64]}": '
                             'supported values: "FieldsV1"')
        strings = {k: item.get(k) or "" for k in ("manager", "operation", "apiVersion", "time", "subresource")}
        if not all(isinstance(v, str) for v in strings.values()):
            raise BadRequest(f"{where}: manager, operation, apiVersion, time and subresource must be strings")
        if strings["operation"] not in (APPLY, UPDATE):
            raise BadRequest(f'{where}.operation: Unsupported value: "{strings["operation"][:64]}": '
                             'supported values: "Apply", "Update"')
        entries.append(Entry(strings["manager"], strings["operation"], strings["apiVersion"], strings["time"],
                             from_fields_v1(item.get("fieldsV1") or {}, f"{where}.fieldsV1"),
                             strings["subresource"]))
    return entries


def _record(entries: list[Entry], entry: Entry, taken: FieldSet) -> list[Entry]:
    """`entry` replaces its manager's previous entry; other managers lose `taken`; empty entries go."""
    out: list[Entry] = []
    for e in entries:
        if e.same_manager(entry):
            continue
        rest = e.fields - taken
        if rest:
            out.append(Entry(e.manager, e.operation, e.api_version, e.time, rest, e.subresource))
    if entry.fields:
        out.append(entry)
    return out


def write_entries(obj: dict[str, Any], entries: list[Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    if entries:
        meta["managedFields"] = [e.to_dict() for e in entries]
    else:
        meta.pop("managedFields", None)


def changed_fields(old: Any, new: Any, new_fields: Iterable[Path]) -> FieldSet:
    """The fields of `new` (`new_fields`: `fields_of(new)`) that `old` lacks or has with another value."""
    old_fields = fields_of(old)
    in_old, in_new = _Resolver(old), _Resolver(new)
    same: dict[Path, bool] = {}

    def unchanged(path: Path) -> bool:
        # Equal values have equal values at every path below them: one comparison (in C) of
        # an unchanged subtree, such as a status write's spec, instead of a walk to each leaf.
        hit = same.get(path)
        if hit is None:
            hit = (bool(path) and unchanged(path[:-1])) or in_old(path) == in_new(path)
            same[path] = hit
        return hit

    return frozenset(p for p in new_fields if p not in old_fields or not unchanged(p))


def owned_by_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, api_version: str, time: str,
                    subresource: str | None) -> list[Entry]:
    """managedFields after an Update (create, PUT, non-apply PATCH) from those `new` carries (the
    caller's choice of the live ones or the client's): the manager takes what it changed; fields
    removed leave every manager's set."""
    entries = read_entries(new)
    previous = next((e.fields for e in entries
                     if (e.manager, e.operation, e.subresource) == (manager, UPDATE, subresource or "")), frozenset())
    present = frozenset(fields_of(new))
    # Against nothing (a create) every field is a change: no second walk of `new`.
    # Both filter the same paths one by one: scoping first spares comparing what is dropped anyway.
    scoped = managed_scope(present, subresource)
    changed = changed_fields(old, new, scoped) if old else scoped
    mine = (previous & present) | changed
    entry = Entry(manager, UPDATE, api_version, time, frozenset(mine), subresource or "")
    gone = frozenset(p for e in entries for p in e.fields if p not in present)
    return [Entry(e.manager, e.operation, e.api_version, e.time, e.fields - gone, e.subresource)
            for e in _record(entries, entry, changed) if e.fields - gone]


# -- apply --------------------------------------------------------------------------------

def merge_applied(live: Any, applied: Any, name: str = "") -> Any:
    """The applied configuration merged into `live` by the schema's list types."""
    if isinstance(applied, dict):
        out = dict(live) if isinstance(live, dict) else {}
        for key, value in applied.items():
            if value is not None:
                out[key] = merge_applied(out.get(key), value, key)
        return out
    if isinstance(applied, list) and name in MERGE_KEYS and isinstance(live, list):
        key = MERGE_KEYS[name]
        merged = list(live)
        for item in applied:
            index = next((i for i, old in enumerate(merged) if isinstance(old, dict) and isinstance(item, dict)
                          and old.get(key) == item.get(key)), None)
            if index is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[index] = merge_applied(merged[index], item)
        return merged
    if isinstance(applied, list) and name in MERGED_SCALAR_LISTS and isinstance(live, list):
        return list(live) + [v for v in applied if v not in live]
    return copy.deepcopy(applied)


def apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, api_version: str, time: str,
          force: bool, subresource: str | None = None) -> dict[str, Any]:
    """The object after `manager` applies `applied` to `live` (None: absent), managedFields
    included; conflicts are a 409 listing each field and its manager, as kube-apiserver's."""
    base = live or {}
    entries = read_entries(base)
    mine = managed_scope(fields_of(applied), subresource)
    merged: dict[str, Any] = merge_applied(base, applied)
    conflicts: list[tuple[Entry, Path]] = []
    for entry in entries:
        if entry.manager == manager and entry.operation == APPLY:
            continue
        for path in sorted(entry.fields & mine):
            before, after = get_at(base, path), get_at(merged, path)
            if before[0] and before != after and not isinstance(after[1], dict):
                conflicts.append((entry, path))
    if conflicts and not force and manager == KUBECTL:
        # kube-apiserver's lastAppliedManager: kubectl's apply may take, without forcing, the fields
        # client-side apply set and nobody changed since (last-applied equals live), so moving from
        # `kubectl apply` to `kubectl apply --server-side` is no conflict.
        allowed = _unchanged_since_last_applied(base)
        if all(path in allowed for _, path in conflicts):
            force = True
        else:
            conflicts = [(e, p) for e, p in conflicts if p not in allowed]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    if manager == KUBECTL and LAST_APPLIED in (base.get("metadata", {}).get("annotations") or {}):
        # ... and its lastAppliedUpdater keeps the annotation current, for a return to client-side apply.
        config = copy.deepcopy(applied)
        config.get("metadata", {}).get("annotations", {}).pop(LAST_APPLIED, None)
        merged.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = json.dumps(
            config, separators=(",", ":"))
    this = Entry(manager, APPLY, api_version, time, mine, subresource or "")
    previous = next((e.fields for e in entries if e.same_manager(this)), frozenset())
    # Forcing takes the conflicting fields only; fields set to the same value stay shared.
    result = _record(entries, this, frozenset(p for _, p in conflicts))
    others_own = {p for e in result if not e.same_manager(this) for p in e.fields}
    for path in sorted(previous - mine, key=len, reverse=True):
        if not any(o[:len(path)] == path for o in others_own):
            remove_at(merged, path)
    write_entries(merged, result)
    return merged


def _unchanged_since_last_applied(live: Mapping[str, Any]) -> set[Path]:
    """The fields of the last client-side applied configuration whose live value is the applied one."""
    text = (live.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        last = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return set()
    if not isinstance(last, dict):
        return set()
    return {p for p in fields_of(last) if get_at(last, p) == get_at(live, p)}


def _conflict_error(conflicts: list[tuple[Entry, Path]]) -> Conflict:
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {entry.describe()}: {path_string(path)}"
    else:
        lines: list[str] = []
        for who in sorted({e.describe() for e, _ in conflicts}):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {path_string(p)}" for e, p in conflicts if e.describe() == who]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {e.describe()}", "field": path_string(p)}
              for e, p in conflicts]
    return Conflict(message, details={"causes": causes})
