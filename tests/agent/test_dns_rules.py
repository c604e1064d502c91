"""Cluster DNS answers (CoreDNS's kubernetes plugin's records, pure) and the wire format."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from podbay.agent.dns import A, NOERROR, NXDOMAIN, SRV, Answer, Record, encode_answer, parse_query, records
from podbay.agent.translate import host_resolv, dns_config
from podbay.api.models import Pod
from podbay.api.serialize import from_dict
from podbay.api.services import EndpointSlice, Service
from podbay.runtime.types import DNSConfig


def service(name: str, cluster_ip: str) -> Service:
    return from_dict(Service, {"metadata": {"name": name, "namespace": "ns"}, "spec": {
        "clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})


def slice_of(name: str, *eps: dict[str, Any]) -> EndpointSlice:
    return from_dict(EndpointSlice, {
        "metadata": {"name": f"{name}-x", "namespace": "ns", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": list(eps)})


SERVICES = [service("web", "10.96.0.5"), service("db", "None")]
SLICES = [slice_of("db", {"addresses": ["10.1.0.2"], "hostname": "db-0", "conditions": {"ready": True}},
                   {"addresses": ["10.1.0.3"], "conditions": {"ready": True}},
                   {"addresses": ["10.1.0.4"], "conditions": {"ready": False}})]


def ask(name: str, qtype: int = A) -> Answer | None:
    return records(name, qtype, SERVICES, SLICES)


def test_cluster_ip_and_headless_a_records() -> None:
    assert ask("web.ns.svc.cluster.local.") == Answer(NOERROR, (Record("web.ns.svc.cluster.local", A, "10.96.0.5"),))
    assert [r.value for r in ask("db.ns.svc.cluster.local").records] == ["10.1.0.2", "10.1.0.3"]
    assert [r.value for r in ask("db-0.db.ns.svc.cluster.local").records] == ["10.1.0.2"]
    assert [r.value for r in ask("10-1-0-3.db.ns.svc.cluster.local").records] == ["10.1.0.3"]


def test_srv_for_named_ports() -> None:
    assert ask("_http._tcp.web.ns.svc.cluster.local", SRV).records == (
        Record("_http._tcp.web.ns.svc.cluster.local", SRV, "0 100 80 web.ns.svc.cluster.local"),)
    assert {r.value for r in ask("_http._tcp.db.ns.svc.cluster.local", SRV).records} == {
        "0 100 8080 db-0.db.ns.svc.cluster.local", "0 100 8080 10-1-0-3.db.ns.svc.cluster.local"}


def test_names_outside_and_missing() -> None:
    assert ask("example.com") is None  # forwarded
    assert ask("nope.ns.svc.cluster.local").rcode == NXDOMAIN
    assert ask("web.ns.svc.cluster.local", 28) == Answer(NOERROR)  # AAAA: the name exists, no IPv6
    assert ask("10-2-3-4.ns.pod.cluster.local").records[0].value == "10.2.3.4"


def test_wire_round_trip() -> None:
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x03web\x02ns\x03svc\x07cluster\x05local\x00" \
        + struct.pack("!HH", A, 1)
    q = parse_query(query)
    assert (q.id, q.name, q.type) == (0x1234, "web.ns.svc.cluster.local", A)
    reply = encode_answer(q, ask(q.name))
    qid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (qid, flags & 0x8000, flags & 0xF, qd, an) == (0x1234, 0x8000, NOERROR, 1, 1)
    assert reply.endswith(bytes([10, 96, 0, 5]))


def test_cluster_first_resolv_conf() -> None:
    pod = from_dict(Pod, {"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": []}})
    host = DNSConfig(["1.1.1.1"], ["corp.example"], [])
    got = dns_config(pod, host, ("10.123.0.1",))
    assert got == DNSConfig(["10.123.0.1"], ["team.svc.cluster.local", "svc.cluster.local", "cluster.local",
                                             "corp.example"], ["ndots:5"])
    pod.spec.host_network = True  # ClusterFirst on the host's network: the host's resolv.conf
    assert dns_config(pod, host, ("10.123.0.1",)) is None
    pod.spec.dns_policy = "ClusterFirstWithHostNet"
    assert dns_config(pod, host, ("10.123.0.1",)).servers == ["10.123.0.1"]


def test_the_host_resolv_conf_is_read_again_once_it_changes(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search a.example\nnameserver 10.0.0.2\noptions ndots:2\n")
    first = host_resolv(conf)
    assert first == DNSConfig(["10.0.0.2"], ["a.example"], ["ndots:2"])
    first.servers.append("10.9.9.9")  # the caller's copy: the next reader does not see it
    assert host_resolv(conf).servers == ["10.0.0.2"]
    # Replaced as resolvconf and NetworkManager replace it: a new file renamed over the old.
    new = tmp_path / "resolv.conf.new"
    new.write_text("search b.example\nnameserver 10.0.0.3\n")
    new.replace(conf)
    assert host_resolv(conf) == DNSConfig(["10.0.0.3"], ["b.example"], [])
    conf.unlink()
    assert host_resolv(conf) == DNSConfig()
