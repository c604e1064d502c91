"""A stored core v1 Event as events.k8s.io/v1 serves it (kube-apiserver's conversion)."""
from __future__ import annotations

from podbay.apiserver.eventsv1 import to_events_v1


def test_core_event_converts_to_events_v1() -> None:
    core = {"kind": "Event", "apiVersion": "v1", "metadata": {"name": "p.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started", "message": "Started container c",
            "source": {"component": "kubelet", "host": "n"}, "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:05Z", "count": 2, "type": "Normal",
            "reportingComponent": "kubelet", "reportingInstance": "n"}
    assert to_events_v1(core) == {
        "kind": "Event", "apiVersion": "events.k8s.io/v1", "eventTime": None,
        "metadata": {"name": "p.1", "namespace": "default"}, "regarding": {"kind": "Pod", "name": "p"},
        "reason": "Started", "note": "Started container c", "deprecatedSource": {"component": "kubelet", "host": "n"},
        "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z", "deprecatedLastTimestamp": "2026-01-01T00:00:05Z",
        "deprecatedCount": 2, "type": "Normal", "reportingController": "kubelet", "reportingInstance": "n"}


def test_event_time_and_series_are_kept() -> None:
    core = {"metadata": {"name": "e"}, "eventTime": "2026-01-01T00:00:00.000001Z", "series": {"count": 3},
            "action": "Binding", "related": {"kind": "Node", "name": "n"}}
    out = to_events_v1(core)
    assert (out["eventTime"], out["series"], out["action"], out["related"]) == (
        "2026-01-01T00:00:00.000001Z", {"count": 3}, "Binding", {"kind": "Node", "name": "n"})
