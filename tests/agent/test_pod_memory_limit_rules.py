"""The pod cgroup's memory limit, as the kubelet's ResourceConfigForPod computes it."""
from __future__ import annotations

from podbay.agent.translate import pod_memory_limit
from podbay.api.formats import load_pods

MI = 1024 * 1024


def pod(containers: str, extra: str = "") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
{extra}  containers:
{containers}"""


def test_the_limits_summed_with_the_overhead_and_the_largest_init_step() -> None:
    two = """  - {name: a, image: busybox, resources: {limits: {memory: 16Mi}}}
  - {name: b, image: busybox, resources: {limits: {memory: 48Mi}}}
"""
    assert pod_memory_limit(load_pods(pod(two))[0]) == 64 * MI
    assert pod_memory_limit(load_pods(pod(two, "  overhead: {memory: 32Mi}\n"))[0]) == 96 * MI
    big_init = "  initContainers:\n  - {name: i, image: busybox, resources: {limits: {memory: 100Mi}}}\n"
    assert pod_memory_limit(load_pods(pod(two, big_init))[0]) == 100 * MI


def test_no_pod_limit_when_a_container_has_none() -> None:
    unlimited = """  - {name: a, image: busybox, resources: {limits: {memory: 16Mi}}}
  - {name: b, image: busybox}
"""
    assert pod_memory_limit(load_pods(pod(unlimited))[0]) is None
    zero = "  - {name: a, image: busybox, resources: {limits: {memory: '0'}}}\n"
    assert pod_memory_limit(load_pods(pod(zero))[0]) is None
    init_unlimited = "  initContainers:\n  - {name: i, image: busybox}\n"
    limited = "  - {name: a, image: busybox, resources: {limits: {memory: 16Mi}}}\n"
    assert pod_memory_limit(load_pods(pod(limited, init_unlimited))[0]) is None
