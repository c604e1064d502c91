"""The per-resource strategies' rules kube-apiserver's strategy.go files give (pure)."""
from __future__ import annotations

from typing import Any

import pytest

from podbay.api.errors import Forbidden
from podbay.apiserver.strategies import STRATEGIES, Strategy, strategy_for


def _pod(node: str = "", phase: str = "Running", grace: int | None = None,
         deletion_grace: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node} if node else {}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    meta: dict[str, Any] = {"name": "p", "namespace": "default"}
    if deletion_grace is not None:
        meta["deletionGracePeriodSeconds"] = deletion_grace
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def test_a_kind_without_rules_gets_the_no_op_strategy() -> None:
    strategy = strategy_for("configmaps")
    assert type(strategy) is Strategy and "configmaps" not in STRATEGIES
    assert strategy.check_graceful_delete(_pod("n1"), None) == 0
    assert not strategy.graceful and strategy.collects_finalized and not strategy.allocates(None)


def test_only_a_bound_unfinished_pod_is_deleted_gracefully() -> None:
    pods = strategy_for("pods")
    assert pods.check_graceful_delete(_pod(), None) == 0
    assert pods.check_graceful_delete(_pod("n1", phase="Succeeded"), None) == 0
    assert pods.check_graceful_delete(_pod("n1"), None) == 30
    assert pods.check_graceful_delete(_pod("n1", grace=7), None) == 7
    assert pods.check_graceful_delete(_pod("n1", grace=7), 2) == 2


def test_a_second_pod_delete_may_only_shorten_the_grace_period() -> None:
    pods = strategy_for("pods")
    assert pods.check_graceful_delete(_pod("n1", deletion_grace=3), 10) == 3
    assert pods.check_graceful_delete(_pod("n1", deletion_grace=3), 1) == 1


def test_a_forced_delete_marks_only_a_pod_that_may_be_running() -> None:
    pods = strategy_for("pods")
    assert pods.marks_before_forced_delete(_pod("n1"))
    assert not pods.marks_before_forced_delete(_pod())
    assert not pods.marks_before_forced_delete(_pod("n1", phase="Failed"))


def test_namespace_names_are_labels_other_names_subdomains() -> None:
    assert strategy_for("namespaces").validate_name("a.b")[0].path == "metadata.name"
    assert strategy_for("configmaps").validate_name("a.b") == []
    assert strategy_for("namespaces").validate_name("x" * 64)
    assert strategy_for("namespaces").validate_name("x" * 63) == []


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_system_namespaces_may_not_be_deleted(name: str) -> None:
    with pytest.raises(Forbidden, match="may not be deleted"):
        strategy_for("namespaces").check_delete(name)


def test_kube_node_lease_may_be_deleted() -> None:
    strategy_for("namespaces").check_delete("kube-node-lease")


def test_replication_controllers_scale_selector_is_their_map() -> None:
    assert strategy_for("replicationcontrollers").scale_selector({"selector": {"b": "2", "a": "1"}}) == "a=1,b=2"
    assert strategy_for("replicasets").scale_selector({"selector": {"matchLabels": {"a": "1"}}}) is None
