"""The scheduler's view of every node, kept up to date from the node and pod watches.

kube-scheduler's cache and snapshot: each node's allocatable amounts and the sums of what the
pods on it (bound, or assumed by this scheduler before their binding is written) request, as
integer arrays with one row per node, so the common filters (readiness, unschedulable, pod count,
resource fit, taints for a pod that tolerates none) and the LeastAllocated score are a few array
operations over all nodes instead of a Python loop. The rarer filters (node affinity, tolerations,
host ports, runtime handlers) run per node in Python, and only on the nodes still in the running.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from podbay.api import Node, Pod
from podbay.scheduler.fit import (NodeInfo, PodUsage, allocatable_units, failure_message, missing_runtime_handler,
                                  ports_conflict, selector_matches, tolerates_unschedulable, unfit_reasons,
                                  untolerated_taint)

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NO_POD_LIMIT = np.iinfo(np.int64).max  # a node that reports no "pods" allocatable takes any number

Rows = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]
A = TypeVar("A", Rows, Flags)


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
    def __init__(self) -> None:
        self.infos: list[NodeInfo] = []  # by row
        self.rows: dict[str, int] = {}  # node name -> row
        self.columns: dict[str, int] = {}  # resource name -> column
        self.allocatable: Rows = np.zeros((0, 0), np.int64)  # row, resource column
        self.requested: Rows = np.zeros((0, 0), np.int64)
        self.pod_count: Rows = np.zeros(0, np.int64)
        self.max_pods: Rows = np.zeros(0, np.int64)
        self.open: Flags = np.zeros(0, bool)  # Ready and not cordoned
        self.cordoned: Flags = np.zeros(0, bool)  # Ready but spec.unschedulable
        self.tainted: Flags = np.zeros(0, bool)  # has a NoSchedule or NoExecute taint
        self.with_ports: Flags = np.zeros(0, bool)  # some pod on it uses a host port
        self.placed: dict[str, tuple[str, PodUsage]] = {}  # pod uid -> (node name, usage)
        self.on_node: dict[str, set[str]] = {}  # node name -> uids, also for nodes not (yet) known
        self._name_rank: npt.NDArray[np.int64] | None = None  # by row: the order of node names, for ties

    def __len__(self) -> int:
        return len(self.infos)

    def _column(self, resource: str) -> int:
        col = self.columns.get(resource)
        if col is None:
            col = self.columns[resource] = len(self.columns)
            if col >= self.allocatable.shape[1]:
                grow = max(4, col)
                pad = np.zeros((self.allocatable.shape[0], grow), np.int64)
                self.allocatable = np.hstack([self.allocatable, pad])
                self.requested = np.hstack([self.requested, pad])
        return col

    def _new_row(self) -> int:
        row = len(self.infos)
        if row >= len(self.pod_count):
            size = max(64, 2 * row)

            def grown(a: A) -> A:
                out = np.zeros((size, *a.shape[1:]), a.dtype)
                out[:row] = a[:row]
                return cast(A, out)
            self.allocatable, self.requested = grown(self.allocatable), grown(self.requested)
            self.pod_count, self.max_pods = grown(self.pod_count), grown(self.max_pods)
            self.open, self.cordoned = grown(self.open), grown(self.cordoned)
            self.tainted, self.with_ports = grown(self.tainted), grown(self.with_ports)
        return row

    def set_node(self, node: Node) -> None:
        name = node.metadata.name or ""
        row = self.rows.get(name)
        if row is None:
            row = self._new_row()
            self.rows[name] = row
            self.infos.append(NodeInfo(node))
            self._name_rank = None
            self.requested[row] = 0
            self.pod_count[row] = 0
            self.with_ports[row] = False
            for uid in self.on_node.get(name, ()):
                self._add(row, self.placed[uid][1])
        else:
            self.infos[row].set_node(node)
        info = self.infos[row]
        amounts = allocatable_units(node)
        cols = [(self._column(k), v) for k, v in amounts.items()]
        self.allocatable[row] = 0
        for col, value in cols:
            self.allocatable[row, col] = value
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
            for a in (self.allocatable, self.requested, self.pod_count, self.max_pods, self.open, self.cordoned,
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
            self.requested[row, self._column(name)] += sign * value
        self.pod_count[row] += sign
        info = self.infos[row]
        for port in usage.host_ports:
            info.host_ports[port] += sign
            if info.host_ports[port] <= 0:
                del info.host_ports[port]
        self.with_ports[row] = bool(info.host_ports)

    def node_requested(self, row: int) -> dict[str, int]:
        return {k: int(self.requested[row, c]) for k, c in self.columns.items()}

    def node_allocatable(self, row: int) -> dict[str, int]:
        """What the node reports: a resource it does not list is absent, not 0."""
        return {k: int(self.allocatable[row, self.columns[k]]) for k in self.infos[row].node.status.allocatable}

    def feasible(self, pod: Pod, usage: PodUsage) -> Flags:
        """The nodes that pass the filters which are array operations; `candidates` finishes the rest."""
        n = len(self.infos)
        fits = self.open[:n] | self.cordoned[:n] if tolerates_unschedulable(pod.spec.tolerations) else self.open[:n]
        fits = fits & (self.pod_count[:n] < self.max_pods[:n])
        for name, want in usage.requests.items():
            if want:
                col = self.columns.get(name)
                if col is None:  # no node has any: a column is not made for every name a pod asks for
                    return np.zeros(n, bool)
                fits &= self.allocatable[:n, col] - self.requested[:n, col] >= want
        if not pod.spec.tolerations:
            fits &= ~self.tainted[:n]
        if pod.spec.node_name:
            row = self.rows.get(pod.spec.node_name)
            only = np.zeros(n, bool)
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
        rows = np.flatnonzero(fits)
        rows = np.concatenate([rows[rows >= start], rows[rows < start]])
        enough = nodes_to_find(n)
        rich = bool(pod.spec.tolerations or pod.spec.node_selector or pod.spec.affinity or handler is not None
                    or usage.host_ports)
        if rich:
            chosen = []
            for row in rows.tolist():
                if self._passes_rich_filters(pod, usage, handler, row):
                    chosen.append(row)
                    if len(chosen) >= enough:
                        break
            rows = np.array(chosen, np.int64)
        else:
            rows = rows[:enough]
        if len(rows) == 0:
            return Decision(None, self._why_not(pod, usage, handler), n)
        processed = (int(rows[-1]) - start) % n + 1 if len(rows) >= enough else n
        return Decision(self.infos[self._best(rows, usage)].name, "", processed)

    def _best(self, rows: Rows, usage: PodUsage) -> int:
        """LeastAllocated: the node with the most room left after the pod (cpu and memory, equally
        weighted, each as a fraction of allocatable)."""
        if len(rows) == 1:
            return int(rows[0])
        score = np.zeros(len(rows))
        for name in ("cpu", "memory"):
            col = self.columns.get(name)
            if col is None:
                continue
            cap = self.allocatable[rows, col].astype(np.float64)
            free = cap - self.requested[rows, col] - usage.requests.get(name, 0)
            score += np.where(cap > 0, free / np.where(cap > 0, cap, 1), 0)
        top = rows[score == score.max()]
        if self._name_rank is None:
            order = sorted(range(len(self.infos)), key=lambda r: self.infos[r].name)
            self._name_rank = np.empty(len(order), np.int64)
            self._name_rank[order] = np.arange(len(order))
        return int(top[np.argmax(self._name_rank[top])])

    def unfit_reasons(self, pod: Pod, usage: PodUsage, handler: str | None, row: int) -> list[str]:
        return unfit_reasons(pod, self.infos[row], usage, self.node_allocatable(row), self.node_requested(row),
                             int(self.pod_count[row]), handler)

    def _why_not(self, pod: Pod, usage: PodUsage, handler: str | None) -> str:
        reasons = {info.name: self.unfit_reasons(pod, usage, handler, row) for row, info in enumerate(self.infos)}
        return failure_message(reasons, len(self.infos))
