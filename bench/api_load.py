"""The API load of `bench.control_plane --api-pods`, in its own process so the clients do not share
the API server's event loop (or its core) with it:

    .venv/bin/python -m bench.api_load SOCKET --clients 20 --pods 10000 --phase create|json|table|lifecycle

A lean client on purpose: raw aiohttp over the server's unix socket, each pod's JSON encoded before
the clock starts and the response read as bytes, so the figure is the server's and not podbay's
typed Client's (which decodes every answer into pydantic models). It still goes through the real
HTTP API. Prints one JSON object: for `create`, creates/s and the create latencies' p50/p99; for
`json` and `table`, the seconds to serve the whole pod list as JSON or as a Table (kubectl's Accept
for `get`), the best of three; for `lifecycle`, pods/s through the writes a burst makes for each pod
(create, binding, two status writes, four Events).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ""}, "spec": {"containers": [
    {"name": "c", "image": "busybox:1.35", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
PODS = "http://localhost/api/v1/namespaces/default/pods"
EVENTS = "http://localhost/api/v1/namespaces/default/events"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


def body(name: str) -> bytes:
    return json.dumps({**POD, "metadata": {"name": name}}).encode()


async def creates(session: aiohttp.ClientSession, clients: int, pods: int) -> tuple[float, list[float]]:
    """Wall seconds for `pods` creates spread over `clients` concurrent clients, and each one's seconds."""
    bodies = [[body(f"t-{k}-{i}") for i in range(k, pods, clients)] for k in range(clients)]
    samples: list[float] = []

    async def one(mine: list[bytes]) -> None:
        for data in mine:
            t0 = time.perf_counter()
            async with session.post(PODS, data=data, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                if r.status != 201:
                    raise RuntimeError(f"create answered {r.status}")
            samples.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(mine) for mine in bodies))
    return time.perf_counter() - t0, sorted(samples)


def _event(pod: str, i: int, reason: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{pod}.{i}"},
                       "involvedObject": {"kind": "Pod", "namespace": "default", "name": pod},
                       "reason": reason, "message": f"{reason} {pod}", "type": "Normal", "count": 1,
                       "source": {"component": "bench"}}).encode()


def _status(pod: dict[str, Any], running: bool) -> bytes:
    state = {"running": {"startedAt": "2026-12-01T00:00:01Z"}} if running else {"waiting": {"reason": "ContainerCreating"}}
    # No resourceVersion: the binding has changed the pod since (the agent writes from its watch's copy).
    meta = {k: v for k, v in pod["metadata"].items() if k != "resourceVersion"}
    return json.dumps({**pod, "metadata": meta, "status": {
        "phase": "Running" if running else "Pending", "qosClass": "Burstable", "hostIP": "10.0.0.1",
        "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}], "startTime": "2026-12-01T00:00:00Z",
        "conditions": [{"type": t, "status": "True" if running else "False",
                        "lastTransitionTime": "2026-12-01T00:00:01Z"} for t in ("Initialized", "Ready", "PodScheduled")],
        "containerStatuses": [{"name": "c", "ready": running, "restartCount": 0, "image": "busybox:1.35",
                               "imageID": "", "started": running, "state": state}]}}).encode()


async def lifecycles(session: aiohttp.ClientSession, clients: int, pods: int) -> float:
    """Wall seconds for `pods` pods' API writes as a burst makes them (the create, the binding, two
    status writes, four Events), spread over `clients` concurrent clients."""
    json_type = {"Content-Type": "application/json"}

    async def write(method: str, url: str, data: bytes, expect: int) -> Any:
        async with session.request(method, url, data=data, headers=json_type) as r:
            answer = await r.read()
            if r.status != expect:
                raise RuntimeError(f"{method} {url} answered {r.status}: {answer[:200]!r}")
            return json.loads(answer)

    async def one(k: int) -> None:
        for i in range(k, pods, clients):
            name = f"l-{i}"
            pod = await write("POST", PODS, body(name), 201)
            binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                       "target": {"kind": "Node", "name": "n1"}}
            await write("POST", f"{PODS}/{name}/binding", json.dumps(binding).encode(), 201)
            for n, reason in enumerate(("Scheduled", "Pulled")):
                await write("POST", EVENTS, _event(name, n, reason), 201)
            await write("PUT", f"{PODS}/{name}/status", _status(pod, False), 200)
            for n, reason in enumerate(("Created", "Started"), 2):
                await write("POST", EVENTS, _event(name, n, reason), 201)
            await write("PUT", f"{PODS}/{name}/status", _status(pod, True), 200)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(clients)))
    return time.perf_counter() - t0


async def list_seconds(session: aiohttp.ClientSession, accept: str, expect: int) -> float:
    """The best of three: seconds from sending the list to its last byte."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        async with session.get(PODS, headers={"Accept": accept}) as r:
            data = await r.read()
        best = min(best, time.perf_counter() - t0)
        doc = json.loads(data)
        count = len(doc.get("items", doc.get("rows", [])))
        if count != expect:
            raise RuntimeError(f"the list has {count} pods, not {expect}")
    return best


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--phase", choices=("create", "json", "table", "lifecycle"), required=True)
    args = parser.parse_args()
    connector = aiohttp.UnixConnector(path=args.socket, limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        if args.phase == "create":
            wall, samples = await creates(session, args.clients, args.pods)
            result = {
                "creates_per_s": args.pods / wall,
                "p50_ms": samples[len(samples) // 2] * 1000,
                "p99_ms": samples[min(len(samples) - 1, int(0.99 * len(samples)))] * 1000,
            }
        elif args.phase == "lifecycle":
            result = {"lifecycles_per_s": args.pods / await lifecycles(session, args.clients, args.pods)}
        else:
            accept = TABLE if args.phase == "table" else "application/json"
            result = {f"list_{args.phase}_s": await list_seconds(session, accept, args.pods)}
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
