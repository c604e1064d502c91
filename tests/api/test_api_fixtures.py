"""The Kubernetes documentation's example pods, and a fuzz of mutated manifests that must only
ever give structured validation errors."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podbay.api.defaults import default_pod
from podbay.api.errors import FieldError, Invalid
from podbay.api.formats import load_objects, load_pods
from podbay.api.serialize import to_dict
from podbay.api.validation import validate_pod

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.yaml"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_documentation_examples_are_valid_and_round_trip(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    pod = load_pods(path)[0]
    assert validate_pod(default_pod(pod)) == []
    assert to_dict(pod) == {**data, "status": {}}


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.text(max_size=12),
                    st.just("Always"), st.just("Web"), st.just("/abs"), st.just("1Gi"), st.just("-1"))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


BASES = [yaml.safe_load(p.read_text()) for p in FIXTURES]


# The issue asks for at least 10,000 manifests; about a minute here, well within the CI budget.
@settings(max_examples=int(os.environ.get("PODBAY_FUZZ_EXAMPLES", "10000")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_manifests_give_only_structured_errors(data) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(BASES)))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(VALUES)
    try:
        objs = load_objects(yaml.safe_dump(doc), "fuzz.yaml")
    except Invalid as exc:
        assert exc.errors and all(isinstance(e, FieldError) and e.path for e in exc.errors)
        return
    for pod in objs:
        errors = validate_pod(default_pod(pod))
        assert all(isinstance(e, FieldError) and e.path for e in errors)
