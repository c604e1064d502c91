"""The scheduler's filters and the pod GC's choices, as pure functions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from podbay.api import Pod
from podbay.api.models import Node, NodeRuntimeHandler
from podbay.api.serialize import from_dict
from podbay.controllers.podgc import pods_to_collect
from podbay.scheduler.fit import failure_message, usage_of
from podbay.scheduler.snapshot import Snapshot


def node(name: str, cpu: str = "4", memory: str = "8Gi", labels: dict | None = None, **spec) -> Node:
    return from_dict(Node, {"metadata": {"name": name, "labels": labels or {}}, "spec": spec,
                            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                                       "conditions": [{"type": "Ready", "status": "True"}]}})


def pod(name: str, *requests: dict, node_name: str = "", **spec) -> Pod:
    containers = [{"name": f"c{i}", "image": "busybox", "resources": {"requests": r}} for i, r in enumerate(requests)]
    return from_dict(Pod, {"metadata": {"name": name, "uid": name},
                           "spec": {"containers": containers, "nodeName": node_name or None, **spec}})


def snapshot_of(nodes: list[Node], pods: tuple[Pod, ...] = ()) -> Snapshot:
    snap = Snapshot()
    for n in nodes:
        snap.set_node(n)
    for p in pods:
        snap.place(p.metadata.name or "", p.spec.node_name or "", usage_of(p))
    return snap


def reasons(snap: Snapshot, p: Pod, name: str, handler: str | None = None) -> list[str]:
    return snap.unfit_reasons(p, usage_of(p), handler, snap.rows[name])


def test_sum_of_container_requests_must_fit_the_free_room() -> None:
    # The seed's case: 2 CPUs free on a node, a pod of two 1.5-CPU containers fits nowhere.
    snap = snapshot_of([node("node-a", cpu="4"), node("node-b", cpu="2")],
                       (pod("busy", {"cpu": "2"}, node_name="node-a"),))
    wide = pod("wide", {"cpu": "1500m"}, {"cpu": "1500m"})
    assert reasons(snap, wide, "node-a") == ["Insufficient cpu"]
    assert reasons(snap, wide, "node-b") == ["Insufficient cpu"]
    assert reasons(snap, pod("narrow", {"cpu": "1"}, {"cpu": "1"}), "node-b") == []
    assert snap.decide(wide, usage_of(wide), None, 0).message == "0/2 nodes are available: 2 Insufficient cpu."
    assert failure_message({"node-a": ["Insufficient cpu"], "node-b": ["Insufficient cpu"]}, 2) == \
        "0/2 nodes are available: 2 Insufficient cpu."


def handlers_node(name: str, *handlers: str) -> Node:
    n = node(name)
    n.status.runtime_handlers = [NodeRuntimeHandler(name=h) for h in handlers]
    return n


def test_a_pod_of_a_runtime_class_goes_only_where_the_node_has_its_handler() -> None:
    snap = snapshot_of([handlers_node("plain", "", "crun", "runc"), handlers_node("sandboxed", "", "crun", "runc", "runsc"),
                        node("silent")])
    p = pod("p", {}, runtimeClassName="gvisor")
    assert reasons(snap, p, "plain", "runsc") == ["node(s) didn't have the runtime handler \"runsc\""]
    assert reasons(snap, p, "sandboxed", "runsc") == []
    assert reasons(snap, pod("p", {}, runtimeClassName="runc"), "plain", "runc") == []
    assert snap.decide(p, usage_of(p), "runsc", 0).node == "sandboxed"
    # A pod without a class needs no handler, even from a node that reports none.
    assert reasons(snap, pod("p", {}), "silent", None) == []
    assert reasons(snap, pod("p", {}), "silent", "") == ["node(s) didn't have the runtime handler \"\""]


def test_node_selector_affinity_taints_and_ports() -> None:
    snap = snapshot_of([node("n", labels={"disk": "ssd"}, taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])])
    assert "node(s) didn't match Pod's node affinity/selector" in reasons(snap, pod("p", {}, nodeSelector={"disk": "hdd"}), "n")
    assert reasons(snap, pod("p", {}, nodeSelector={"disk": "ssd"}), "n") == ["node(s) had untolerated taint {gpu: yes}"]
    tolerant = pod("p", {}, tolerations=[{"key": "gpu", "operator": "Exists"}],
                   affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                       "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In",
                                                                    "values": ["ssd"]}]}]}}})
    assert reasons(snap, tolerant, "n") == []
    assert snap.decide(tolerant, usage_of(tolerant), None, 0).node == "n"
    with_port = from_dict(Pod, {"metadata": {"name": "a", "uid": "a"}, "spec": {"nodeName": "m", "containers": [
        {"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}})
    snap = snapshot_of([node("m")], (with_port,))
    other = with_port.model_copy(deep=True)
    other.metadata.uid = "b"
    other.spec.node_name = None
    assert reasons(snap, other, "m") == ["node(s) didn't have free ports for the requested pod ports"]
    assert snap.decide(other, usage_of(other), None, 0).node is None
    snap.unplace("a")  # the port is free again once its pod is gone
    assert snap.decide(other, usage_of(other), None, 0).node == "m"


def test_not_ready_node_is_skipped() -> None:
    n = node("n")
    n.status.conditions[0].status = "False"
    snap = snapshot_of([n])
    assert reasons(snap, pod("p", {}), "n") == ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]


def test_pod_gc_choices() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    done = []
    for i in range(3):
        p = pod(f"done{i}", {}, node_name="n")
        p.status.phase = "Succeeded"
        p.metadata.creation_timestamp = t0 + timedelta(minutes=i)
        done.append(p)
    orphan = pod("orphan", {}, node_name="gone")
    chosen = pods_to_collect(done + [orphan, pod("live", {}, node_name="n")], {"n"}, terminated_threshold=2)
    assert [(p.metadata.name, why) for p, why in chosen] == [("done0", "terminated"), ("orphan", "orphaned")]
