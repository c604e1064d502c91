"""Whether a pod fits a node: the default scheduler's filter plugins, as pure functions.

NodeUnschedulable, NodeName, NodeAffinity (nodeSelector and required terms),
TaintToleration (NoSchedule/NoExecute), podbay's RuntimeHandler, NodePorts and NodeResourcesFit, where a
pod's request is the sum over its containers (with init containers and
overhead as Kubernetes counts them) and a node's free room is its allocatable
minus the requests of the pods already on it.

Amounts are integers as kube-scheduler keeps them (its Resource type): CPU in millicores, every
other resource in its unit, each rounded up (Quantity.MilliValue / Quantity.Value).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from podbay.api import Node, NodeSelectorRequirement, NodeSelectorTerm, Pod
from podbay.api.models import Taint, Toleration
from podbay.api.quantity import parse_quantity
from podbay.api.resources import pod_requests
from podbay.api.taints import tolerates

Units = dict[str, int]
HostPort = tuple[str, str, int]  # protocol, host IP, port

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY = "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
NODE_NAME = "node(s) didn't match the requested node name"
UNSCHEDULABLE = "node(s) were unschedulable"
SELECTOR = "node(s) didn't match Pod's node affinity/selector"
PORTS = "node(s) didn't have free ports for the requested pod ports"
TOO_MANY_PODS = "Too many pods"


def units(name: str, value: Fraction) -> int:
    """kube-scheduler's integer amount of a quantity: millicores for cpu, else the value, rounded up."""
    return math.ceil(value * 1000 if name == "cpu" else value)


@dataclass(frozen=True)
class PodUsage:
    """What a pod takes from the node it is on: its effective requests and its host ports."""

    requests: Mapping[str, int]
    host_ports: tuple[HostPort, ...]


def usage_of(pod: Pod) -> PodUsage:
    return PodUsage({k: units(k, v) for k, v in pod_requests(pod).items()}, tuple(sorted(host_ports(pod))))


def host_ports(pod: Pod) -> set[HostPort]:
    return {(p.protocol or "TCP", p.host_ip or "0.0.0.0", p.host_port)
            for c in pod.spec.init_containers + pod.spec.containers for p in c.ports if p.host_port}


@dataclass
class NodeInfo:
    """One node's labels, taints, handlers and used host ports, read once per node update so the
    per-node filters do not walk the Node object for every pod. Its amounts live in the
    scheduler's Snapshot, as arrays."""

    node: Node
    labels: dict[str, str] = field(init=False)
    fields: dict[str, str] = field(init=False)
    ready: bool = field(init=False)
    unschedulable: bool = field(init=False)
    hard_taints: tuple[Taint, ...] = field(init=False)
    handlers: frozenset[str] = field(init=False)
    host_ports: Counter[HostPort] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.set_node(self.node)

    def set_node(self, node: Node) -> None:
        self.node = node
        self.labels = dict(node.metadata.labels)
        self.fields = {"metadata.name": node.metadata.name or ""}
        self.ready = next((c.status for c in node.status.conditions if c.type == "Ready"), "Unknown") == "True"
        self.unschedulable = bool(node.spec.unschedulable)
        self.hard_taints = tuple(t for t in node.spec.taints if t.effect in ("NoSchedule", "NoExecute"))
        self.handlers = frozenset(h.name for h in node.status.runtime_handlers)

    @property
    def name(self) -> str:
        return self.node.metadata.name or ""


def allocatable_units(node: Node) -> Units:
    return {k: units(k, parse_quantity(v)) for k, v in node.status.allocatable.items()}


def tolerates_unschedulable(tolerations: list[Toleration]) -> bool:
    return any(t.key == UNSCHEDULABLE_TAINT and t.effect == "NoSchedule" or (t.operator == "Exists" and not t.key)
               for t in tolerations)


def selector_matches(pod: Pod, info: NodeInfo) -> bool:
    """NodeAffinity: the nodeSelector and the required node affinity terms."""
    labels = info.labels
    if not all(labels.get(k) == v for k, v in pod.spec.node_selector.items()):
        return False
    affinity = pod.spec.affinity.node_affinity if pod.spec.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    if required is not None and required.node_selector_terms:
        return any(_term_matches(t, info) for t in required.node_selector_terms)
    return True


def _term_matches(term: NodeSelectorTerm, info: NodeInfo) -> bool:
    return all(_requirement(r, info.labels) for r in term.match_expressions) and all(
        _requirement(r, info.fields) for r in term.match_fields)


def _requirement(r: NodeSelectorRequirement, labels: dict[str, str]) -> bool:
    value = labels.get(r.key)
    op = r.operator
    if op == "In":
        return value is not None and value in r.values
    if op == "NotIn":
        return value is None or value not in r.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and r.values:
        try:
            left, right = int(value), int(r.values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def untolerated_taint(tolerations: list[Toleration], info: NodeInfo) -> Taint | None:
    for taint in info.hard_taints:
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def ports_conflict(wanted: tuple[HostPort, ...], used: Counter[HostPort]) -> bool:
    for proto, ip, port in wanted:
        for uproto, uip, uport in used:
            if proto == uproto and port == uport and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def missing_runtime_handler(handler: str | None, info: NodeInfo) -> str | None:
    """podbay's RuntimeHandler filter (kube-scheduler has none; it leaves this to the class's
    scheduling.nodeSelector): a pod whose RuntimeClass names `handler` goes only to a node whose
    status.runtimeHandlers has it. None when the pod names no class, or the node has the handler."""
    if handler is None or handler in info.handlers:
        return None
    return f"node(s) didn't have the runtime handler \"{handler}\""


def unfit_reasons(pod: Pod, info: NodeInfo, usage: PodUsage, allocatable: Mapping[str, int],
                  requested: Mapping[str, int], pod_count: int, handler: str | None = None) -> list[str]:
    """Why the pod cannot go to this node, in the scheduler's words; empty when it fits. The
    one-node-at-a-time form of the filters the Snapshot runs over all nodes at once; it names
    the reasons when a pod fits nowhere."""
    if pod.spec.node_name and pod.spec.node_name != info.name:
        return [NODE_NAME]
    if not info.ready:
        return [NOT_READY]
    reasons: list[str] = []
    if info.unschedulable and not tolerates_unschedulable(pod.spec.tolerations):
        reasons.append(UNSCHEDULABLE)
    if not selector_matches(pod, info):
        reasons.append(SELECTOR)
    taint = untolerated_taint(pod.spec.tolerations, info)
    if taint is not None:
        reasons.append(f"node(s) had untolerated taint {{{taint.key}: {taint.value or ''}}}")
    no_handler = missing_runtime_handler(handler, info)
    if no_handler:
        reasons.append(no_handler)
    if ports_conflict(usage.host_ports, info.host_ports):
        reasons.append(PORTS)
    return reasons + insufficient(usage.requests, allocatable, requested, pod_count)


def insufficient(wanted: Mapping[str, int], allocatable: Mapping[str, int], requested: Mapping[str, int],
                 pod_count: int) -> list[str]:
    if "pods" in allocatable and pod_count + 1 > allocatable["pods"]:
        return [TOO_MANY_PODS]
    return [f"Insufficient {name}" for name, want in sorted(wanted.items())
            if want and want > allocatable.get(name, 0) - requested.get(name, 0)]


def failure_message(reasons_by_node: dict[str, list[str]], total: int) -> str:
    """`0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match ...`."""
    counts: dict[str, int] = {}
    for reasons in reasons_by_node.values():
        for r in reasons:
            counts[r] = counts.get(r, 0) + 1
    if total == 0:
        return "no nodes available to schedule pods"
    detail = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
    return f"0/{total} nodes are available: {detail}."
