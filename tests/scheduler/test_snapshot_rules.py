"""The scheduler's rules as pure logic: the Snapshot's array filters agree with the per-node filters,
percentageOfNodesToScore walks the nodes in turn, assumed pods never overcommit a node, and a
failed binding backs off."""
from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from podbay.api import Node, Pod
from podbay.api.serialize import from_dict
from podbay.scheduler.fit import usage_of
from podbay.scheduler.scheduler import backoff
from podbay.scheduler import columns
from podbay.scheduler.snapshot import NUMPY_FROM_NODES, Snapshot, nodes_to_find

ZONES = ["a", "b"]
TAINTS = [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}, {"key": "spot", "effect": "NoExecute"},
          {"key": "soft", "effect": "PreferNoSchedule"}]
TOLERATIONS = [{"key": "gpu", "operator": "Exists"}, {"key": "spot", "operator": "Equal", "value": ""},
               {"operator": "Exists"}, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]


@st.composite
def nodes(draw: st.DrawFn, i: int) -> Node:
    allocatable = {"cpu": draw(st.sampled_from(["1", "2", "1500m", "0"])),
                   "memory": draw(st.sampled_from(["1Gi", "2Gi", "512Mi"]))}
    if draw(st.booleans()):
        allocatable["pods"] = str(draw(st.integers(0, 3)))
    if draw(st.booleans()):
        allocatable["example.com/gpu"] = "1"
    return from_dict(Node, {
        "metadata": {"name": f"n{i}", "labels": {"zone": draw(st.sampled_from(ZONES))}},
        "spec": {"unschedulable": draw(st.booleans()),
                 "taints": draw(st.lists(st.sampled_from(TAINTS), max_size=2, unique_by=lambda t: t["key"]))},
        "status": {"allocatable": allocatable, "runtimeHandlers": [{"name": h} for h in
                                                                   draw(st.sampled_from([[], ["runc"], ["runc", "runsc"]]))],
                   "conditions": [{"type": "Ready", "status": draw(st.sampled_from(["True", "True", "False"]))}]}})


@st.composite
def pods(draw: st.DrawFn, name: str, node_name: str | None = None) -> Pod:
    requests = {"cpu": draw(st.sampled_from(["0", "100m", "500m", "1"])),
                "memory": draw(st.sampled_from(["0", "256Mi", "1Gi"]))}
    if draw(st.booleans()):
        requests["example.com/gpu"] = "1"
    ports = [{"containerPort": 80, "hostPort": draw(st.sampled_from([8080, 8081]))}] if draw(st.booleans()) else []
    spec: dict = {"containers": [{"name": "c", "image": "i", "resources": {"requests": requests}, "ports": ports}],
                  "tolerations": draw(st.lists(st.sampled_from(TOLERATIONS), max_size=2)),
                  "nodeName": node_name}
    if draw(st.booleans()):
        spec["nodeSelector"] = {"zone": draw(st.sampled_from(ZONES))}
    if draw(st.booleans()):
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": draw(st.sampled_from(["In", "NotIn"])), "values": ["a"]}]}]}}}
    return from_dict(Pod, {"metadata": {"name": name, "uid": name}, "spec": spec})


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[Node], list[Pod], Pod, str | None]:
    ns = [draw(nodes(i)) for i in range(draw(st.integers(1, 8)))]
    placed = [draw(pods(f"p{k}", f"n{draw(st.integers(0, len(ns)))}")) for k in range(draw(st.integers(0, 6)))]
    return ns, placed, draw(pods("new")), draw(st.sampled_from([None, "runc", "runsc"]))


def reference_score(snap: Snapshot, row: int, p: Pod) -> Fraction:
    allocatable, requested = snap.node_allocatable(row), snap.node_requested(row)
    want = usage_of(p).requests
    total = Fraction(0)
    for name in ("cpu", "memory"):
        cap = allocatable.get(name, 0)
        if cap > 0:
            total += Fraction(cap - requested.get(name, 0) - want.get(name, 0), cap)
    return total


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_the_array_filters_agree_with_the_per_node_filters(cluster: tuple[list[Node], list[Pod], Pod, str | None]) -> None:
    ns, placed, p, handler = cluster
    snap = Snapshot()
    for n in ns:
        snap.set_node(n)
    for q in placed:  # one pod's node is not there: counted nowhere
        snap.place(q.metadata.name or "", q.spec.node_name or "", usage_of(q))
    usage = usage_of(p)
    fitting = [row for row in range(len(snap)) if not snap.unfit_reasons(p, usage, handler, row)]
    decision = snap.decide(p, usage, handler, 0)
    if not fitting:
        assert decision.node is None
        assert decision.message.startswith(f"0/{len(ns)} nodes are available: ")
        return
    best = max(fitting, key=lambda r: (reference_score(snap, r, p), snap.infos[r].name))
    assert decision.node == snap.infos[best].name


def snapshots_on_both_backends(ns: list[Node], placed: list[Pod]) -> tuple[Snapshot, Snapshot]:
    """The same cluster over lists (the default for a small one) and over numpy."""
    on_lists, on_numpy = Snapshot(), Snapshot(numpy_from_nodes=0)
    for snap in (on_lists, on_numpy):
        for n in ns:
            snap.set_node(n)
        for q in placed:
            snap.place(q.metadata.name or "", q.spec.node_name or "", usage_of(q))
    assert on_lists.xp is columns and on_numpy.xp is not columns
    return on_lists, on_numpy


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_lists_and_numpy_make_the_same_decisions(cluster: tuple[list[Node], list[Pod], Pod, str | None]) -> None:
    ns, placed, p, handler = cluster
    on_lists, on_numpy = snapshots_on_both_backends(ns, placed)
    usage = usage_of(p)
    for start in range(len(ns)):
        assert on_lists.decide(p, usage, handler, start) == on_numpy.decide(p, usage, handler, start)
    assert on_lists.feasible(p, usage).tolist() == on_numpy.feasible(p, usage).tolist()


def plain_node(i: int, cpu: str = "4") -> Node:
    return from_dict(Node, {"metadata": {"name": f"node-{i:04d}"}, "status": {
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}})


def plain_pod(name: str, cpu: str = "100m") -> Pod:
    return from_dict(Pod, {"metadata": {"name": name, "uid": name}, "spec": {"containers": [
        {"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}})


def test_percentage_of_nodes_to_score_as_kube_scheduler_computes_it() -> None:
    assert [nodes_to_find(n) for n in (5, 99, 100, 250, 1000, 5000, 10000)] == [5, 99, 100, 120, 420, 500, 500]


def test_each_search_starts_where_the_last_one_stopped() -> None:
    snap = Snapshot()
    for i in range(250):
        snap.set_node(plain_node(i))
    p = plain_pod("p")
    first = snap.decide(p, usage_of(p), None, 0)
    # 120 nodes looked at, all fitting; the emptiest among equals is the greatest name.
    assert (first.node, first.processed) == ("node-0119", 120)
    second = snap.decide(p, usage_of(p), None, 120)
    assert (second.node, second.processed) == ("node-0239", 120)
    third = snap.decide(p, usage_of(p), None, 240)  # wraps around: rows 240..249, then 0..109
    assert (third.node, third.processed) == ("node-0249", 120)


def test_assumed_pods_fill_nodes_exactly_and_never_beyond() -> None:
    snap = Snapshot()
    for i in range(150):
        snap.set_node(plain_node(i, cpu="1" if i % 3 else "0"))  # a third of the nodes have no room at all
    bound = 0
    for k in range(1200):
        p = plain_pod(f"p{k}", "300m")
        usage = usage_of(p)
        decision = snap.decide(p, usage, None, k * 7)
        if decision.node is None:
            assert decision.message == "0/150 nodes are available: 150 Insufficient cpu."
            continue
        snap.place(p.metadata.name or "", decision.node, usage)
        bound += 1
    assert bound == 100 * 3  # three 300m pods per 1-CPU node
    cpu = snap.columns["cpu"]
    assert all(r <= a for r, a in zip(snap.requested[cpu].tolist()[:len(snap)], snap.allocatable[cpu].tolist()))


def test_pods_count_where_they_are_as_nodes_and_pods_come_and_go() -> None:
    snap = Snapshot()
    snap.place("early", "node-0001", usage_of(plain_pod("early", "1")))  # bound before its node is seen
    for i in range(3):
        snap.set_node(plain_node(i))
    assert snap.node_requested(snap.rows["node-0001"])["cpu"] == 1000
    snap.remove_node("node-0000")  # the last row moves into the freed one
    assert snap.rows == {"node-0002": 0, "node-0001": 1}
    assert snap.node_requested(snap.rows["node-0001"])["cpu"] == 1000
    snap.place("early", "node-0002", usage_of(plain_pod("early", "1")))  # seen bound elsewhere
    assert snap.node_requested(snap.rows["node-0001"])["cpu"] == 0
    assert snap.node_requested(snap.rows["node-0002"])["cpu"] == 1000
    snap.remove_node("node-0002")
    snap.set_node(plain_node(2))  # back again: its pods count again
    assert snap.node_requested(snap.rows["node-0002"])["cpu"] == 1000
    snap.unplace("early")
    assert snap.node_requested(snap.rows["node-0002"])["cpu"] == 0
    assert int(snap.pod_count[snap.rows["node-0002"]]) == 0


def test_a_failed_binding_backs_off_as_kube_scheduler_does() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 5, 100)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_snapshot_moves_to_numpy_past_the_threshold_and_decides_as_before() -> None:
    """Nodes added one by one: lists up to NUMPY_FROM_NODES, numpy after, each decision (placed as
    it is made, so the nodes fill unevenly) the same as a snapshot on numpy from the start."""
    on_lists, on_numpy = Snapshot(), Snapshot(numpy_from_nodes=0)
    for i in range(NUMPY_FROM_NODES + 20):
        for snap in (on_lists, on_numpy):
            snap.set_node(plain_node(i, cpu=("1", "2", "3")[i % 3]))
        assert (on_lists.xp is columns) == (i < NUMPY_FROM_NODES)
        for k in range(3):
            p = plain_pod(f"p{i}-{k}", ("100m", "700m")[k % 2])
            usage = usage_of(p)
            decision = on_lists.decide(p, usage, None, i * 5 + k)
            assert decision == on_numpy.decide(p, usage, None, i * 5 + k)
            if decision.node is not None:
                for snap in (on_lists, on_numpy):
                    snap.place(p.metadata.name or "", decision.node, usage)
    on_lists.remove_node("node-0003")
    on_numpy.remove_node("node-0003")
    p = plain_pod("last", "2")
    assert on_lists.decide(p, usage_of(p), None, 0) == on_numpy.decide(p, usage_of(p), None, 0)
