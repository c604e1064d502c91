"""The scheduler's view of every node, kept up to date from the node and pod watches.

kube-scheduler's cache and snapshot: each node's allocatable amounts and the sums of what the
pods on it (bound, or assumed by this scheduler before their binding is written) request, as
integer columns with one row per node, so the common filters (readiness, unschedulable, pod count,
resource fit, taints for a pod that tolerates none) and the LeastAllocated score are a few array
operations over all nodes instead of a Python loop. The rarer filters (node affinity, tolerations,
host ports, runtime handlers) run per node in Python, and only on the nodes still in the running.

The columns are plain `columns.Column`s until the cluster has more than NUMPY_FROM_NODES nodes, then
numpy arrays: the same expressions, so one set of rules (a single-node `podbay up` never imports numpy).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from podbay.api import Node, Pod
from podbay.scheduler import columns
from podbay.scheduler.columns import ArrayNamespace, Vector
from podbay.scheduler.fit import (NodeInfo, PodUsage, allocatable_units, failure_message, missing_runtime_handler,
                                  ports_conflict, selector_matches, tolerates_unschedulable, unfit_reasons,
                                  untolerated_taint)

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NO_POD_LIMIT = 2**63 - 1  # int64's greatest: a node that reports no "pods" allocatable takes any number
# Measured (bench/README.md, "server memory, third round"): up to this many nodes a decision over
# lists takes ~0.13 ms against numpy's ~0.03, well inside a scheduler's 1 ms a pod at 1000 pods/s;
# beyond, the lists' cost grows with the nodes and numpy's barely does. A snapshot on numpy stays on it.
NUMPY_FROM_NODES = 64


def numpy_namespace() -> ArrayNamespace:
    import numpy
    return cast(ArrayNamespace, numpy)


def nodes_to_find(total: int) -> int:
    """kube-scheduler's numFeasibleNodesToFind with the default percentageOfNodesToScore: in a
    large cluster, stop looking once this many feasible nodes are found (50% less 1% per 125
    nodes, at least 5%, at least 100 nodes)."""
    if total < MIN_FEASIBLE_NODES_TO_FIND:
        return total
    percentage = max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND, 50 - total // 125)
    return max(MIN_FEASIBLE_NODES_TO_FIND, total * percentage // 100)


@dataclass(frozen=True)
class Decision:
    node: str | None  # None: the pod fits nowhere
    message: str  # why not, when node is None
    processed: int  # nodes looked at, so the next search starts after them


class Snapshot:
    def __init__(self, numpy_from_nodes: int = NUMPY_FROM_NODES) -> None:
        self.numpy_from_nodes = numpy_from_nodes  # the tests set 0 to run the rules on numpy at any size
        self.infos: list[NodeInfo] = []  # by row
        self.rows: dict[str, int] = {}  # node name -> row
        self.columns: dict[str, int] = {}  # resource name -> column
        self.xp: ArrayNamespace = columns
        self.capacity = 0  # rows allocated in every column
        self.allocatable: list[Vector] = []  # by resource column, then row
        self.requested: list[Vector] = []
        self.pod_count: Vector = columns.zeros(0, int)
        self.max_pods: Vector = columns.zeros(0, int)
        self.open: Vector = columns.zeros(0, bool)  # Ready and not cordoned
        self.cordoned: Vector = columns.zeros(0, bool)  # Ready but spec.unschedulable
        self.tainted: Vector = columns.zeros(0, bool)  # has a NoSchedule or NoExecute taint
        self.with_ports: Vector = columns.zeros(0, bool)  # some pod on it uses a host port
        self.placed: dict[str, tuple[str, PodUsage]] = {}  # pod uid -> (node name, usage)
        self.on_node: dict[str, set[str]] = {}  # node name -> uids, also for nodes not (yet) known
        self._name_rank: Vector | None = None  # by row: the order of node names, for ties

    def __len__(self) -> int:
        return len(self.infos)

    def _column(self, resource: str) -> int:
        col = self.columns.get(resource)
        if col is None:
            col = self.columns[resource] = len(self.columns)
            self.allocatable.append(self.xp.zeros(self.capacity, int))
            self.requested.append(self.xp.zeros(self.capacity, int))
        return col

    def _new_row(self) -> int:
        row = len(self.infos)
        if row >= self.capacity:
            size = max(64, 2 * row)
            xp = numpy_namespace() if size > self.numpy_from_nodes else self.xp

            def grown(a: Vector, dtype: type) -> Vector:
                return xp.concatenate([xp.asarray(a[:row].tolist(), dtype), xp.zeros(size - row, dtype)])
            self.allocatable = [grown(a, int) for a in self.allocatable]
            self.requested = [grown(a, int) for a in self.requested]
            self.pod_count, self.max_pods = grown(self.pod_count, int), grown(self.max_pods, int)
            self.open, self.cordoned = grown(self.open, bool), grown(self.cordoned, bool)
            self.tainted, self.with_ports = grown(self.tainted, bool), grown(self.with_ports, bool)
            self.xp, self.capacity, self._name_rank = xp, size, None
        return row

    def set_node(self, node: Node) -> None:
        name = node.metadata.name or ""
        row = self.rows.get(name)
        if row is None:
            row = self._new_row()
            self.rows[name] = row
            self.infos.append(NodeInfo(node))
            self._name_rank = None
            for requested in self.requested:
                requested[row] = 0
            self.pod_count[row] = 0
            self.with_ports[row] = False
            for uid in self.on_node.get(name, ()):
                self._add(row, self.placed[uid][1])
        else:
            self.infos[row].set_node(node)
        info = self.infos[row]
        amounts = allocatable_units(node)
        cols = [(self._column(k), v) for k, v in amounts.items()]
        for allocatable in self.allocatable:
            allocatable[row] = 0
        for col, value in cols:
            self.allocatable[col][row] = value
        self.max_pods[row] = amounts.get("pods", NO_POD_LIMIT)
        self.open[row] = info.ready and not info.unschedulable
        self.cordoned[row] = info.ready and info.unschedulable
        self.tainted[row] = bool(info.hard_taints)

    def remove_node(self, name: str) -> None:
        """The last row moves into the freed one, so rows stay dense."""
        row = self.rows.pop(name, None)
        if row is None:
            return
        last = len(self.infos) - 1
        if row != last:
            moved = self.infos[last]
            self.infos[row] = moved
            self.rows[moved.name] = row
            for a in (*self.allocatable, *self.requested, self.pod_count, self.max_pods, self.open, self.cordoned,
                      self.tainted, self.with_ports):
                a[row] = a[last]
        self.infos.pop()
        self._name_rank = None

    def place(self, uid: str, node: str, usage: PodUsage) -> None:
        """Counts the pod on `node` (bound there, or assumed), instead of wherever it was before."""
        previous = self.placed.get(uid)
        if previous == (node, usage):
            return
        self.unplace(uid)
        self.placed[uid] = (node, usage)
        self.on_node.setdefault(node, set()).add(uid)
        row = self.rows.get(node)
        if row is not None:
            self._add(row, usage)

    def unplace(self, uid: str) -> None:
        previous = self.placed.pop(uid, None)
        if previous is None:
            return
        node, usage = previous
        uids = self.on_node[node]
        uids.discard(uid)
        if not uids:
            del self.on_node[node]
        row = self.rows.get(node)
        if row is not None:
            self._add(row, usage, -1)

    def _add(self, row: int, usage: PodUsage, sign: int = 1) -> None:
        for name, value in usage.requests.items():
            col = self._column(name)
            self.requested[col][row] += sign * value
        self.pod_count[row] += sign
        info = self.infos[row]
        for port in usage.host_ports:
            info.host_ports[port] += sign
            if info.host_ports[port] <= 0:
                del info.host_ports[port]
        self.with_ports[row] = bool(info.host_ports)

    def node_requested(self, row: int) -> dict[str, int]:
        return {k: int(self.requested[c][row]) for k, c in self.columns.items()}

    def node_allocatable(self, row: int) -> dict[str, int]:
        """What the node reports: a resource it does not list is absent, not 0."""
        return {k: int(self.allocatable[self.columns[k]][row]) for k in self.infos[row].node.status.allocatable}

    def feasible(self, pod: Pod, usage: PodUsage) -> Vector:
        """The nodes that pass the filters which are array operations; `candidates` finishes the rest."""
        n = len(self.infos)
        fits = self.open[:n] | self.cordoned[:n] if tolerates_unschedulable(pod.spec.tolerations) else self.open[:n]
        fits = fits & (self.pod_count[:n] < self.max_pods[:n])
        for name, want in usage.requests.items():
            if want:
                col = self.columns.get(name)
                if col is None:  # no node has any: a column is not made for every name a pod asks for
                    return self.xp.zeros(n, bool)
                fits &= self.allocatable[col][:n] - self.requested[col][:n] >= want
        if not pod.spec.tolerations:
            fits &= ~self.tainted[:n]
        if pod.spec.node_name:
            row = self.rows.get(pod.spec.node_name)
            only = self.xp.zeros(n, bool)
            if row is not None:
                only[row] = True
            fits &= only
        return fits

    def _passes_rich_filters(self, pod: Pod, usage: PodUsage, handler: str | None, row: int) -> bool:
        info = self.infos[row]
        if pod.spec.tolerations and info.hard_taints and untolerated_taint(pod.spec.tolerations, info) is not None:
            return False
        if (pod.spec.node_selector or pod.spec.affinity) and not selector_matches(pod, info):
            return False
        if handler is not None and missing_runtime_handler(handler, info):
            return False
        return not (usage.host_ports and info.host_ports and ports_conflict(usage.host_ports, info.host_ports))

    def decide(self, pod: Pod, usage: PodUsage, handler: str | None, start: int) -> Decision:
        """kube-scheduler's scheduling cycle for one pod: from row `start` on, wrapping around,
        find nodes_to_find(n) nodes that pass every filter, then pick the one with the best
        LeastAllocated score (the greatest name among equals)."""
        n = len(self.infos)
        if n == 0:
            return Decision(None, failure_message({}, 0), 0)
        start %= n
        fits = self.feasible(pod, usage)
        rows = self.xp.flatnonzero(fits)
        rows = self.xp.concatenate([rows[rows >= start], rows[rows < start]])
        enough = nodes_to_find(n)
        rich = bool(pod.spec.tolerations or pod.spec.node_selector or pod.spec.affinity or handler is not None
                    or usage.host_ports)
        if rich:
            chosen = []
            for row in rows.tolist():
                if self._passes_rich_filters(pod, usage, handler, int(row)):
                    chosen.append(row)
                    if len(chosen) >= enough:
                        break
            rows = self.xp.asarray(chosen, int)
        else:
            rows = rows[:enough]
        if len(rows) == 0:
            return Decision(None, self._why_not(pod, usage, handler), n)
        processed = (int(rows[-1]) - start) % n + 1 if len(rows) >= enough else n
        return Decision(self.infos[self._best(rows, usage)].name, "", processed)

    def _best(self, rows: Vector, usage: PodUsage) -> int:
        """LeastAllocated: the node with the most room left after the pod (cpu and memory, equally
        weighted, each as a fraction of allocatable)."""
        if len(rows) == 1:
            return int(rows[0])
        xp = self.xp
        score = xp.zeros(len(rows), float)
        for name in ("cpu", "memory"):
            col = self.columns.get(name)
            if col is None:
                continue
            cap = self.allocatable[col][rows]
            free = cap - self.requested[col][rows] - usage.requests.get(name, 0)
            # cap >= 1 is cap > 0 for integers, and a comparison `Vector` has in both backends.
            score = score + xp.where(cap >= 1, free / xp.where(cap >= 1, cap, 1), 0)
        top = rows[score >= score.max()]
        if self._name_rank is None:
            rank = [0] * len(self.infos)
            for position, row in enumerate(sorted(range(len(self.infos)), key=lambda r: self.infos[r].name)):
                rank[row] = position
            self._name_rank = xp.asarray(rank, int)
        return int(top[xp.argmax(self._name_rank[top])])

    def unfit_reasons(self, pod: Pod, usage: PodUsage, handler: str | None, row: int) -> list[str]:
        return unfit_reasons(pod, self.infos[row], usage, self.node_allocatable(row), self.node_requested(row),
                             int(self.pod_count[row]), handler)

    def _why_not(self, pod: Pod, usage: PodUsage, handler: str | None) -> str:
        reasons = {info.name: self.unfit_reasons(pod, usage, handler, row) for row, info in enumerate(self.infos)}
        return failure_message(reasons, len(self.infos))
