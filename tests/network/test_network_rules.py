"""Pure rules of the pod network: hostPort conflicts, the default conflist, result validation."""
from __future__ import annotations

import json
from pathlib import Path

from podbay.runtime.cni import result_problems
from podbay.runtime.hostports import PodAddress, rules
from podbay.runtime.network import (NetworkConfig, PodNetwork, PortMapping, plugin_comment, nat_rules_to_drop, default_conflist,
                                    host_port_conflicts)


def test_same_port_and_protocol_on_any_address_conflicts() -> None:
    existing = [PortMapping(8080, 80)]
    assert host_port_conflicts(existing, [PortMapping(8080, 8080, host_ip="127.0.0.1")]) == [
        "hostPort 8080/TCP on 127.0.0.1 is already allocated to another pod (on 0.0.0.0)"]
    assert host_port_conflicts([PortMapping(8080, 80, host_ip="0.0.0.0")], [PortMapping(8080, 80)])


def test_other_protocol_port_or_distinct_addresses_do_not_conflict() -> None:
    existing = [PortMapping(8080, 80, host_ip="127.0.0.1")]
    assert host_port_conflicts(existing, [PortMapping(8080, 80, protocol="UDP")]) == []
    assert host_port_conflicts(existing, [PortMapping(8081, 80)]) == []
    assert host_port_conflicts(existing, [PortMapping(8080, 80, host_ip="127.0.0.2")]) == []


def test_protocol_compared_case_insensitively() -> None:
    assert host_port_conflicts([PortMapping(53, 53, protocol="udp")], [PortMapping(53, 53, protocol="UDP")])


def test_one_pod_asking_twice_for_a_host_port_conflicts() -> None:
    assert host_port_conflicts([], [PortMapping(80, 80), PortMapping(80, 8080, host_ip="10.0.0.1")]) == [
        "hostPort 80/TCP on 10.0.0.1 is requested twice"]


def test_default_conflist_is_the_bridge_alone(tmp_path: Path) -> None:
    config = NetworkConfig(name="n", bridge="br9", subnet="10.9.0.0/24", cache_dir=tmp_path)
    conflist = default_conflist(config)
    assert conflist["cniVersion"] == "1.0.0" and conflist["name"] == "n"
    [bridge] = conflist["plugins"]  # hostPorts are podbay's own rules (runtime/hostports.py)
    # Masquerading is podbay's one rule per network (test_masquerade_rules.py).
    assert bridge["bridge"] == "br9" and bridge["isGateway"] and not bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.9.0.0/24"}]]
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))


def test_ensure_conflist_never_replaces_a_users_file(tmp_path: Path) -> None:
    network = PodNetwork(NetworkConfig(conf_dir=tmp_path))
    path = network.ensure_conflist()
    assert path == tmp_path / "podbay.conflist" and '"bridge"' in path.read_text()
    path.write_text("{}")
    assert network.ensure_conflist().read_text() == "{}"


def test_the_former_default_with_portmap_is_rewritten(tmp_path: Path) -> None:
    network = PodNetwork(NetworkConfig(conf_dir=tmp_path, cache_dir=tmp_path))
    path = network.ensure_conflist()
    former = json.loads(path.read_text())
    former["plugins"].append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    path.write_text(json.dumps(former))
    assert '"portmap"' not in network.ensure_conflist().read_text()


def test_host_port_rules_dnat_local_traffic_and_masquerade_hairpin_and_localhost() -> None:
    pod = PodAddress.parse("10.9.0.7/24")
    comment = 'name: "net" id: "c1"'
    tag = '-m comment --comment "name: \\"net\\" id: \\"c1\\""'
    assert rules([PortMapping(18080, 8080), PortMapping(53, 5353, "UDP", host_ip="127.0.0.1")], pod, comment) == [
        f"-I PREROUTING -p tcp --dport 18080 -m addrtype --dst-type LOCAL {tag} -j DNAT --to-destination 10.9.0.7:8080",
        f"-I OUTPUT -p tcp --dport 18080 -m addrtype --dst-type LOCAL {tag} -j DNAT --to-destination 10.9.0.7:8080",
        "-I POSTROUTING -p tcp -s 10.9.0.0/24 -d 10.9.0.7 --dport 8080 -m conntrack --ctstate DNAT "
        f"--ctorigdstport 18080 {tag} -j MASQUERADE",
        "-I POSTROUTING -p tcp -s 127.0.0.1 -d 10.9.0.7 --dport 8080 -m conntrack --ctstate DNAT "
        f"--ctorigdstport 18080 {tag} -j MASQUERADE",
        f"-I PREROUTING -p udp -d 127.0.0.1 --dport 53 -m addrtype --dst-type LOCAL {tag} -j DNAT "
        "--to-destination 10.9.0.7:5353",
        f"-I OUTPUT -p udp -d 127.0.0.1 --dport 53 -m addrtype --dst-type LOCAL {tag} -j DNAT "
        "--to-destination 10.9.0.7:5353",
        "-I POSTROUTING -p udp -s 10.9.0.0/24 -d 10.9.0.7 --dport 5353 -m conntrack --ctstate DNAT "
        f"--ctorigdstport 53 {tag} -j MASQUERADE",
        "-I POSTROUTING -p udp -s 127.0.0.1 -d 10.9.0.7 --dport 5353 -m conntrack --ctstate DNAT "
        f"--ctorigdstport 53 {tag} -j MASQUERADE",
    ]


def test_host_port_rules_skip_the_other_family_and_localhost_for_ipv6() -> None:
    v6 = PodAddress.parse("fd00::7/64")
    assert rules([PortMapping(80, 8080, host_ip="127.0.0.1")], v6, "c") == []
    assert rules([PortMapping(80, 8080, host_ip="::")], v6, "c") == [
        '-I PREROUTING -p tcp --dport 80 -m addrtype --dst-type LOCAL -m comment --comment "c" -j DNAT '
        "--to-destination [fd00::7]:8080",
        '-I OUTPUT -p tcp --dport 80 -m addrtype --dst-type LOCAL -m comment --comment "c" -j DNAT '
        "--to-destination [fd00::7]:8080",
        "-I POSTROUTING -p tcp -s fd00::/64 -d fd00::7 --dport 8080 -m conntrack --ctstate DNAT "
        '--ctorigdstport 80 -m comment --comment "c" -j MASQUERADE']


def test_host_port_rules_are_what_detach_drops() -> None:
    lines = rules([PortMapping(80, 8080)], PodAddress.parse("10.9.0.2/24"), 'name: "net" id: "c1"')
    saved = "\n".join(["*nat", *("-A" + line[2:] for line in lines), "COMMIT", ""])
    batch = nat_rules_to_drop(saved, plugin_comment("net", "c1"))
    assert batch[1:-2] == ["-D" + line[2:] for line in lines]


def test_result_problems_name_the_field() -> None:
    good = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": [{"interface": 0, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}]}
    assert result_problems(good) == []
    assert result_problems([]) == ["result: not a JSON object"]
    bad = {"cniVersion": "1.0.0", "interfaces": [], "ips": [{"interface": 3, "address": "10.0.0.2/24"},
                                                            {"address": "10.0.0.3"}]}
    assert result_problems(bad) == ["ips[0].interface: 3: no such entry in interfaces",
                                    "ips[1].address: '10.0.0.3': not an address in CIDR notation"]


SAVED_NAT = r'''*nat
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-aaa - [0:0]
:CNI-bbb - [0:0]
:CNI-DN-ccc - [0:0]
-A POSTROUTING -s 10.9.0.2/32 -m comment --comment "name: \"net\" id: \"c1\"" -j CNI-aaa
-A POSTROUTING -s 10.9.0.3/32 -m comment --comment "name: \"net\" id: \"c2\"" -j CNI-bbb
-A POSTROUTING -s 10.8.0.2/32 -m comment --comment "name: \"net2\" id: \"c1\"" -j CNI-bbb
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net\" id: \"c1\"" -m multiport --dports 80 -j CNI-DN-ccc
-A CNI-aaa -d 10.9.0.0/24 -m comment --comment "name: \"net\" id: \"c1\"" -j ACCEPT
-A CNI-aaa ! -d 224.0.0.0/4 -m comment --comment "name: \"net\" id: \"c1\"" -j MASQUERADE
-A CNI-DN-ccc -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.9.0.2:8080
COMMIT
'''


def test_rules_of_one_container_and_its_own_chains_are_dropped() -> None:
    batch = nat_rules_to_drop(SAVED_NAT, plugin_comment("net", "c1"))
    assert batch[0] == "*nat" and batch[-2:] == ["COMMIT", ""]
    deleted = [line for line in batch if line.startswith("-D")]
    assert len(deleted) == 4 and all('id: \\"c1\\"' in line and 'name: \\"net\\"' in line for line in deleted)
    # Only c1's rules jump to CNI-aaa and CNI-DN-ccc, so both go, with DN's uncommented rule.
    assert [line for line in batch if line[:2] in ("-F", "-X")] == [
        "-F CNI-DN-ccc", "-F CNI-aaa", "-X CNI-DN-ccc", "-X CNI-aaa"]


def test_a_network_sweep_keeps_chains_other_networks_use() -> None:
    batch = nat_rules_to_drop(SAVED_NAT, plugin_comment("net"))
    assert not any("net2" in line for line in batch)
    assert "-X CNI-bbb" not in batch  # net2's rule still jumps to it
    assert nat_rules_to_drop(SAVED_NAT, plugin_comment("other")) == []
