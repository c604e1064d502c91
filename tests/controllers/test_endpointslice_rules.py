"""Which endpoints a Service has (the endpointslice and endpoints controllers' rules, pure)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from podbay.api.models import Pod
from podbay.api.serialize import from_dict
from podbay.api.services import Service
from podbay.controllers.endpointslice import desired_endpoints, desired_slices


def pod(name: str, ip: str | None, ready: bool = True, port: int = 8080, **extra: Any) -> Pod:
    p = from_dict(Pod, {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                                                   "ports": [{"name": "http", "containerPort": port}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})
    for key, value in extra.items():
        setattr(p.metadata, key, value)
    return p


def service(**spec: Any) -> Service:
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"port": 80, "targetPort": "http", "protocol": "TCP"}])
    return from_dict(Service, {"metadata": {"name": "web", "namespace": "default"}, "spec": spec})


def test_ready_and_not_ready_pods_with_named_ports_resolved_per_pod() -> None:
    slices = desired_slices(service(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False),
                                        pod("c", "10.0.0.3", port=9090), pod("d", None)])
    by_port = {s.ports[0].port: {e.addresses[0]: (e.conditions.ready, e.conditions.serving) for e in s.endpoints}
               for s in slices}
    assert by_port == {8080: {"10.0.0.1": (True, True), "10.0.0.2": (False, False)}, 9090: {"10.0.0.3": (True, True)}}
    assert slices[0].endpoints[0].target_ref.name == "a" and slices[0].endpoints[0].node_name == "n1"


def test_terminating_pods_are_not_ready_but_may_still_serve() -> None:
    gone = pod("a", "10.0.0.1", deletion_timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc))
    [content] = desired_slices(service(), [gone])
    cond = content.endpoints[0].conditions
    assert (cond.ready, cond.serving, cond.terminating) == (False, True, True)
    assert desired_endpoints(service(), [gone]) == []  # the legacy Endpoints leave it out


def test_pods_not_selected_or_finished_are_left_out() -> None:
    other = pod("x", "10.0.0.9")
    other.metadata.labels = {"app": "db"}
    done = pod("y", "10.0.0.8")
    done.status.phase = "Succeeded"
    assert desired_slices(service(), [other, done]) == []


def test_legacy_endpoints_split_ready_and_not_ready() -> None:
    [subset] = desired_endpoints(service(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False)])
    assert [a.ip for a in subset.addresses] == ["10.0.0.1"]
    assert [a.ip for a in subset.not_ready_addresses] == ["10.0.0.2"]
    assert [(p.port, p.protocol) for p in subset.ports] == [(8080, "TCP")]
