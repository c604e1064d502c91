"""Whether a pod fits a node: the default scheduler's filter plugins, as pure functions.

NodeUnschedulable, NodeName, NodeAffinity (nodeSelector and required terms),
TaintToleration (NoSchedule/NoExecute), podbay's RuntimeHandler, NodePorts and NodeResourcesFit, where a
pod's request is the sum over its containers (with init containers and
overhead as Kubernetes counts them) and a node's free room is its allocatable
minus the requests of the pods already bound to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from podbay.api import Node, NodeSelectorRequirement, NodeSelectorTerm, Pod
from podbay.api.quantity import parse_quantity
from podbay.api.resources import pod_requests
from podbay.api.taints import tolerates


@dataclass
class NodeInfo:
    """A node with what the pods already bound to it use (the scheduler cache's NodeInfo),
    kept up to date as pods come and go rather than recomputed per decision."""

    node: Node
    requested: dict[str, Fraction] = field(default_factory=dict)
    allocatable: dict[str, Fraction] = field(default_factory=dict)
    pod_count: int = 0
    host_ports: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.set_node(self.node)

    def set_node(self, node: Node) -> None:
        self.node = node
        self.allocatable = {k: parse_quantity(v) for k, v in node.status.allocatable.items()}

    @classmethod
    def of(cls, node: Node, pods: tuple[Pod, ...] = ()) -> "NodeInfo":
        info = cls(node)
        for p in pods:
            info.add(p)
        return info

    def add(self, pod: Pod) -> None:
        for name, value in pod_requests(pod).items():
            self.requested[name] = self.requested.get(name, Fraction(0)) + value
        self.pod_count += 1
        self.host_ports += sorted(_host_ports(pod))

    def remove(self, pod: Pod) -> None:
        for name, value in pod_requests(pod).items():
            self.requested[name] = self.requested.get(name, Fraction(0)) - value
        self.pod_count -= 1
        for port in _host_ports(pod):
            if port in self.host_ports:
                self.host_ports.remove(port)


def _labels_match(term: NodeSelectorTerm, node: Node) -> bool:
    labels = node.metadata.labels
    fields = {"metadata.name": node.metadata.name or ""}
    return all(_requirement(r, labels) for r in term.match_expressions) and all(
        _requirement(r, fields) for r in term.match_fields)


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


def _host_ports(pod: Pod) -> set[tuple[str, str, int]]:
    return {(p.protocol or "TCP", p.host_ip or "0.0.0.0", p.host_port)
            for c in pod.spec.init_containers + pod.spec.containers for p in c.ports if p.host_port}


def _ports_conflict(wanted: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    for proto, ip, port in wanted:
        for uproto, uip, uport in used:
            if proto == uproto and port == uport and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def missing_runtime_handler(handler: str | None, node: Node) -> str | None:
    """podbay's RuntimeHandler filter (kube-scheduler has none; it leaves this to the class's
    scheduling.nodeSelector): a pod whose RuntimeClass names `handler` goes only to a node whose
    status.runtimeHandlers has it. None when the pod names no class, or the node has the handler."""
    if handler is None or any(h.name == handler for h in node.status.runtime_handlers):
        return None
    return f"node(s) didn't have the runtime handler \"{handler}\""


def unfit_reasons(pod: Pod, info: NodeInfo, want: dict[str, Fraction] | None = None,
                  handler: str | None = None) -> list[str]:
    """Why the pod cannot go to this node, in the scheduler's words; empty when it fits.
    `want` is the pod's effective request, when the caller has it already; `handler` its
    RuntimeClass's handler, when it names a class."""
    node = info.node
    reasons: list[str] = []
    if pod.spec.node_name and pod.spec.node_name != node.metadata.name:
        return ["node(s) didn't match the requested node name"]
    ready = next((c.status for c in node.status.conditions if c.type == "Ready"), "Unknown")
    if ready != "True":
        return ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    if node.spec.unschedulable and not any(
            t.key == "node.kubernetes.io/unschedulable" and t.effect == "NoSchedule" or (t.operator == "Exists" and not t.key)
            for t in pod.spec.tolerations):
        reasons.append("node(s) were unschedulable")
    selector_ok = all(node.metadata.labels.get(k) == v for k, v in pod.spec.node_selector.items())
    affinity = pod.spec.affinity.node_affinity if pod.spec.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    if required is not None and required.node_selector_terms:
        selector_ok = selector_ok and any(_labels_match(t, node) for t in required.node_selector_terms)
    if not selector_ok:
        reasons.append("node(s) didn't match Pod's node affinity/selector")
    for taint in node.spec.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(tolerates(t, taint) for t in pod.spec.tolerations):
            reasons.append(f"node(s) had untolerated taint {{{taint.key}: {taint.value or ''}}}")
            break
    no_handler = missing_runtime_handler(handler, node)
    if no_handler:
        reasons.append(no_handler)
    if _ports_conflict(_host_ports(pod), set(info.host_ports)):
        reasons.append("node(s) didn't have free ports for the requested pod ports")
    reasons += _insufficient(pod_requests(pod) if want is None else want, info)
    return reasons


def _insufficient(wanted: dict[str, Fraction], info: NodeInfo) -> list[str]:
    allocatable = info.allocatable
    if "pods" in allocatable and info.pod_count + 1 > allocatable["pods"]:
        return ["Too many pods"]
    requested = info.requested
    out = []
    for name, want in sorted(wanted.items()):
        if want == 0:
            continue
        free = allocatable.get(name, Fraction(0)) - requested.get(name, Fraction(0))
        if want > free:
            out.append(f"Insufficient {name}")
    return out


def score(want: dict[str, Fraction], info: NodeInfo) -> Fraction:
    """LeastAllocated: the node with the most room left (cpu and memory, equally weighted) wins."""
    allocatable = info.allocatable
    requested = info.requested
    total = Fraction(0)
    for name in ("cpu", "memory"):
        cap = allocatable.get(name, Fraction(0))
        if cap > 0:
            total += (cap - requested.get(name, Fraction(0)) - want.get(name, Fraction(0))) / cap
    return total


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
