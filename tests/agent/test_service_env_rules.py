"""Services as containers' environment variables, as the kubelet writes them (pure)."""
from __future__ import annotations

from typing import Any

from podbay.agent.envvars import PodFacts, container_env
from podbay.agent.serviceenv import service_env
from podbay.api.models import Container, Pod
from podbay.api.serialize import from_dict
from podbay.api.services import Service


def service(name: str, namespace: str, cluster_ip: str, ports: list[dict[str, Any]]) -> Service:
    return from_dict(Service, {"metadata": {"name": name, "namespace": namespace},
                               "spec": {"clusterIP": cluster_ip, "ports": ports}})


SERVICES = [
    service("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}]),
    service("my-web", "team", "10.96.0.20", [{"name": "http", "port": 80, "protocol": "TCP"},
                                             {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
    service("headless", "team", "None", [{"port": 80, "protocol": "TCP"}]),
    service("elsewhere", "other", "10.96.0.30", [{"port": 80, "protocol": "TCP"}]),
]


def test_variables_of_the_namespace_and_the_kubernetes_service() -> None:
    env = service_env(SERVICES, "team", True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert {k: v for k, v in env.items() if k.startswith("MY_WEB")} == {
        "MY_WEB_SERVICE_HOST": "10.96.0.20", "MY_WEB_SERVICE_PORT": "80", "MY_WEB_SERVICE_PORT_HTTP": "80",
        "MY_WEB_SERVICE_PORT_DNS_UDP": "53", "MY_WEB_PORT": "tcp://10.96.0.20:80",
        "MY_WEB_PORT_80_TCP": "tcp://10.96.0.20:80", "MY_WEB_PORT_80_TCP_PROTO": "tcp",
        "MY_WEB_PORT_80_TCP_PORT": "80", "MY_WEB_PORT_80_TCP_ADDR": "10.96.0.20",
        "MY_WEB_PORT_53_UDP": "udp://10.96.0.20:53", "MY_WEB_PORT_53_UDP_PROTO": "udp",
        "MY_WEB_PORT_53_UDP_PORT": "53", "MY_WEB_PORT_53_UDP_ADDR": "10.96.0.20"}
    assert not any(k.startswith(("HEADLESS", "ELSEWHERE")) for k in env)


def test_enable_service_links_false_keeps_only_the_kubernetes_service() -> None:
    assert {k.split("_")[0] for k in service_env(SERVICES, "team", False)} == {"KUBERNETES"}


def test_container_env_wins_and_may_reference_service_variables() -> None:
    pod = from_dict(Pod, {"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": []}})
    container = from_dict(Container, {"name": "c", "env": [
        {"name": "URL", "value": "http://$(MY_WEB_SERVICE_HOST)/"}, {"name": "MY_WEB_SERVICE_PORT", "value": "x"}]})
    env, _ = container_env(pod, container, PodFacts(service_env=service_env(SERVICES, "team", True)))
    values = dict(env)
    assert values["URL"] == "http://10.96.0.20/" and values["MY_WEB_SERVICE_PORT"] == "x"
    assert [k for k, _ in env][:2] == ["URL", "MY_WEB_SERVICE_PORT"]  # the container's own first
