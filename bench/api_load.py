"""The API load of `bench.control_plane --api-pods`, in its own process so the clients do not share
the API server's event loop (or its core) with it:

    .venv/bin/python -m bench.api_load SOCKET --clients 20 --pods 10000 --phase create|json|table

A lean client on purpose: raw aiohttp over the server's unix socket, each pod's JSON encoded before
the clock starts and the response read as bytes, so the figure is the server's and not podbay's
typed Client's (which decodes every answer into pydantic models). It still goes through the real
HTTP API. Prints one JSON object: for `create`, creates/s and the create latencies' p50/p99; for
`json` and `table`, the seconds to serve the whole pod list as JSON or as a Table (kubectl's Accept
for `get`), the best of three.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ""}, "spec": {"containers": [
    {"name": "c", "image": "busybox:1.35", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
PODS = "http://localhost/api/v1/namespaces/default/pods"
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
    parser.add_argument("--phase", choices=("create", "json", "table"), required=True)
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
        else:
            accept = TABLE if args.phase == "table" else "application/json"
            result = {f"list_{args.phase}_s": await list_seconds(session, accept, args.pods)}
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
