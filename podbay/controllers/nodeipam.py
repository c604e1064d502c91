"""Node IPAM (kube-controller-manager's range allocator, `--allocate-node-cidrs`): every Node
gets a `spec.podCIDR` (and `spec.podCIDRs`) of `--node-cidr-mask-size` bits from `--cluster-cidr`,
never one another node holds. A Node that arrives with a podCIDR keeps it, and marks it taken.

What is taken is read from the Nodes at every pass, so a deleted Node's CIDR is free again at
once without any bookkeeping to lose. As the range allocator's cidrset does, allocation goes
round the range from the CIDR after the last one given, so a just-released CIDR is handed out
again only after every other one: peers that have not yet seen the deletion still route it
to the old node for a moment."""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging

from podbay.api import Node
from podbay.api.errors import Conflict, NotFound
from podbay.api.stored import name_of
from podbay.client import Client
from podbay.controllers.cidrs import DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_CIDR_MASK_SIZE, CIDRRange, Network, parse_range

log = logging.getLogger(__name__)

def node_cidrs(node: Node) -> list[str]:
    return list(node.spec.pod_cidrs) or ([node.spec.pod_cidr] if node.spec.pod_cidr else [])


def next_free(cidrs: CIDRRange, used: list[Network], start: int) -> tuple[Network, int] | None:
    """The first node CIDR from index `start` on (wrapping) that overlaps nothing in `used`, and
    the index to start from next time; None when the range is full."""
    for step in range(cidrs.size):
        index = (start + step) % cidrs.size
        candidate = cidrs.nth(index)
        if not any(candidate.overlaps(u) for u in used):
            return candidate, (index + 1) % cidrs.size
    return None


def assignments(nodes: list[Node], cidrs: CIDRRange, start: int) -> tuple[dict[str, str], int, list[str]]:
    """Which Nodes get which CIDR this pass (pure): {node name: cidr}, the next start index, and
    the names of Nodes left without one because the range is full."""
    used = [ipaddress.ip_network(c, strict=False) for n in nodes for c in node_cidrs(n)]
    out: dict[str, str] = {}
    full: list[str] = []
    for node in sorted(nodes, key=lambda n: (n.metadata.creation_timestamp is None, n.metadata.creation_timestamp,
                                              n.metadata.name)):
        if node_cidrs(node) or node.metadata.deletion_timestamp is not None:
            continue
        found = next_free(cidrs, used, start)
        if found is None:
            full.append(name_of(node))
            continue
        cidr, start = found
        used.append(cidr)
        out[name_of(node)] = str(cidr)
    return out, start, full


class NodeIPAM:
    def __init__(self, client: Client, cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
                 node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE, resync: float = 30.0) -> None:
        self.client = client
        self.cidrs = parse_range(cluster_cidr, node_cidr_mask_size)
        self.resync = resync
        self._next = 0
        self._reported_full: set[str] = set()

    async def allocate_once(self) -> tuple[dict[str, str], str]:
        """Gives every Node without a podCIDR one; returns what it gave and the list's resourceVersion."""
        nodes, rv = await self.client.list(Node)
        wanted, self._next, full = assignments(nodes, self.cidrs, self._next)
        for name in set(full) - self._reported_full:
            log.warning("node %s: no pod CIDR left in %s (/%d each)", name, self.cidrs.cluster, self.cidrs.mask)
        self._reported_full = set(full)
        given: dict[str, str] = {}
        by_name = {n.metadata.name: n for n in nodes}
        for name, cidr in wanted.items():
            node = by_name[name]
            node.spec.pod_cidr, node.spec.pod_cidrs = cidr, [cidr]
            # A Conflict means the Node changed (its agent set a CIDR, say): the next pass sees it.
            with contextlib.suppress(Conflict, NotFound):
                await self.client.update(node)
                given[name] = cidr
                log.info("node %s: podCIDR %s", name, cidr)
        return given, rv

    async def run(self) -> None:
        """A pass at start, at every Node event and every `resync` seconds."""
        while True:
            try:
                _, rv = await self.allocate_once()
                async with asyncio.timeout(self.resync):
                    async for kind, node in self.client.watch(Node, resource_version=rv):
                        if kind == "DELETED" or not node_cidrs(node):
                            await self.allocate_once()
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node IPAM pass failed: %s", exc)
                await asyncio.sleep(1.0)
