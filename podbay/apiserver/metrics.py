"""metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics, computed when read from the agents' Summary
API (`/stats/summary`), as metrics-server serves them from the kubelets'. Read-only, never stored;
what `kubectl top` reads. A node whose agent cannot be reached, or that has not sampled twice yet,
has no metrics (metrics-server leaves such nodes and pods out too).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web

from podbay.api.errors import NotFound
from podbay.apiserver.logs import SESSION_KEY, agent_base_url
from podbay.apiserver.status import HTTPError
from podbay.store.base import Store
from podbay.store.selectors import parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)

GROUP_VERSION = "metrics.k8s.io/v1beta1"
_SCRAPE_TIMEOUT = aiohttp.ClientTimeout(total=10)  # metrics-server's --kubelet-request-timeout default


def cpu_quantity(nano_cores: int) -> str:
    return f"{nano_cores}n"  # metrics-server's resource.NewScaledQuantity(nanocores, -9)


def memory_quantity(num_bytes: int) -> str:
    # resource.NewQuantity(bytes, BinarySI) in its canonical form: Ki only when it divides exactly.
    return f"{num_bytes // 1024}Ki" if num_bytes and num_bytes % 1024 == 0 else str(num_bytes)


def _usage(stats: dict[str, Any]) -> dict[str, str] | None:
    cpu, memory = stats.get("cpu") or {}, stats.get("memory") or {}
    if "usageNanoCores" not in cpu or "workingSetBytes" not in memory:
        return None
    return {"cpu": cpu_quantity(int(cpu["usageNanoCores"])), "memory": memory_quantity(int(memory["workingSetBytes"]))}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_metrics(node: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    stats = summary.get("node") or {}
    usage = _usage(stats)
    if usage is None:
        return None
    meta = node["metadata"]
    return {"kind": "NodeMetrics", "apiVersion": GROUP_VERSION,
            "metadata": {"name": meta["name"], "labels": meta.get("labels", {}), "creationTimestamp": _now()},
            "timestamp": stats["cpu"]["time"], "window": stats["cpu"].get("window", "0s"), "usage": usage}


def pod_metrics(pod: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any] | None:
    """A pod's metrics, when every container it reports has both CPU and memory (metrics-server
    drops a pod with a partial container)."""
    containers = []
    for c in stats.get("containers", []):
        usage = _usage(c)
        if usage is None:
            return None
        containers.append({"name": c["name"], "usage": usage})
    if not containers:
        return None
    first = stats["containers"][0]["cpu"]
    meta = pod["metadata"]
    return {"kind": "PodMetrics", "apiVersion": GROUP_VERSION,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": meta.get("labels", {}),
                         "creationTimestamp": _now()},
            "timestamp": first["time"], "window": first.get("window", "0s"), "containers": containers}


async def _summary(session: aiohttp.ClientSession, node: dict[str, Any]) -> dict[str, Any] | None:
    try:
        async with session.get(f"{agent_base_url(node)}/stats/summary",
                               timeout=_SCRAPE_TIMEOUT) as response:
            if response.status != 200:
                raise aiohttp.ClientError(f"status {response.status}")
            body = await response.json()
            return body if isinstance(body, dict) else None
    except (HTTPError, aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        log.info("no metrics from node %s: %s", node["metadata"]["name"], exc)
        return None


def _parse(tail: str) -> tuple[str, str | None, str | None]:
    """(resource, namespace, name) of a path below /apis/metrics.k8s.io/v1beta1/."""
    parts = [p for p in tail.split("/") if p]
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] == "pods":
        namespace, parts = parts[1], parts[2:]
    if not parts or parts[0] not in ("nodes", "pods") or len(parts) > 2 or (parts[0] == "nodes" and namespace):
        raise HTTPError(404, "NotFound", "the server could not find the requested resource")
    if parts[0] == "pods" and len(parts) == 2 and namespace is None:
        raise HTTPError(404, "NotFound", "the server could not find the requested resource")
    return parts[0], namespace, parts[1] if len(parts) == 2 else None


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {},
            "items": [{k: v for k, v in i.items() if k not in ("kind", "apiVersion")} for i in items]}


def handler(store: Store) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def dispatch(request: web.Request) -> web.Response:
        if request.method != "GET":
            raise HTTPError(405, "MethodNotAllowed", f"{request.method} is not supported on {GROUP_VERSION}")
        if request.query.get("watch") in ("1", "true"):
            raise HTTPError(405, "MethodNotAllowed", "watch is not supported on metrics")
        resource, namespace, name = _parse(request.match_info["tail"])
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), resource)
        session = request.app[SESSION_KEY]
        if resource == "nodes":
            nodes = [await store.get("nodes", "", name)] if name else (await store.list("nodes", None, labels, fields))[0]
            summaries = await asyncio.gather(*(_summary(session, n) for n in nodes))
            found = [m for n, s in zip(nodes, summaries) if s is not None and (m := node_metrics(n, s)) is not None]
            if name is not None:
                if not found:
                    raise NotFound(f'nodemetrics.metrics.k8s.io "{name}" not found', kind="nodes", name=name)
                return web.json_response(found[0])
            return web.json_response(_list("NodeMetricsList", found))
        if name is not None:
            pods = [await store.get("pods", namespace or "", name)]
        else:
            pods = (await store.list("pods", namespace, labels, fields))[0]
        node_names = sorted({p["spec"]["nodeName"] for p in pods if p.get("spec", {}).get("nodeName")})
        fetched = await asyncio.gather(*(store.get("nodes", "", n) for n in node_names), return_exceptions=True)
        reachable = [n for n in fetched if isinstance(n, dict)]  # a deleted node has no metrics
        by_uid: dict[str, dict[str, Any]] = {}
        for summary in await asyncio.gather(*(_summary(session, n) for n in reachable)):
            for entry in (summary or {}).get("pods", []):
                if isinstance(entry, dict) and isinstance(entry.get("podRef"), dict):
                    by_uid[entry["podRef"].get("uid", "")] = entry
        found = [m for p in pods if (s := by_uid.get(p["metadata"]["uid"])) is not None
                 and (m := pod_metrics(p, s)) is not None]
        if name is not None:
            if not found:
                raise NotFound(f'podmetrics.metrics.k8s.io "{namespace}/{name}" not found', kind="pods", name=name)
            return web.json_response(found[0])
        return web.json_response(_list("PodMetricsList", found))

    return dispatch

