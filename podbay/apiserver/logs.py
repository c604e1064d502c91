"""`pods/{name}/log`: proxied to the agent of the pod's node, as the
Kubernetes API server proxies it to the kubelet (`/containerLogs/...` on the
address and port the Node publishes)."""
from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import Any, AsyncIterator, Mapping

import aiohttp
from aiohttp import web

from podbay.api.errors import BadRequest, FieldError
from podbay.apiserver.params import int64_param
from podbay.apiserver.status import HTTPError, ObjectInvalid
from podbay.security.pki import ClusterPKI
from podbay.security.tls import client_context
from podbay.store.base import Store

SESSION_KEY = web.AppKey("agent_session", aiohttp.ClientSession)
_FORWARDED = ("follow", "tailLines", "previous", "timestamps", "sinceSeconds", "sinceTime", "limitBytes")
_ADDRESS_PREFERENCE = ("InternalIP", "Hostname", "ExternalIP", "InternalDNS", "ExternalDNS")


def setup(app: web.Application, pki: ClusterPKI | None) -> None:
    """The session to the agents presents `pki`'s API server client certificate, which the agents
    verify against the cluster CA. As kube-apiserver without --kubelet-certificate-authority, it
    does not verify the agents' serving certificates: a joining agent has no CA key to get one signed."""
    async def session_context(app: web.Application) -> AsyncIterator[None]:
        tls = client_context(None, pki.apiserver_client.cert.read_bytes(),
                             pki.apiserver_client.key.read_bytes(), verify=False) if pki is not None else None
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls if tls is not None else False),
                                        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app[SESSION_KEY] = session
        yield
        await session.close()

    app.cleanup_ctx.append(session_context)


def choose_container(pod: dict[str, Any], requested: str | None) -> str:
    spec = pod.get("spec", {})
    name = pod["metadata"]["name"]
    main: list[str] = [c["name"] for c in spec.get("containers", [])]
    every = main + [c["name"] for c in spec.get("initContainers", [])] + [
        c["name"] for c in spec.get("ephemeralContainers", [])
    ]
    if not requested:
        if len(main) == 1:
            return main[0]
        raise BadRequest(f"a container name must be specified for pod {name}, choose one of: [{' '.join(every)}]")
    if requested not in every:
        raise BadRequest(f"container {requested} is not valid for pod {name}")
    return requested


def agent_endpoint(node: dict[str, Any]) -> tuple[str, int]:
    """(address, port) of the node's agent from its status."""
    status = node.get("status", {})
    endpoint = status.get("daemonEndpoints", {}).get("kubeletEndpoint", {})
    port = endpoint.get("Port") or endpoint.get("port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses", [])}
    address = next((addresses[t] for t in _ADDRESS_PREFERENCE if addresses.get(t)), None)
    if not port or not address:
        name = node["metadata"]["name"]
        raise HTTPError(503, "ServiceUnavailable", f"node {name} publishes no agent address and port")
    return address, int(port)


def _host_for_url(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def agent_base_url(node: dict[str, Any]) -> str:
    """https://ADDRESS:PORT of the node's agent."""
    address, port = agent_endpoint(node)
    return f"https://{_host_for_url(address)}:{port}"


async def agent_url(store: Store, namespace: str, name: str, container: str | None, path: str) -> tuple[str, str]:
    """The URL of `path` (containerLogs, exec) for the pod's container on its node's agent,
    and the node's name."""
    pod = await store.get("pods", namespace, name)
    chosen = choose_container(pod, container)
    node_name = pod.get("spec", {}).get("nodeName")
    if not node_name:
        raise BadRequest(f"pod {name} does not have a host assigned")
    return f"{await _agent_base(store, node_name)}/{path}/{namespace}/{name}/{chosen}", node_name


async def _agent_base(store: Store, node_name: str) -> str:
    address, port = agent_endpoint(await store.get("nodes", "", node_name))
    return f"https://{_host_for_url(address)}:{port}"


async def agent_pod_url(store: Store, namespace: str, name: str, path: str) -> tuple[str, str, str]:
    """The URL of `path` (portForward) for the pod on its node's agent, the node's name and the pod's uid."""
    pod = await store.get("pods", namespace, name)
    node_name = pod.get("spec", {}).get("nodeName")
    if not node_name:
        raise BadRequest(f"pod {name} does not have a host assigned")
    return f"{await _agent_base(store, node_name)}/{path}/{namespace}/{name}", node_name, pod["metadata"].get("uid", "")


def unreachable(node_name: str, exc: Exception) -> HTTPError:
    return HTTPError(503, "ServiceUnavailable", f"the agent of node {node_name} cannot be reached: {exc}")


def log_params(query: Mapping[str, str], name: str) -> dict[str, str]:
    """The PodLogOptions forwarded to the agent, decoded (400) and validated (422) first,
    as kube-apiserver does before it looks the pod up."""
    tail, since, limit = (int64_param(query, k) for k in ("tailLines", "sinceSeconds", "limitBytes"))
    since_time = query.get("sinceTime")
    if since_time:
        try:
            datetime.fromisoformat(since_time)
        except ValueError:
            raise BadRequest(f'invalid value for sinceTime: "{since_time[:64]}": must be an RFC 3339 time') from None
    errors: list[FieldError] = []
    if tail is not None and tail < 0:
        errors.append(FieldError("tailLines", tail, "Invalid value: must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        errors.append(FieldError("limitBytes", limit, "Invalid value: must be greater than 0"))
    if since is not None and since_time:
        errors.append(FieldError("", None, "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif since is not None and since < 1:
        errors.append(FieldError("sinceSeconds", since, "Invalid value: must be greater than 0"))
    if errors:
        raise ObjectInvalid("PodLogOptions", name, errors)
    return {k: query[k] for k in _FORWARDED if k in query}


async def proxy_log(request: web.Request, store: Store, namespace: str, name: str) -> web.StreamResponse:
    params = log_params(request.query, name)
    url, node_name = await agent_url(store, namespace, name, request.query.get("container"), "containerLogs")
    try:
        async with request.app[SESSION_KEY].get(url, params=params) as upstream:
            if upstream.status != 200:
                raise _upstream_error(upstream.status, await upstream.read())
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except aiohttp.ClientError as exc:
        raise unreachable(node_name, exc) from None


async def proxy_exec(request: web.Request, store: Store, namespace: str, name: str) -> web.Response:
    """POST pods/{name}/exec, run to completion on the pod's node: the agent's JSON answer
    (exitCode, base64 stdout and stderr). Streams are `podbay.apiserver.streams`."""
    url, node_name = await agent_url(store, namespace, name, request.query.get("container"), "exec")
    params = [("command", c) for c in request.query.getall("command", [])]
    if "timeout" in request.query:
        params.append(("timeout", request.query["timeout"]))
    try:
        async with request.app[SESSION_KEY].post(url, params=params) as upstream:
            raw = await upstream.read()
            if upstream.status != 200:
                raise _upstream_error(upstream.status, raw)
            return web.Response(body=raw, content_type="application/json")
    except aiohttp.ClientError as exc:
        raise unreachable(node_name, exc) from None


def _upstream_error(code: int, raw: bytes) -> Exception:
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and body.get("kind") == "Status":
            return HTTPError(int(body.get("code", code)), body.get("reason", ""), body.get("message", ""))
    except ValueError:
        pass
    reasons = {400: "BadRequest", 404: "NotFound", 403: "Forbidden"}
    return HTTPError(code, reasons.get(code, "InternalError"), raw.decode(errors="replace").strip())
