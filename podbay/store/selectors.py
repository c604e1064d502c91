"""Label and field selectors: parsing and matching, pure functions.

Grammar follows Kubernetes' `labels.Parse` and `fields.ParseSelector`:
label requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
`k`, `!k`, joined by commas; field requirements `path=v`, `path==v`,
`path!=v`. Field paths are limited to the ones Kubernetes indexes for each
resource, so a typo is an error rather than a selector that never matches.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from podbay.api.errors import BadRequest

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")

# Field paths Kubernetes supports per resource (its field label conversion funcs).
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
SUPPORTED_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": _COMMON_FIELDS
    + (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "nodes": _COMMON_FIELDS + ("spec.unschedulable",),
    "namespaces": _COMMON_FIELDS + ("status.phase",),
    "events": _COMMON_FIELDS
    + (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label, as in Kubernetes.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    operator: str  # "=" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = field_value(obj, self.path) == self.value
        return equal if self.operator == "=" else not equal


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares: absent fields read as ""."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
        if node is None:
            return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, Mapping):
        # `source` on events selects by component, as in Kubernetes.
        return str(node.get("component", ""))
    return str(node)


def _split_top_level(text: str) -> list[str]:
    """Splits on commas outside parentheses (the value lists of in/notin)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _check_key(key: str, selector: str) -> None:
    if len(key.rpartition("/")[2]) > 63 or not _LABEL_KEY.match(key):
        raise BadRequest(f'unable to parse requirement: invalid label key "{key}" in selector "{selector}"')


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise BadRequest(
            f'unable to parse requirement: invalid label value: "{value}" in selector "{selector}"'
        )


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")


def parse_label_selector(text: str | None) -> LabelSelector:
    if text is None or not text.strip():
        return LabelSelector()
    requirements = []
    for part in _split_top_level(text):
        if not part:
            raise BadRequest(f'unable to parse requirement: empty requirement in selector "{text}"')
        set_match = _SET_RE.match(part)
        if set_match:
            key = set_match["key"]
            _check_key(key, text)
            values = tuple(v.strip() for v in set_match["values"].split(","))
            if values == ("",):
                raise BadRequest(f'unable to parse requirement: for \'in\', \'notin\' operators, values set can\'t be empty in selector "{text}"')
            for v in values:
                _check_value(v, text)
            requirements.append(LabelRequirement(key, set_match["op"], tuple(sorted(set(values)))))
            continue
        for op in ("!=", "==", "="):
            if op in part:
                key, _, value = (s.strip() for s in part.partition(op))
                _check_key(key, text)
                _check_value(value, text)
                requirements.append(LabelRequirement(key, "!=" if op == "!=" else "=", (value,)))
                break
        else:
            if part.startswith("!"):
                key = part[1:].strip()
                _check_key(key, text)
                requirements.append(LabelRequirement(key, "!exists"))
            else:
                _check_key(part, text)
                requirements.append(LabelRequirement(part, "exists"))
    return LabelSelector(tuple(requirements))


def parse_field_selector(text: str | None, resource: str | None = None) -> FieldSelector:
    """Parses `path=v,path!=v`; with `resource`, refuses fields it does not index."""
    if text is None or not text.strip():
        return FieldSelector()
    requirements = []
    for part in (p.strip() for p in text.split(",")):
        for op in ("!=", "==", "="):
            if op in part:
                path, _, value = (s.strip() for s in part.partition(op))
                break
        else:
            raise BadRequest(f'invalid selector: \'{text}\'; can\'t understand \'{part}\'')
        if not path:
            raise BadRequest(f'invalid selector: \'{text}\'; can\'t understand \'{part}\'')
        if resource is not None and path not in SUPPORTED_FIELDS.get(resource, _COMMON_FIELDS):
            raise BadRequest(f'field label not supported: {path}')
        requirements.append(FieldRequirement(path, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(requirements))
