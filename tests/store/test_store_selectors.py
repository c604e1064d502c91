"""Label and field selector parsing and matching (pure)."""
from __future__ import annotations

import pytest

from podbay.api.errors import BadRequest
from podbay.store.selectors import parse_field_selector, parse_label_selector

LABELS = {"app": "web", "tier": "front", "env": "prod"}


@pytest.mark.parametrize(
    "selector, matches",
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app!=db", True),
        ("missing!=x", True),  # != matches objects without the label
        ("app in (web, db)", True),
        ("app in (db)", False),
        ("app notin (db,cache)", True),
        ("missing notin (a)", True),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("app=web,tier=front,env in (prod)", True),
        ("app=web,tier=back", False),
        ("example.com/role=x", False),
    ],
)
def test_label_selector_matches_as_kubernetes(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize("bad", ["app=we b", "-app=x", "app in ()", "a,,b", "app=" + "x" * 64])
def test_label_selector_rejects_bad_syntax(bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_label_selector(bad)


POD = {
    "metadata": {"name": "p1", "namespace": "ns1"},
    "spec": {"nodeName": "n1", "hostNetwork": True},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    "selector, matches",
    [
        ("metadata.name=p1", True),
        ("metadata.name==p1", True),
        ("metadata.namespace!=ns1", False),
        ("spec.nodeName=n1,status.phase=Running", True),
        ("spec.nodeName=", False),
        ("status.phase!=Succeeded,status.phase!=Failed", True),
        ("spec.hostNetwork=true", True),
    ],
)
def test_field_selector_matches(selector: str, matches: bool) -> None:
    assert parse_field_selector(selector, "pods").matches(POD) is matches


def test_unbound_pods_match_empty_node_name() -> None:
    unbound = {"metadata": {"name": "p"}, "spec": {}}
    assert parse_field_selector("spec.nodeName=", "pods").matches(unbound)


def test_field_selector_refuses_unindexed_fields() -> None:
    with pytest.raises(BadRequest, match="field label not supported: spec.containers"):
        parse_field_selector("spec.containers=x", "pods")
    with pytest.raises(BadRequest):
        parse_field_selector("justtext", "pods")
