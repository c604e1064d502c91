"""CPU and memory usage of the node and its running containers, for `kubectl top` (metrics.k8s.io).

CPU is a rate: as metrics-server, the usage in nanocores is the difference of the cumulative CPU
time between two samples over the time between them. The agent samples every
`AgentConfig.metrics_interval` seconds and keeps the last two samples of each container and of
the node; memory is the latest working set (usage less inactive file cache, cAdvisor's). Served
as the kubelet's Summary API (`/stats/summary`) on the agent's HTTPS server.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, NotRequired, TypedDict

from podbay.agent.cri import ContainerRuntime
from podbay.agent.podstate import RunState
from podbay.agent.runtimeview import runtime_pods
from podbay.api import Pod
from podbay.api.errors import NotFound
from podbay.api.stored import uid_of
from podbay.runtime import cgroups

log = logging.getLogger(__name__)

NODE_KEY = ""  # the node's samples; containers' are keyed by container id


@dataclass(frozen=True)
class Sample:
    monotonic: float  # seconds, for the rate
    wall: datetime  # the time reported with it
    cpu_ns: int  # cumulative CPU time
    memory_working_set: int


@dataclass(frozen=True)
class Usage:
    time: datetime
    window_seconds: float
    nano_cores: int
    core_nanoseconds: int
    memory_working_set: int


def rate(older: Sample, newer: Sample) -> Usage | None:
    """The usage between two samples; None when they span no time or the counter went back
    (a container of the same id cannot, but a cgroup made again can)."""
    elapsed = newer.monotonic - older.monotonic
    used = newer.cpu_ns - older.cpu_ns
    if elapsed <= 0 or used < 0:
        return None
    return Usage(newer.wall, elapsed, round(used / elapsed), newer.cpu_ns, newer.memory_working_set)


class CPUStats(TypedDict):
    time: str
    usageNanoCores: int
    usageCoreNanoSeconds: int
    window: str


class MemoryStats(TypedDict):
    time: str
    workingSetBytes: int


class ContainerStats(TypedDict):
    name: str
    cpu: CPUStats
    memory: MemoryStats


class PodReference(TypedDict):
    name: str | None
    namespace: str | None
    uid: str


class PodStats(TypedDict):
    podRef: PodReference
    containers: list[ContainerStats]


class NodeStats(TypedDict):
    nodeName: str
    cpu: NotRequired[CPUStats]  # only once two samples give a rate
    memory: NotRequired[MemoryStats]


class Summary(TypedDict):
    """The kubelet's Summary API (stats/v1alpha1), as much of it as metrics.k8s.io reads."""

    node: NodeStats
    pods: list[PodStats]


class UsageSamples:
    """The last two samples per key; a key not sampled in a pass (its container stopped) is dropped."""

    def __init__(self) -> None:
        self._samples: dict[str, tuple[Sample | None, Sample]] = {}

    def record(self, samples: dict[str, Sample]) -> None:
        self._samples = {key: (self._samples[key][1] if key in self._samples else None, sample)
                         for key, sample in samples.items()}

    def usage(self, key: str) -> Usage | None:
        pair = self._samples.get(key)
        if pair is None or pair[0] is None:
            return None
        return rate(pair[0], pair[1])


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu(usage: Usage) -> CPUStats:
    # "window" is not in the kubelet's Summary API, where cAdvisor's housekeeping interval is implicit;
    # metrics.k8s.io reports it, so the agent says which interval its rate covers.
    return {"time": _stamp(usage.time), "usageNanoCores": usage.nano_cores,
            "usageCoreNanoSeconds": usage.core_nanoseconds, "window": f"{usage.window_seconds:.3f}s"}


def _memory(usage: Usage) -> MemoryStats:
    return {"time": _stamp(usage.time), "workingSetBytes": usage.memory_working_set}


class ResourceMetrics:
    def __init__(self, runtime: ContainerRuntime, pods: Callable[[], list[Pod]]) -> None:
        self.runtime = runtime
        self.pods = pods
        self.samples = UsageSamples()
        self._containers: dict[str, tuple[Pod, str]] = {}  # container id -> (pod, container name), last pass

    async def sample(self) -> None:
        """One pass: the node's and every running container's CPU time and working set."""
        taken: dict[str, Sample] = {}
        containers: dict[str, tuple[Pod, str]] = {}
        node_cpu = cgroups.cpu_usage_nanoseconds("")
        if node_cpu is not None:
            taken[NODE_KEY] = Sample(time.monotonic(), datetime.now(timezone.utc), node_cpu,
                                     cgroups.node_memory_working_set())
        pods = {uid_of(p): p for p in self.pods()}
        for uid, rt in (await runtime_pods(self.runtime)).items():
            pod = pods.get(uid)
            if pod is None:
                continue
            for record in rt.containers:
                if record.state is not RunState.RUNNING:
                    continue
                with contextlib.suppress(NotFound):
                    usage = await self.runtime.container_usage(record.id)
                    if usage.cpu_usage_core_nanoseconds is None:
                        continue
                    taken[record.id] = Sample(time.monotonic(), datetime.now(timezone.utc),
                                              usage.cpu_usage_core_nanoseconds, usage.memory_working_set_bytes)
                    containers[record.id] = (pod, record.name)
        self.samples.record(taken)
        self._containers = containers

    async def loop(self, interval: float) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # a failed pass must not end the sampling
                log.warning("sampling resource usage failed: %s", exc)
            await asyncio.sleep(interval)

    def summary(self, node_name: str) -> Summary:
        """The Summary API's node and pods, with only what has a rate (two samples) yet."""
        node: NodeStats = {"nodeName": node_name}
        node_usage = self.samples.usage(NODE_KEY)
        if node_usage is not None:
            node["cpu"], node["memory"] = _cpu(node_usage), _memory(node_usage)
        pods: dict[str, PodStats] = {}
        for cid, (pod, name) in self._containers.items():
            usage = self.samples.usage(cid)
            if usage is None:
                continue
            meta = pod.metadata
            entry = pods.setdefault(uid_of(pod), {
                "podRef": {"name": meta.name, "namespace": meta.namespace, "uid": uid_of(pod)}, "containers": []})
            entry["containers"].append({"name": name, "cpu": _cpu(usage), "memory": _memory(usage)})
        return {"node": node, "pods": list(pods.values())}
