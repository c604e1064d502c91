"""The cluster CIDR and its cut into node CIDRs (--cluster-cidr, --node-cidr-mask-size), apart
from node IPAM (podbay.controllers.nodeipam) so that the command line checks the flags without
loading the controller and its client."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

Network = IPv4Network | IPv6Network

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_NODE_CIDR_MASK_SIZE = 24


@dataclass(frozen=True)
class CIDRRange:
    """The cluster CIDR cut into node CIDRs of `mask` bits (kube-controller-manager refuses a
    mask not longer than the cluster's, as does `parse_range`)."""
    cluster: Network
    mask: int

    @property
    def size(self) -> int:
        return 1 << (self.mask - self.cluster.prefixlen)

    def nth(self, index: int) -> Network:
        step = 1 << (self.cluster.max_prefixlen - self.mask)
        return ipaddress.ip_network((int(self.cluster.network_address) + index * step, self.mask))


def parse_range(cluster_cidr: str, mask: int) -> CIDRRange:
    cluster = ipaddress.ip_network(cluster_cidr)
    if not cluster.prefixlen < mask <= cluster.max_prefixlen:
        raise ValueError(f"--node-cidr-mask-size {mask} must be longer than --cluster-cidr {cluster}'s "
                         f"/{cluster.prefixlen} and at most /{cluster.max_prefixlen}")
    if mask - cluster.prefixlen > 16:
        # The range allocator's own limit: a bitmap of more than 65536 node CIDRs.
        raise ValueError(f"--node-cidr-mask-size {mask} cuts {cluster} into more than 65536 node CIDRs")
    return CIDRRange(cluster, mask)
