"""Who masquerades pods' traffic: the bridge plugin (everything leaving the subnet) or, for a node
whose subnet is part of the cluster CIDR, podbay's one rule (only what leaves the cluster)."""
from __future__ import annotations

import json
from pathlib import Path

from podbay.runtime.network import (NetworkConfig, PodNetwork, default_conflist, host_masquerade, masquerade_rule,
                                    nat_rules_to_drop, plugin_comment)


def test_a_subnet_inside_the_cluster_cidr_is_masqueraded_by_podbay_only_leaving_the_cluster() -> None:
    config = NetworkConfig(name="n", subnet="10.244.3.0/24", cluster_cidr="10.244.0.0/16")
    assert host_masquerade(config)
    assert default_conflist(config)["plugins"][0]["ipMasq"] is False
    assert masquerade_rule(config) == ["-s", "10.244.3.0/24", "!", "-d", "10.244.0.0/16", "-m", "comment",
                                       "--comment", 'name: "n" masquerade leaving the cluster', "-j", "MASQUERADE"]


def test_otherwise_the_bridge_plugin_masquerades_as_before() -> None:
    for config in (NetworkConfig(subnet="10.123.4.0/24", cluster_cidr="10.244.0.0/16"),
                   NetworkConfig(subnet="10.244.3.0/24"),
                   NetworkConfig(subnet="fd00:1::/64", cluster_cidr="10.244.0.0/16")):
        assert not host_masquerade(config)
        assert default_conflist(config)["plugins"][0]["ipMasq"] is True


def test_the_network_shutdown_finds_the_rule_by_the_plugins_comment() -> None:
    saved = ("*nat\n:POSTROUTING ACCEPT [0:0]\n"
             '-A POSTROUTING -s 10.244.3.0/24 ! -d 10.244.0.0/16 -m comment --comment '
             '"name: \\"n\\" masquerade leaving the cluster" -j MASQUERADE\n'
             '-A POSTROUTING -s 10.9.0.0/24 -m comment --comment "name: \\"other\\" id: \\"x\\"" -j CNI-x\nCOMMIT\n')
    batch = nat_rules_to_drop(saved, plugin_comment("n"))
    assert batch[1].startswith("-D POSTROUTING -s 10.244.3.0/24 ! -d 10.244.0.0/16") and len(batch) == 4


def test_podbays_own_conflist_follows_the_nodes_subnet_but_a_users_file_stays(tmp_path: Path) -> None:
    old = PodNetwork(NetworkConfig(name="n", subnet="10.244.1.0/24", cluster_cidr="10.244.0.0/16", conf_dir=tmp_path))
    path = old.ensure_conflist()
    new = NetworkConfig(name="n", subnet="10.244.7.0/24", cluster_cidr="10.244.0.0/16", conf_dir=tmp_path)
    PodNetwork(new).ensure_conflist()
    assert json.loads(path.read_text()) == default_conflist(new)
    users = {**default_conflist(new), "plugins": [{"type": "bridge", "bridge": "mine"}]}
    path.write_text(json.dumps(users))
    PodNetwork(NetworkConfig(name="n", subnet="10.244.9.0/24", conf_dir=tmp_path)).ensure_conflist()
    assert json.loads(path.read_text()) == users
