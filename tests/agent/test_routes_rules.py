"""Host-gw routing rules: which routes the agent wants and what changes reach them (pure)."""
from __future__ import annotations

from podbay.agent.routes import Peer, peer_of, wanted_routes
from podbay.api import Node
from podbay.api.serialize import from_dict
from podbay.runtime.hostgw import RouteChanges, route_changes


def test_every_other_node_is_routed_via_its_internal_ip() -> None:
    peers = [Peer("me", "192.168.250.2", ("10.244.0.0/24",)), Peer("b", "192.168.250.3", ("10.244.1.0/24",)),
             Peer("c", "192.168.250.4", ("10.244.2.0/24", "fd00:10:0:2::/64"))]
    assert wanted_routes(peers, "me", {"192.168.250.2"}) == {"10.244.1.0/24": "192.168.250.3",
                                                              "10.244.2.0/24": "192.168.250.4"}


def test_nodes_on_this_host_or_without_address_or_clashing_are_not_routed() -> None:
    peers = [Peer("me", "192.168.250.2", ("10.244.0.0/24",)),
             Peer("same-host", "192.168.250.2", ("10.244.1.0/24",)),
             Peer("loop", "127.0.0.1", ("10.244.2.0/24",)),
             Peer("silent", None, ("10.244.3.0/24",)),
             Peer("overlaps-me", "192.168.250.5", ("10.244.0.0/23",)),
             Peer("a-first", "192.168.250.6", ("10.244.4.0/24",)),
             Peer("b-dup", "192.168.250.7", ("10.244.4.0/24",))]
    assert wanted_routes(peers, "me", {"192.168.250.2"}) == {"10.244.4.0/24": "192.168.250.6"}


def test_peer_reads_spec_and_addresses() -> None:
    n = from_dict(Node, {"metadata": {"name": "b"}, "spec": {"podCIDR": "10.244.1.0/24"},
                         "status": {"addresses": [{"type": "Hostname", "address": "b"},
                                                  {"type": "InternalIP", "address": "192.168.250.3"}]}})
    assert peer_of(n) == Peer("b", "192.168.250.3", ("10.244.1.0/24",))


def test_route_changes_add_replace_and_delete_only_what_differs() -> None:
    current = {"10.244.1.0/24": "192.168.250.3", "10.244.2.0/24": "192.168.250.4", "10.244.9.0/24": "192.168.250.9"}
    wanted = {"10.244.1.0/24": "192.168.250.3", "10.244.2.0/24": "192.168.250.8", "10.244.3.0/24": "192.168.250.5"}
    assert route_changes(wanted, current) == RouteChanges(
        put={"10.244.2.0/24": "192.168.250.8", "10.244.3.0/24": "192.168.250.5"}, delete=("10.244.9.0/24",))
    assert not route_changes(wanted, wanted)
