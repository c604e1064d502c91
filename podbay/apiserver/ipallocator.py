"""Service ClusterIPs and NodePorts, as kube-apiserver allocates them (pure: the registry passes
what the stored Services already hold)."""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"


class AllocationError(ValueError):
    """What kube-apiserver says when it cannot allocate (the field error's message)."""


@dataclass(frozen=True)
class ServiceRanges:
    """kube-apiserver's --service-cluster-ip-range and --service-node-port-range."""
    cluster_ip_range: str = DEFAULT_SERVICE_CIDR
    node_port_range: str = DEFAULT_NODE_PORT_RANGE

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cluster_ip_range)

    @property
    def node_ports(self) -> tuple[int, int]:
        return parse_port_range(self.node_port_range)

    def kubernetes_ip(self) -> str:
        """The first address of the range: the `kubernetes` Service's, as kube-apiserver reserves it."""
        return str(self.network.network_address + 1)


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: want FIRST-LAST") from None
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"invalid port range {text!r}")
    return first, last


def _band(size: int) -> int:
    """The lower part of a range kept for static choices (KEP-3070): min(max(16, size/16), 256)."""
    return min(max(16, size // 16), 256)


def allocate_ip(cidr: str, used: set[str], requested: str | None, rng: random.Random | None = None) -> str:
    """`requested` if it is free and in range, else a free address: dynamic ones come from the
    upper band first, leaving the lower band to Services that ask for theirs."""
    net = ipaddress.IPv4Network(cidr)
    if requested:
        ip = ipaddress.IPv4Address(requested)
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            raise AllocationError(f"failed to allocate IP {requested}: the provided IP ({requested}) is not in the "
                                  f"valid range. The range of valid IPs is {cidr}")
        if requested in used:
            raise AllocationError(f"failed to allocate IP {requested}: provided IP is already allocated")
        return requested
    first, size = int(net.network_address) + 1, net.num_addresses - 2
    band = _band(size) if size > 2 * _band(size) else 0
    rng = rng or random.Random()
    for low, high in ((first + band, first + size), (first, first + band)):
        free = high - low - sum(1 for u in used if low <= int(ipaddress.IPv4Address(u)) < high)
        if free <= 0:
            continue
        # A random start, then the next free one: as the bitmap allocator walks from a random offset.
        start = rng.randrange(low, high)
        for n in range(high - low):
            candidate = str(ipaddress.IPv4Address(low + (start - low + n) % (high - low)))
            if candidate not in used:
                return candidate
    raise AllocationError("failed to allocate a serviceIP: range is full")


def allocate_node_port(port_range: tuple[int, int], used: set[int], requested: int | None,
                       rng: random.Random | None = None) -> int:
    first, last = port_range
    if requested:
        if not first <= requested <= last:
            raise AllocationError(f"provided port is not in the valid range. The range of valid ports is "
                                  f"{first}-{last}")
        if requested in used:
            raise AllocationError("provided port is already allocated")
        return requested
    free = [p for p in range(first, last + 1) if p not in used]
    if not free:
        raise AllocationError("range is full")
    return (rng or random.Random()).choice(free)
