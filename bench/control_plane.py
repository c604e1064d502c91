"""podbay's control plane alone, on a real API server (no containers):

    sudo .venv/bin/python -m bench.control_plane [--nodes 1000,5000] [--pods 10000] [--clients 20] [--stores sqlite,etcd]
        [--scheduler-stores sqlite] [--watch-events 200] [--api-pods 10000] [--profile FILE]

- scheduler throughput: pods bound per second with `--nodes` Node objects (each count in turn)
  and `--pods` pods, on each of `--scheduler-stores`; beside it the two halves alone: the
  scheduling cycle on its snapshot without the API (decisions/s), and the API server taking
  bindings without a scheduler (as many in flight as the scheduler sends);
- API create latency p50/p99 with `--clients` concurrent clients, and watch delivery latency
  p50/p99 (a create sent to its ADDED event reaching a watcher, `--watch-events` creates one after
  another), on each of `--stores`: the SQLite file, a single-member etcd (Debian's etcd-server)
  or `etcd3`, a three-member etcd cluster, all started on free loopback ports;
- API throughput (`--api-pods`, 0: none): creates/s and their p50/p99 with `--clients` clients of
  `bench.api_load` in another process, then the seconds to serve those pods as one list, as JSON
  and as kubectl's Table, on each of `--stores`; `--profile FILE` writes cProfile's statistics of
  the API server's process during it (pstats format, one file per store: FILE.<store>).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator

from podbay.api import Binding, Node, ObjectMeta, ObjectReference, Pod
from podbay.api.serialize import from_dict
from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.client import Client
from podbay.client.informer import SharedInformerFactory
from podbay.scheduler.fit import usage_of
from podbay.scheduler.scheduler import MAX_BINDINGS_IN_FLIGHT, Scheduler
from podbay.scheduler.snapshot import Snapshot
from podbay.store.etcd import EtcdStore
from tests.etcd_server import EtcdCluster, EtcdServer


def node(i: int) -> Node:
    return from_dict(Node, {"metadata": {"name": f"node-{i:04d}"}, "status": {
        "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]}})


def pod(name: str) -> Pod:
    return from_dict(Pod, {"metadata": {"name": name}, "spec": {"containers": [
        {"name": "c", "image": "busybox:1.35", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})


async def scheduler_throughput(url: str, nodes: int, pods: int) -> float:
    client = Client.connect(url)
    for i in range(nodes):
        await client.create(node(i))
    for i in range(pods):
        await client.create(pod(f"s-{i}"))
    informers = SharedInformerFactory(client)
    scheduler = Scheduler(client, informers)
    watchers = [asyncio.create_task(scheduler.watch_nodes()), asyncio.create_task(scheduler.watch_pods())]
    while len(scheduler.snapshot) < nodes or len(scheduler.pod_informer.list()) < pods:
        await asyncio.sleep(0.05)  # the caches fill from the watches; not part of the timing
    loop = asyncio.create_task(scheduler.schedule_loop())
    t0 = time.monotonic()
    while scheduler.queue.qsize() or scheduler.queued or scheduler._binding:
        await asyncio.sleep(0.01)
    took = time.monotonic() - t0
    for t in (loop, *watchers):
        t.cancel()
    await asyncio.gather(loop, *watchers, return_exceptions=True)
    await scheduler.events.close()
    await informers.shutdown()
    await client.close()
    return pods / took


def decision_rate(nodes: int, pods: int) -> float:
    """The scheduling cycle alone (filters, score, assume) on a snapshot of `nodes` nodes, per second."""
    snapshot = Snapshot()
    for i in range(nodes):
        snapshot.set_node(node(i))
    unbound = [pod(f"s-{i}") for i in range(pods)]
    start = 0
    t0 = time.monotonic()
    for i, p in enumerate(unbound):
        usage = usage_of(p)
        decision = snapshot.decide(p, usage, None, start)
        start += decision.processed
        if decision.node is not None:
            snapshot.place(str(i), decision.node, usage)
    return pods / (time.monotonic() - t0)


async def binding_rate(url: str, nodes: int, pods: int) -> float:
    """Bindings per second the API server takes with no scheduler: as many in flight as the
    scheduler keeps, round-robin over the nodes."""
    client = Client.connect(url)
    for i in range(pods):
        await client.create(pod(f"b-{i}"))
    slots = asyncio.Semaphore(MAX_BINDINGS_IN_FLIGHT)

    async def bind(i: int) -> None:
        async with slots:
            await client.bind(Binding(metadata=ObjectMeta(name=f"b-{i}", namespace="default"),
                                      target=ObjectReference(kind="Node", name=f"node-{i % nodes:04d}")))
    t0 = time.monotonic()
    await asyncio.gather(*(bind(i) for i in range(pods)))
    took = time.monotonic() - t0
    await client.close()
    return pods / took


async def create_latency(url: str, clients: int, per_client: int) -> list[float]:
    samples: list[float] = []

    async def one(k: int) -> None:
        client = Client.connect(url)
        for i in range(per_client):
            t0 = time.perf_counter()
            await client.create(pod(f"l-{k}-{i}"))
            samples.append(time.perf_counter() - t0)
        await client.close()
    await asyncio.gather(*(one(k) for k in range(clients)))
    return sorted(samples)


async def watch_latency(url: str, count: int) -> list[float]:
    """Seconds from sending each create to a watcher receiving its ADDED event."""
    writer, watcher = Client.connect(url), Client.connect(url)
    _, since = await watcher.list(Pod, "default")
    sent: dict[str, float] = {}
    samples: list[float] = []

    async def follow() -> None:
        async for type_, p in watcher.watch(Pod, "default", resource_version=since):
            if type_ == "ADDED" and p.metadata.name in sent:
                samples.append(time.perf_counter() - sent[p.metadata.name])
                if len(samples) == count:
                    return
    following = asyncio.create_task(follow())
    for i in range(count):
        sent[f"w-{i}"] = time.perf_counter()
        await writer.create(pod(f"w-{i}"))
    await asyncio.wait_for(following, 120)
    await writer.close()
    await watcher.close()
    return sorted(samples)


async def api_throughput(server: EmbeddedServer, clients: int, pods: int, profile: Path | None) -> dict[str, float]:
    """bench.api_load's figures against `server` (optionally under cProfile), and the CPU seconds
    this process (the API server, all its threads) spent per create and per list of each form: a figure the
    other loads on a shared machine disturb less than the wall-clock ones."""
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    figures = await api_phases(server, clients, pods, ("create", "json", "table"))
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    return figures


async def api_phases(server: EmbeddedServer, clients: int, pods: int, phases: tuple[str, ...]) -> dict[str, float]:
    """bench.api_load's `phases` against `server`, each with the CPU seconds this process spent in it."""
    figures: dict[str, float] = {}
    for phase in phases:
        cpu = time.process_time()
        load = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.api_load", str(server.socket_path), "--clients", str(clients),
            "--pods", str(pods), "--phase", phase, stdout=asyncio.subprocess.PIPE)
        out, _ = await load.communicate()
        if load.returncode != 0:
            raise RuntimeError(f"bench.api_load --phase {phase} exited {load.returncode}")
        figures[f"{phase}_cpu_s"] = time.process_time() - cpu
        figures.update(json.loads(out))
    return figures


@contextlib.asynccontextmanager
async def api_server(kind: str) -> AsyncIterator[EmbeddedServer]:
    """An API server on the store `kind` names: its SQLite file, or its own etcd (one member, or
    `etcd3`: a cluster of three), under a temporary root removed after."""
    with tempfile.TemporaryDirectory(prefix="podbay-bench-cp-") as tmp:
        async with _api_server(kind, Path(tmp)) as server:
            yield server


@contextlib.asynccontextmanager
async def _api_server(kind: str, root: Path) -> AsyncIterator[EmbeddedServer]:
    if kind == "sqlite":
        async with serve_embedded(root, host=None) as server:
            yield server
        return
    etcd: EtcdServer | EtcdCluster = EtcdCluster(root / "etcd", 3) if kind == "etcd3" else EtcdServer(root / "etcd")
    try:
        store = await EtcdStore.connect(etcd.urls if isinstance(etcd, EtcdCluster) else [etcd.url])
        try:
            async with serve_embedded(root, host=None, store=store) as server:
                yield server
        finally:
            await store.close()
    finally:
        etcd.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", default="1000,5000", help="comma-separated node counts for the scheduler")
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=50, help="0: no create latency nor watch latency")
    parser.add_argument("--stores", default="sqlite,etcd", help="comma-separated: sqlite, etcd, etcd3")
    parser.add_argument("--scheduler-stores", default="sqlite", help="comma-separated: sqlite, etcd, etcd3")
    parser.add_argument("--watch-events", type=int, default=200, help="0: no watch latency")
    parser.add_argument("--api-pods", type=int, default=10000, help="0: no API throughput")
    parser.add_argument("--profile", type=Path, help="cProfile the API server during the throughput run")
    parser.add_argument("--lifecycle-pods", type=int, default=0,
                        help="pods put through a burst's API writes each (create, binding, status, Events)")
    args = parser.parse_args()
    for nodes in [int(n) for n in args.nodes.split(",")] if args.pods else []:
        print(f"scheduling cycle alone (no API): {args.pods} pods on {nodes} nodes at "
              f"{decision_rate(nodes, args.pods):.0f} decisions/s")
        for kind in args.scheduler_stores.split(","):
            async with api_server(kind) as server:
                rate = await scheduler_throughput(server.url, nodes, args.pods)
            print(f"scheduler ({kind} store): {args.pods} pods on {nodes} nodes bound at {rate:.0f} pods/s")
            async with api_server(kind) as server:
                rate = await binding_rate(server.url, nodes, args.pods)
            print(f"API alone ({kind} store): {args.pods} bindings, {MAX_BINDINGS_IN_FLIGHT} in flight, "
                  f"at {rate:.0f} bindings/s")
    for kind in args.stores.split(",") if args.api_pods else []:
        async with api_server(kind) as server:
            profile = args.profile.with_name(f"{args.profile.name}.{kind}") if args.profile else None
            f = await api_throughput(server, args.clients, args.api_pods, profile)
        print(f"API creates ({kind} store), {args.clients} concurrent clients, {args.api_pods} pods: "
              f"{f['creates_per_s']:.0f}/s, p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, "
              f"server CPU {f['create_cpu_s'] / args.api_pods * 1000:.2f} ms per create")
        print(f"API list of {args.api_pods} pods ({kind} store): JSON {f['list_json_s']:.3f} s, "
              f"Table {f['list_table_s']:.3f} s (best of 3 each); server CPU per list: "
              f"JSON {f['json_cpu_s'] / 3:.3f} s, Table {f['table_cpu_s'] / 3:.3f} s")
    for kind in args.stores.split(",") if args.lifecycle_pods else []:
        async with api_server(kind) as server:
            f = await api_phases(server, args.clients, args.lifecycle_pods, ("lifecycle",))
        print(f"API writes of a pod's start ({kind} store), {args.clients} clients, {args.lifecycle_pods} pods: "
              f"{f['lifecycles_per_s']:.0f} pods/s, server CPU {f['lifecycle_cpu_s'] / args.lifecycle_pods * 1000:.2f} "
              "ms per pod")
    for kind in args.stores.split(",") if args.per_client else []:
        async with api_server(kind) as server:
            lat = await create_latency(server.url, args.clients, args.per_client)
            watched = await watch_latency(server.url, args.watch_events) if args.watch_events else []
        print(f"API create latency ({kind} store), {args.clients} concurrent clients x {args.per_client}: "
              f"p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms")
        if watched:
            print(f"watch delivery latency ({kind} store), {args.watch_events} creates: "
                  f"p50 {percentile(watched, 0.5):.1f} ms, p99 {percentile(watched, 0.99):.1f} ms")


def percentile(sorted_seconds: list[float], q: float) -> float:
    """The q-quantile of sorted samples, in milliseconds."""
    return sorted_seconds[min(len(sorted_seconds) - 1, int(q * len(sorted_seconds)))] * 1000


if __name__ == "__main__":
    asyncio.run(main())
