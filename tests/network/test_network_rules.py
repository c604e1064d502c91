"""Pure rules of the pod network: hostPort conflicts, the default conflist, result validation."""
from __future__ import annotations

from pathlib import Path

from podbay.runtime.cni import result_problems
from podbay.runtime.network import NetworkConfig, PodNetwork, PortMapping, default_conflist, host_port_conflicts


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


def test_default_conflist_is_bridge_then_portmap(tmp_path: Path) -> None:
    config = NetworkConfig(name="n", bridge="br9", subnet="10.9.0.0/24", cache_dir=tmp_path)
    conflist = default_conflist(config)
    assert conflist["cniVersion"] == "1.0.0" and conflist["name"] == "n"
    bridge, portmap = conflist["plugins"]
    assert bridge["bridge"] == "br9" and bridge["isGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.9.0.0/24"}]]
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


def test_ensure_conflist_never_replaces_a_users_file(tmp_path: Path) -> None:
    network = PodNetwork(NetworkConfig(conf_dir=tmp_path))
    path = network.ensure_conflist()
    assert path == tmp_path / "podbay.conflist" and '"portmap"' in path.read_text()
    path.write_text("{}")
    assert network.ensure_conflist().read_text() == "{}"


def test_result_problems_name_the_field() -> None:
    good = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": [{"interface": 0, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}]}
    assert result_problems(good) == []
    assert result_problems([]) == ["result: not a JSON object"]
    bad = {"cniVersion": "1.0.0", "interfaces": [], "ips": [{"interface": 3, "address": "10.0.0.2/24"},
                                                            {"address": "10.0.0.3"}]}
    assert result_problems(bad) == ["ips[0].interface: 3: no such entry in interfaces",
                                    "ips[1].address: '10.0.0.3': not an address in CIDR notation"]
