"""The CPU rate between two samples and the quantities metrics.k8s.io reports, as metrics-server."""
from __future__ import annotations

from datetime import datetime, timezone

from podbay.agent.resourcemetrics import Sample, UsageSamples, rate
from podbay.apiserver.metrics import cpu_quantity, memory_quantity, node_metrics, pod_metrics

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_rate_is_cpu_time_over_elapsed_time() -> None:
    usage = rate(Sample(10.0, T, 1_000_000_000, 1), Sample(12.0, T, 1_500_000_000, 4096))
    assert usage is not None
    assert (usage.nano_cores, usage.window_seconds, usage.memory_working_set) == (250_000_000, 2.0, 4096)


def test_no_rate_without_time_or_when_the_counter_went_back() -> None:
    assert rate(Sample(10.0, T, 5, 0), Sample(10.0, T, 9, 0)) is None
    assert rate(Sample(10.0, T, 9, 0), Sample(11.0, T, 5, 0)) is None


def test_usage_needs_two_samples_and_forgets_what_stopped() -> None:
    samples = UsageSamples()
    samples.record({"a": Sample(1.0, T, 0, 0)})
    assert samples.usage("a") is None
    samples.record({"a": Sample(2.0, T, 10**9, 0)})
    usage = samples.usage("a")
    assert usage is not None and usage.nano_cores == 10**9
    samples.record({})
    assert samples.usage("a") is None


def test_quantities() -> None:
    assert cpu_quantity(1234) == "1234n"
    assert memory_quantity(2048) == "2Ki"
    assert memory_quantity(1000) == "1000"


def test_metrics_only_with_cpu_and_memory() -> None:
    stats = {"cpu": {"time": "t", "usageNanoCores": 5, "window": "1.000s"}, "memory": {"workingSetBytes": 1024}}
    node = node_metrics({"metadata": {"name": "n"}}, {"node": stats})
    assert node is not None and node["usage"] == {"cpu": "5n", "memory": "1Ki"} and node["window"] == "1.000s"
    assert node_metrics({"metadata": {"name": "n"}}, {"node": {"nodeName": "n"}}) is None
    pod = {"metadata": {"name": "p", "namespace": "default"}}
    assert pod_metrics(pod, {"containers": [{"name": "a", **stats}, {"name": "b", "cpu": {}}]}) is None
    full = pod_metrics(pod, {"containers": [{"name": "a", **stats}]})
    assert full is not None and full["containers"] == [{"name": "a", "usage": {"cpu": "5n", "memory": "1Ki"}}]
