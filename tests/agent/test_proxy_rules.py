"""The service proxy's iptables rules (kube-proxy's iptables mode, pure)."""
from __future__ import annotations

import re
from typing import Any

from podbay.agent.proxy import ProxyConfig, backends, chain, ruleset
from podbay.api.serialize import from_dict
from podbay.api.services import EndpointSlice, Service

CONFIG = ProxyConfig("KUBE", "10.244.0.0/16")


def service(name: str = "web", **spec: Any) -> Service:
    spec.setdefault("clusterIP", "10.96.0.20")
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}])
    return from_dict(Service, {"metadata": {"name": name, "namespace": "default"}, "spec": spec})


def slice_of(name: str, *endpoints: tuple[str, bool, bool]) -> EndpointSlice:
    return from_dict(EndpointSlice, {
        "metadata": {"name": f"{name}-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready, "serving": ready or term,
                                                         "terminating": term}} for ip, ready, term in endpoints]})


def test_chains_and_balancing_as_kube_proxy_writes_them() -> None:
    text, chains = ruleset([service()], [slice_of("web", ("10.0.0.1", True, False), ("10.0.0.2", True, False),
                                                  ("10.0.0.3", True, False))], CONFIG, set())
    svc = chain("KUBE", "SVC", "default/web:http", "tcp")
    assert re.fullmatch(r"KUBE-SVC-[A-Z2-7]{16}", svc)
    assert f"-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\" -d 10.96.0.20/32 -p tcp " \
           f"-m tcp --dport 80 -j {svc}" in text
    picks = re.findall(rf"-A {svc} .*?(--probability (\S+) )?-j (KUBE-SEP-\S+)", text)
    assert [p[1] for p in picks] == ["0.3333333333", "0.5000000000", ""]
    assert "-j DNAT --to-destination 10.0.0.2:8080" in text
    assert f"! -s 10.244.0.0/16 -d 10.96.0.20/32" in text  # from outside the pods: masqueraded
    services_rules = [line for line in text.splitlines() if line.startswith("-A KUBE-SERVICES ")]
    assert services_rules[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert len(chains) == 4 + 1 + 3


def test_node_port_and_stale_chains() -> None:
    old = chain("KUBE", "SVC", "default/gone:http", "tcp")
    text, _ = ruleset([service(type="NodePort", ports=[{"name": "http", "port": 80, "protocol": "TCP",
                                                        "nodePort": 30080}])],
                      [slice_of("web", ("10.0.0.1", True, False))], CONFIG, {old, "KUBE-SERVICES", "OTHER-X"})
    ext = chain("KUBE", "EXT", "default/web:http", "tcp")
    assert f"--dport 30080 -j {ext}" in text and f"-A {ext} -j {chain('KUBE', 'SVC', 'default/web:http', 'tcp')}" \
        in text
    assert f":{old} - [0:0]" in text and f"-X {old}" in text and "OTHER-X" not in text


def test_endpoints_chosen_ready_first_then_serving_terminating() -> None:
    svc = service()
    port = svc.spec.ports[0]
    mixed = slice_of("web", ("10.0.0.1", True, False), ("10.0.0.2", False, True), ("10.0.0.3", False, False))
    assert [b.ip for b in backends(port, [mixed])] == ["10.0.0.1"]
    draining = slice_of("web", ("10.0.0.2", False, True))
    assert [b.ip for b in backends(port, [draining])] == ["10.0.0.2"]


def test_headless_services_get_no_rules_and_endpointless_ones_reject() -> None:
    text, chains = ruleset([service("h", clusterIP="None"), service("empty")], [], CONFIG, set())
    assert "SVC-" not in text and "DNAT" not in text
    filter_table = text.split("*nat")[0]
    assert '-A KUBE-SERVICES -m comment --comment "default/empty:http has no endpoints" -d 10.96.0.20/32 -p tcp ' \
           '-m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable' in filter_table


def test_prefix_keeps_names_within_iptables_limit() -> None:
    assert len(chain("pbt123456net", "SVC", "default/web:http", "tcp")) <= 28


def slice_on_nodes(name: str, *endpoints: tuple[str, str]) -> EndpointSlice:
    """Ready endpoints (ip, node)."""
    return from_dict(EndpointSlice, {
        "metadata": {"name": f"{name}-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": True, "serving": True,
                                                                           "terminating": False}}
                      for ip, node in endpoints]})


LOCAL = ProxyConfig("KUBE", "10.244.0.0/16", node_name="n1")
NODE_PORT = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]


def test_client_ip_affinity_checks_recent_lists_before_the_random_pick() -> None:
    """kube-proxy's sessionAffinity ClientIP: a `recent` list per endpoint, set when a client is
    DNATed there and checked (within the timeout) before the random pick."""
    text, _ = ruleset([service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})],
                      [slice_of("web", ("10.0.0.1", True, False), ("10.0.0.2", True, False))], CONFIG, set())
    svc = chain("KUBE", "SVC", "default/web:http", "tcp")
    seps = [chain("KUBE", "SEP", "default/web:http", "tcp", f"10.0.0.{i}:8080") for i in (1, 2)]
    svc_rules = [line for line in text.splitlines() if line.startswith(f"-A {svc} ")]
    assert [r.split(" -j ")[-1] for r in svc_rules[1:]] == [*seps, *seps]
    for sep, rule in zip(seps, svc_rules[1:3]):
        assert f"-m recent --name {sep} --rcheck --seconds 60 --reap -j {sep}" in rule
    assert "--probability 0.5000000000" in svc_rules[3]
    for i, sep in enumerate(seps, 1):
        assert f"-A {sep} -m comment --comment \"default/web:http\" -m recent --name {sep} --set -p tcp -m tcp " \
               f"-j DNAT --to-destination 10.0.0.{i}:8080" in text
    assert "recent" not in ruleset([service()], [slice_of("web", ("10.0.0.1", True, False))], CONFIG, set())[0]


def test_external_traffic_policy_local_sends_outside_traffic_to_this_nodes_endpoints_unmasqueraded() -> None:
    text, chains = ruleset([service(type="NodePort", externalTrafficPolicy="Local", ports=NODE_PORT)],
                           [slice_on_nodes("web", ("10.0.0.1", "n1"), ("10.0.0.2", "n2"))], LOCAL, set())
    svc, svl = chain("KUBE", "SVC", "default/web:http", "tcp"), chain("KUBE", "SVL", "default/web:http", "tcp")
    ext = chain("KUBE", "EXT", "default/web:http", "tcp")
    ext_rules = [line for line in text.splitlines() if line.startswith(f"-A {ext} ")]
    assert [r.split(" -j ")[-1] for r in ext_rules] == [svc, "KUBE-MARK-MASQ", svc, svl]
    assert "-s 10.244.0.0/16" in ext_rules[0] and "--src-type LOCAL" in ext_rules[1] + ext_rules[2]
    assert "masquerade traffic for" not in text  # outside clients keep their address
    assert [line.split(" -j ")[-1] for line in text.splitlines() if line.startswith(f"-A {svl} ")] == \
        [chain("KUBE", "SEP", "default/web:http", "tcp", "10.0.0.1:8080")]
    assert svl in chains and svc in chains
    # The ClusterIP still reaches every endpoint.
    assert f"-d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j {svc}" in text


def test_no_local_endpoint_drops_outside_traffic_to_the_node_port() -> None:
    text, chains = ruleset([service(type="NodePort", externalTrafficPolicy="Local", ports=NODE_PORT)],
                           [slice_on_nodes("web", ("10.0.0.2", "n2"))], LOCAL, set())
    filter_table = text.split("*nat")[0]
    assert '-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web:http has no local endpoints" -m addrtype ' \
           '--dst-type LOCAL -p tcp -m tcp --dport 30080 -j DROP' in filter_table
    assert chain("KUBE", "SVL", "default/web:http", "tcp") not in chains
    ext = chain("KUBE", "EXT", "default/web:http", "tcp")
    # Pods and the host itself still get through, to the other node's endpoint.
    assert [line.split(" -j ")[-1] for line in text.splitlines() if line.startswith(f"-A {ext} ")] == \
        [chain("KUBE", "SVC", "default/web:http", "tcp"), "KUBE-MARK-MASQ", chain("KUBE", "SVC", "default/web:http",
                                                                                   "tcp")]


def test_a_node_port_without_endpoints_is_rejected() -> None:
    text, _ = ruleset([service(type="NodePort", ports=NODE_PORT)], [], LOCAL, set())
    assert '-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web:http has no endpoints" -m addrtype ' \
           '--dst-type LOCAL -p tcp -m tcp --dport 30080 -j REJECT --reject-with icmp-port-unreachable' in text


def test_internal_traffic_policy_local_keeps_cluster_ip_traffic_on_this_node() -> None:
    text, chains = ruleset([service(internalTrafficPolicy="Local")],
                           [slice_on_nodes("web", ("10.0.0.1", "n1"), ("10.0.0.2", "n2"))], LOCAL, set())
    svc, svl = chain("KUBE", "SVC", "default/web:http", "tcp"), chain("KUBE", "SVL", "default/web:http", "tcp")
    assert f"--dport 80 -j {svl}" in text and svc not in chains and "10.0.0.2" not in text
    text, chains = ruleset([service(internalTrafficPolicy="Local")], [slice_on_nodes("web", ("10.0.0.2", "n2"))],
                           LOCAL, set())
    assert '-A KUBE-SERVICES -m comment --comment "default/web:http has no local endpoints" -d 10.96.0.20/32 ' \
           '-p tcp -m tcp --dport 80 -j DROP' in text.split("*nat")[0]
    assert chains == {"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"}


def test_every_chain_name_fits_with_a_long_prefix() -> None:
    long = ProxyConfig("pbt123456net", "10.244.0.0/16", node_name="n1")
    text, _ = ruleset([service(type="NodePort", externalTrafficPolicy="Local", ports=NODE_PORT)],
                      [slice_on_nodes("web", ("10.0.0.2", "n2"))], long, set())
    names = {word for line in text.splitlines() for word in line.replace(":", " ").split()
             if word.startswith("pbt123456net-")}
    assert "pbt123456net-EXT-SERVICES" in names and all(len(n) <= 28 for n in names), names
    assert "KUBE-EXTERNAL-SERVICES" in ruleset([], [], CONFIG, set())[0]
