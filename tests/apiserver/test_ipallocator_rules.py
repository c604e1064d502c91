"""ClusterIP and NodePort allocation as kube-apiserver's allocators choose (pure)."""
from __future__ import annotations

import ipaddress
import random

import pytest

from podbay.apiserver.ipallocator import (
    AllocationError,
    ServiceRanges,
    allocate_ip,
    allocate_node_port,
    parse_port_range,
)


def test_requested_ip_must_be_free_and_inside_the_range() -> None:
    assert allocate_ip("10.96.0.0/24", set(), "10.96.0.10") == "10.96.0.10"
    with pytest.raises(AllocationError, match="already allocated"):
        allocate_ip("10.96.0.0/24", {"10.96.0.10"}, "10.96.0.10")
    with pytest.raises(AllocationError, match="not in the valid range. The range of valid IPs is 10.96.0.0/24"):
        allocate_ip("10.96.0.0/24", set(), "10.97.0.1")
    for edge in ("10.96.0.0", "10.96.0.255"):  # network and broadcast addresses are never handed out
        with pytest.raises(AllocationError):
            allocate_ip("10.96.0.0/24", set(), edge)


def test_dynamic_ips_come_from_the_upper_band_first() -> None:
    rng = random.Random(7)
    net = ipaddress.IPv4Network("10.96.0.0/24")
    got = {allocate_ip(str(net), set(), None, rng) for _ in range(50)}
    # /24: 254 usable, the lower band (16) is left for Services that name their IP.
    assert all(int(ipaddress.IPv4Address(ip)) - int(net.network_address) > 16 for ip in got)


def test_a_full_range_is_an_error_and_the_last_free_address_is_found() -> None:
    used = {f"10.96.0.{i}" for i in range(1, 255)}
    with pytest.raises(AllocationError, match="range is full"):
        allocate_ip("10.96.0.0/24", used, None)
    assert allocate_ip("10.96.0.0/24", used - {"10.96.0.3"}, None) == "10.96.0.3"


def test_node_ports() -> None:
    assert parse_port_range("30000-32767") == (30000, 32767)
    assert allocate_node_port((30000, 30002), {30000, 30001}, None) == 30002
    with pytest.raises(AllocationError, match="already allocated"):
        allocate_node_port((30000, 30002), {30001}, 30001)
    with pytest.raises(AllocationError, match="valid range of ports is 30000-30002|The range of valid ports"):
        allocate_node_port((30000, 30002), set(), 8080)
    with pytest.raises(AllocationError, match="range is full"):
        allocate_node_port((30000, 30000), {30000}, None)
    with pytest.raises(ValueError):
        parse_port_range("32767-30000")


def test_the_kubernetes_service_takes_the_first_address() -> None:
    assert ServiceRanges().kubernetes_ip() == "10.96.0.1"
