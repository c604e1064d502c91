"""Host-gw pod routing (flannel's host-gw, kubenet's routes): every other Node's podCIDR is routed
via that Node's InternalIP, kept in step with the Nodes as they come, change and go."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass

from podbay.api import Node
from podbay.api.stored import name_of
from podbay.client import Client
from podbay.runtime import hostgw

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    name: str
    address: str | None  # InternalIP
    pod_cidrs: tuple[str, ...]


def peer_of(node: Node) -> Peer:
    address = next((a.address for a in node.status.addresses if a.type == "InternalIP"), None)
    cidrs = tuple(node.spec.pod_cidrs) or ((node.spec.pod_cidr,) if node.spec.pod_cidr else ())
    return Peer(name_of(node), address, cidrs)


def wanted_routes(peers: list[Peer], own_name: str, local_addresses: set[str]) -> dict[str, str]:
    """Destination -> gateway for every other node's pod CIDRs (pure). Skipped: nodes without an
    address, nodes at one of this host's own addresses or a loopback one (several nodes on one
    host reach each other's bridges directly), CIDRs of another family than the address, and a
    CIDR overlapping this node's own or one already routed (the first node by name keeps it)."""
    own = [ipaddress.ip_network(c, strict=False) for p in peers if p.name == own_name for c in p.pod_cidrs]
    taken = list(own)
    wanted: dict[str, str] = {}
    for peer in sorted(peers, key=lambda p: p.name):
        if peer.name == own_name or not peer.address:
            continue
        gateway = ipaddress.ip_address(peer.address)
        if gateway.is_loopback or peer.address in local_addresses:
            continue
        for cidr in peer.pod_cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            if net.version != gateway.version or any(net.overlaps(t) for t in taken):
                continue
            taken.append(net)
            wanted[str(net)] = peer.address
    return wanted


class HostRoutes:
    """Lists and watches Nodes; after each change the host's podbay routes are made to match."""

    def __init__(self, client: Client, node_name: str, resync: float = 30.0) -> None:
        self.client = client
        self.node_name = node_name
        self.resync = resync

    async def sync(self, nodes: dict[str, Node]) -> None:
        wanted = wanted_routes([peer_of(n) for n in nodes.values()], self.node_name, await hostgw.local_addresses())
        current = await hostgw.owned_routes()
        changes = hostgw.route_changes(wanted, current)
        if not changes:
            return
        errors = await hostgw.apply(changes, current)
        log.info("host-gw routes: set %s, removed %s", changes.put or "none", list(changes.delete) or "none")
        for error in errors:
            log.warning("host-gw: %s", error)

    async def run(self) -> None:
        """Until cancelled; `remove` then takes the routes away."""
        while True:
            try:
                listed, rv = await self.client.list(Node)
                nodes = {name_of(n): n for n in listed}
                await self.sync(nodes)
                # The resync also repairs routes someone removed by hand.
                async with asyncio.timeout(self.resync):
                    async for kind, node in self.client.watch(Node, resource_version=rv):
                        name = name_of(node)
                        before = nodes.get(name)
                        if kind == "DELETED":
                            nodes.pop(name, None)
                        else:
                            nodes[name] = node
                        # Heartbeats modify every Node every few seconds; only addresses and CIDRs matter.
                        if kind == "DELETED" or before is None or peer_of(before) != peer_of(node):
                            await self.sync(nodes)
            except TimeoutError:
                continue
            except Exception as exc:
                log.warning("host-gw route sync failed: %s", exc)
                await asyncio.sleep(1.0)

    @staticmethod
    async def remove() -> None:
        """Every podbay route goes once the agent stops, as nothing keeps them current any more."""
        for error in await hostgw.remove_owned_routes():
            log.warning("host-gw: %s", error)
