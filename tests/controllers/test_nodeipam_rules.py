"""Node IPAM's allocation rules (kube-controller-manager's range allocator), as pure functions."""
from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta, timezone

import pytest

from podbay.api import Node
from podbay.api.serialize import from_dict
from podbay.controllers.nodeipam import assignments, next_free, parse_range

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def node(name: str, cidr: str | None = None, age: int = 0, deleting: bool = False) -> Node:
    meta = {"name": name, "creationTimestamp": (T0 + timedelta(seconds=age)).isoformat()}
    if deleting:
        meta["deletionTimestamp"] = T0.isoformat()
    return from_dict(Node, {"metadata": meta, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}})


def test_the_range_is_cut_into_node_cidrs() -> None:
    cidrs = parse_range("10.244.0.0/16", 24)
    assert cidrs.size == 256
    assert [str(cidrs.nth(i)) for i in (0, 1, 255)] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.255.0/24"]
    assert str(parse_range("fd00:10::/56", 64).nth(3)) == "fd00:10:0:3::/64"


@pytest.mark.parametrize("cluster, mask", [("10.244.0.0/16", 16), ("10.244.0.0/16", 8), ("10.0.0.0/8", 25),
                                           ("10.244.0.0/16", 33), ("not-a-cidr", 24)])
def test_bad_ranges_are_refused(cluster: str, mask: int) -> None:
    with pytest.raises(ValueError):
        parse_range(cluster, mask)


def test_new_nodes_get_distinct_cidrs_oldest_first() -> None:
    given, nxt, full = assignments([node("b", age=2), node("a", age=1)], parse_range("10.244.0.0/16", 24), 0)
    assert given == {"a": "10.244.0.0/24", "b": "10.244.1.0/24"} and nxt == 2 and full == []


def test_a_node_that_has_a_cidr_keeps_it_and_nobody_else_gets_it() -> None:
    nodes = [node("own", "10.244.0.0/24"), node("wide", "10.244.2.0/23"), node("outside", "10.99.0.0/24"),
             node("new", age=5), node("newer", age=6)]
    given, _, _ = assignments(nodes, parse_range("10.244.0.0/16", 24), 0)
    # 10.244.2.0/23 covers .2 and .3: both are taken.
    assert given == {"new": "10.244.1.0/24", "newer": "10.244.4.0/24"}


def test_allocation_goes_round_so_a_released_cidr_is_reused_last() -> None:
    cidrs = parse_range("10.244.0.0/16", 24)
    given, nxt, _ = assignments([node("a"), node("b")], cidrs, 0)
    # "a" is deleted; a new node gets the next CIDR, not a's.
    given2, _, _ = assignments([node("b", given["b"]), node("c")], cidrs, nxt)
    assert given2 == {"c": "10.244.2.0/24"}
    # Once the range wraps, the freed one is found.
    cidr, after = next_free(parse_range("10.0.0.0/30", 31), [ipaddress.ip_network("10.0.0.2/31")], 1)
    assert (str(cidr), after) == ("10.0.0.0/31", 1)


def test_a_full_range_leaves_nodes_waiting_and_deleting_nodes_get_nothing() -> None:
    cidrs = parse_range("10.0.0.0/23", 24)
    given, _, full = assignments([node("a", "10.0.0.0/24"), node("gone", deleting=True), node("b", age=1),
                                  node("c", age=2)], cidrs, 0)
    assert given == {"b": "10.0.1.0/24"} and full == ["c"]
