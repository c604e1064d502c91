"""podbay's one masquerade rule per network: everything leaving the subnet (as the bridge plugin's
ipMasq did per pod) or, for a node whose subnet is part of the cluster CIDR, only what leaves the cluster."""
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


def test_otherwise_what_leaves_the_subnet_is_masqueraded_but_multicast() -> None:
    for config in (NetworkConfig(name="n", subnet="10.123.4.0/24", cluster_cidr="10.244.0.0/16"),
                   NetworkConfig(name="n", subnet="10.123.4.0/24"),
                   NetworkConfig(name="n", subnet="fd00:1::/64", cluster_cidr="10.244.0.0/16")):
        assert not host_masquerade(config)
        assert default_conflist(config)["plugins"][0]["ipMasq"] is False
        assert masquerade_rule(config) == [
            "-s", config.subnet, "!", "-d", config.subnet, "-m", "addrtype", "!", "--dst-type", "MULTICAST",
            "-m", "comment", "--comment", 'name: "n" masquerade leaving the pod network', "-j", "MASQUERADE"]


def test_podbays_former_default_with_the_plugins_masquerade_is_rewritten(tmp_path: Path) -> None:
    network = PodNetwork(NetworkConfig(name="n", subnet="10.123.4.0/24", conf_dir=tmp_path))
    path = network.ensure_conflist()
    former = json.loads(path.read_text())
    former["plugins"][0]["ipMasq"] = True
    former["plugins"].append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    path.write_text(json.dumps(former))
    network.ensure_conflist()
    assert json.loads(path.read_text()) == default_conflist(network.config)


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
