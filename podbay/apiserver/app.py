"""The Kubernetes-shaped HTTP API over a Store.

Framework: aiohttp. It is already podbay's dependency and is one package for
both the server and `podbay.client`; it serves unix sockets and TCP, streams
chunked responses (watch, follow logs) and speaks WebSocket, which exec over
`v5.channel.k8s.io` will need. An ASGI stack would add a server, a framework
and a second HTTP client for the same job.

Paths are Kubernetes' core/v1 (`/api/v1/namespaces/{ns}/pods/{name}/status`
...). Requests under /api/v1 go through one dispatcher that parses the path
the way the Kubernetes request-info resolver does, so a namespace named
like a subresource cannot be mistaken for one.

Responses are JSON; a GET that asks for `application/json;as=Table;g=meta.k8s.io;v=v1`
(kubectl's server-side printing) gets a Table (`podbay.apiserver.tables`). PATCH dispatches on the
request's Content-Type in `podbay.apiserver.patch`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, AsyncIterator

from aiohttp import web

from podbay.api import remotecommand
from podbay.api.errors import BadRequest, Gone
from podbay.apiserver import discovery, logs, streams, tables
from podbay.apiserver.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
)
from podbay.apiserver.openapi import setup as setup_openapi
from podbay.apiserver.registry import API_GROUPS, RESOURCES, DeleteOptions, Registry, ResourceInfo
from podbay.apiserver.status import HTTPError, error_status, success_body
from podbay.store.base import Store
from podbay.security import authn
from podbay.security.pki import ClusterPKI, server_context
from podbay.store.selectors import parse_field_selector, parse_label_selector

STORE_KEY = web.AppKey("store", Store)  # type: ignore[type-abstract]
REGISTRY_KEY = web.AppKey("registry", Registry)
SHUTDOWN_KEY = web.AppKey("shutdown", asyncio.Event)

JSON = "application/json"
_PATCH_TYPES = (MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH)


def negotiate(request: web.Request) -> str:
    """The response media type for `Accept`: JSON (Tables are chosen by `_as_table`)."""
    accept = request.headers.get("Accept", "")
    if not accept.strip():
        return JSON
    for media, params in tables.media_ranges(accept):
        if "as" in params:
            continue  # a Table is answered by the list and get handlers (tables.wants_table)
        if media in (JSON, "application/*", "*/*"):
            return JSON
    raise HTTPError(406, "NotAcceptable", f"only the following media types are accepted: {JSON}")


def _json_response(body: Any, status: int = 200, media_type: str = JSON) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(), status=status, headers={"Content-Type": media_type}
    )


def _as_table(request: web.Request) -> bool:
    return request.method == "GET" and tables.wants_table(request.headers.get("Accept", ""))


def _table_response(request: web.Request, target: "_Target", objects: list[dict[str, Any]], rv: str) -> web.Response:
    include = request.query.get("includeObject", "Metadata")
    return _json_response(tables.table(target.info.model, objects, rv, include), media_type=tables.TABLE)


def _error_response(exc: BaseException) -> web.Response:
    status = error_status(exc)
    return _json_response(status, status["code"])


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 404:
            return _error_response(HTTPError(404, "NotFound", "the server could not find the requested resource"))
        if exc.status == 405:
            return _error_response(HTTPError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"))
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure leaves as a Status body
        if getattr(exc, "code", None) is None:
            request.app.logger.exception("internal error on %s %s", request.method, request.path)
        return _error_response(exc)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the body of the request could not be decoded as JSON: {exc}") from None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "t", "yes")


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f'invalid value for {name}: "{value}"') from None


def _strip_for_list(obj: dict[str, Any]) -> dict[str, Any]:
    # List items carry no kind/apiVersion in Kubernetes' JSON.
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


class _Target:
    """A parsed /api/v1 (or /apis/{group}/{version}) path."""

    def __init__(self, tail: str, resources: dict[str, ResourceInfo] = RESOURCES) -> None:
        parts = [p for p in tail.split("/") if p]
        self.namespace: str | None = None
        if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] in resources and resources[parts[2]].namespaced:
            self.namespace = parts[1]
            parts = parts[2:]
        if not parts or parts[0] not in resources or len(parts) > 3:
            raise HTTPError(404, "NotFound", "the server could not find the requested resource")
        self.resource = parts[0]
        self.info = resources[self.resource]
        self.name: str | None = parts[1] if len(parts) > 1 else None
        self.subresource: str | None = parts[2] if len(parts) > 2 else None
        if self.info.namespaced and self.name is not None and self.namespace is None:
            raise HTTPError(404, "NotFound", "the server could not find the requested resource")
        if self.subresource is not None and self.subresource not in self.info.subresources:
            raise HTTPError(404, "NotFound", "the server could not find the requested resource")

    @property
    def store_namespace(self) -> str:
        return self.namespace or ""


def _group_resources(request: web.Request) -> dict[str, ResourceInfo]:
    """The resources of /apis/{group}/{version}, or the core ones under /api/v1."""
    group = request.match_info.get("group")
    if group is None:
        return RESOURCES
    resources = API_GROUPS.get(group, {}).get(request.match_info["version"])
    if resources is None:
        raise HTTPError(404, "NotFound", "the server could not find the requested resource")
    return resources


async def _dispatch(request: web.Request) -> web.StreamResponse:
    target = _Target(request.match_info["tail"], _group_resources(request))
    registry = request.app[REGISTRY_KEY]
    method = request.method
    if method != "GET" or not _flag(request, "watch"):
        negotiate(request)
    if method != "GET" and "dryRun" in request.query:
        # Writes are not dry-run yet: refusing beats `kubectl diff` changing the object it diffs.
        raise HTTPError(400, "BadRequest", "dryRun is not supported")
    if target.name is None:
        if method == "GET":
            if _flag(request, "watch"):
                return await _watch(request, target)
            return _list(request, target)
        if method == "POST":
            namespace = target.namespace if target.info.namespaced else ""
            if target.info.namespaced and namespace is None:
                raise HTTPError(405, "MethodNotAllowed", "POST is not supported on all-namespaces lists")
            created = registry.create(target.resource, namespace or "", await _body(request))
            return _json_response(created, 201)
        raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on {target.resource}")
    name, sub = target.name, target.subresource
    if sub == "log":
        if method != "GET":
            raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on pods/log")
        return await logs.proxy_log(request, request.app[STORE_KEY], target.store_namespace, name)
    if sub == "exec":
        if method == "GET":
            return await streams.proxy_exec_stream(request, request.app[STORE_KEY], target.store_namespace, name)
        if "Upgrade" in request.headers:  # SPDY: kubectl falls back to it when a WebSocket fails
            raise HTTPError(400, "BadRequest", "unable to upgrade connection: pods/exec streams over a WebSocket "
                                               f"({', '.join(p for p in remotecommand.SUPPORTED if p)}) only")
        if method != "POST":
            raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on pods/exec")
        return await logs.proxy_exec(request, request.app[STORE_KEY], target.store_namespace, name)
    if sub == "binding":
        if method != "POST":
            raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on pods/binding")
        registry.bind(target.store_namespace, name, await _body(request))
        return _json_response(success_body(code=201), 201)
    if method == "GET":
        obj = registry.get(target.resource, target.store_namespace, name)
        if _as_table(request):
            return _table_response(request, target, [obj], obj["metadata"].get("resourceVersion", ""))
        return _json_response(obj)
    if method == "PUT":
        return _json_response(
            registry.update(target.resource, target.store_namespace, name, await _body(request), sub)
        )
    if method == "PATCH":
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == APPLY_PATCH:
            raise HTTPError(415, "UnsupportedMediaType", "server-side apply is not supported yet")
        if content_type not in _PATCH_TYPES:
            raise HTTPError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(_PATCH_TYPES)}",
            )
        patched = registry.patch(
            target.resource, target.store_namespace, name, content_type, await _body(request), sub
        )
        return _json_response(patched)
    if method == "DELETE" and sub is None:
        return _delete(request, registry, target, await _body(request))
    raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported here")


def _delete(request: web.Request, registry: Registry, target: _Target, body: Any) -> web.Response:
    options = DeleteOptions(grace_period_seconds=_int_param(request, "gracePeriodSeconds"))
    if isinstance(body, dict):
        if body.get("gracePeriodSeconds") is not None:
            options.grace_period_seconds = int(body["gracePeriodSeconds"])
        pre = body.get("preconditions") or {}
        options.precondition_uid = pre.get("uid")
        options.precondition_rv = pre.get("resourceVersion")
    assert target.name is not None
    result = registry.delete(target.resource, target.store_namespace, target.name, options)
    if target.resource in ("pods", "namespaces"):
        # These registries answer with the object (being deleted or gone).
        return _json_response(result)
    return _json_response(
        success_body({"name": target.name, "kind": target.resource, "uid": result["metadata"].get("uid")})
    )


def _list(request: web.Request, target: _Target) -> web.Response:
    store = request.app[STORE_KEY]
    items, rv = store.list(
        target.resource,
        target.namespace,
        parse_label_selector(request.query.get("labelSelector")),
        parse_field_selector(request.query.get("fieldSelector"), target.resource),
    )
    limit = _int_param(request, "limit")
    metadata: dict[str, Any] = {"resourceVersion": rv}
    if limit is not None and limit > 0 and request.query.get("continue"):
        raise HTTPError(410, "Expired", "continue tokens are not supported; list without limit")
    if _as_table(request):
        return _table_response(request, target, items, rv)
    return _json_response(
        {
            "kind": f"{target.info.kind}List",
            "apiVersion": target.info.api_version,
            "metadata": metadata,
            "items": [_strip_for_list(i) for i in items],
        }
    )


async def _watch(request: web.Request, target: _Target) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    labels = parse_label_selector(request.query.get("labelSelector"))
    fields = parse_field_selector(request.query.get("fieldSelector"), target.resource)
    timeout = _int_param(request, "timeoutSeconds")
    rv = request.query.get("resourceVersion") or ""
    response = web.StreamResponse(headers={"Content-Type": JSON})
    response.enable_chunked_encoding()
    await response.prepare(request)

    as_table = _as_table(request)
    include = request.query.get("includeObject", "Metadata")

    async def send(type_: str, obj: dict[str, Any]) -> None:
        if as_table and type_ != "ERROR":
            obj = tables.table(target.info.model, [obj], obj.get("metadata", {}).get("resourceVersion", ""), include)
        line = json.dumps({"type": type_, "object": obj}, separators=(",", ":"))
        await response.write(line.encode() + b"\n")

    async def stream() -> None:
        since = rv
        if rv in ("", "0"):
            # "Any" / "most recent": the current state as ADDED events first.
            items, since = store.list(target.resource, target.namespace, labels, fields)
            for item in items:
                await send("ADDED", item)
        events: AsyncIterator[Any] = store.watch(target.resource, target.namespace, since, labels, fields)
        try:
            async for event in events:
                await send(event.type, event.object)
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    # The stream ends at timeoutSeconds, when the server shuts down, or on error.
    streaming = asyncio.ensure_future(stream())
    stopping = asyncio.ensure_future(request.app[SHUTDOWN_KEY].wait())
    try:
        await asyncio.wait(
            {streaming, stopping},
            timeout=timeout if timeout and timeout > 0 else None,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        stopping.cancel()
        if not streaming.done():
            streaming.cancel()
            await asyncio.wait({streaming})
    if streaming.cancelled():
        pass
    elif isinstance(streaming.exception(), (Gone, BadRequest)):
        await send("ERROR", error_status(streaming.exception()))  # type: ignore[arg-type]
    elif isinstance(streaming.exception(), ConnectionResetError):
        return response
    elif streaming.exception() is not None:
        raise streaming.exception()  # type: ignore[misc]
    with contextlib.suppress(ConnectionResetError):  # the client went away first
        await response.write_eof()
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _api(request: web.Request) -> web.Response:
    negotiate(request)
    host = request.host or "127.0.0.1"
    return _json_response(discovery.api_versions(host))


async def _api_v1(request: web.Request) -> web.Response:
    negotiate(request)
    return _json_response(discovery.core_v1_resources())


async def _apis(request: web.Request) -> web.Response:
    negotiate(request)
    return _json_response(discovery.api_group_list())


async def _api_group(request: web.Request) -> web.Response:
    negotiate(request)
    group = discovery.api_group(request.match_info["group"])
    if group is None:
        raise HTTPError(404, "NotFound", "the server could not find the requested resource")
    return _json_response(group)


async def _api_group_version(request: web.Request) -> web.Response:
    negotiate(request)
    resources = _group_resources(request)
    group_version = f"{request.match_info['group']}/{request.match_info['version']}"
    return _json_response(discovery.resource_list(group_version, resources))


async def _version(request: web.Request) -> web.Response:
    return _json_response(discovery.version_info())


# Anonymous as kube-apiserver's system:public-info-viewer allows (health and version), and the CA
# bundle a joining node checks against the hash its join token carries (k3s's /cacerts).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version", "/version/", "/cacerts"})


def make_app(store: Store, *, token: str | None = None, pki: ClusterPKI | None = None) -> web.Application:
    """The API as an aiohttp application; creates the system namespaces. TCP peers need the
    bearer `token` or a client certificate TLS verified; the agents are reached with `pki`'s
    API server client certificate."""
    app = web.Application(middlewares=[authn.middleware(token, PUBLIC_PATHS), _errors],
                          client_max_size=8 * 1024 * 1024)
    registry = Registry(store)
    registry.ensure_system_namespaces()
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry
    app[SHUTDOWN_KEY] = asyncio.Event()

    async def end_watches(app: web.Application) -> None:
        app[SHUTDOWN_KEY].set()

    app.on_shutdown.append(end_watches)
    for path in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(path, _healthz)
    app.router.add_get("/api", _api)
    app.router.add_get("/api/", _api)
    app.router.add_get("/api/v1", _api_v1)
    app.router.add_get("/api/v1/", _api_v1)
    app.router.add_get("/apis", _apis)
    app.router.add_get("/apis/", _apis)
    app.router.add_get("/version", _version)
    app.router.add_get("/version/", _version)
    app.router.add_route("*", "/api/v1/{tail:.+}", _dispatch)
    app.router.add_get("/apis/{group}", _api_group)
    app.router.add_get("/apis/{group}/", _api_group)
    app.router.add_get("/apis/{group}/{version}", _api_group_version)
    app.router.add_get("/apis/{group}/{version}/", _api_group_version)
    app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", _dispatch)
    if pki is not None:
        ca = pki.ca_pem()

        async def cacerts(_: web.Request) -> web.Response:
            return web.Response(body=ca, content_type="text/plain")

        app.router.add_get("/cacerts", cacerts)
    logs.setup(app, pki)
    setup_openapi(app)
    return app


async def serve(
    store: Store,
    *,
    unix_socket: str | Path | None = None,
    host: str | None = None,
    port: int = 0,
    token: str | None = None,
    pki: ClusterPKI | None = None,
) -> web.AppRunner:
    """Starts the API; returns the runner (call `cleanup()` to stop). The TCP listener on
    host:port speaks HTTPS with `pki`'s serving certificate and takes the bearer `token`
    or a client certificate signed by its CA; without both it refuses to start."""
    if unix_socket is None and host is None:
        raise ValueError("serve needs a unix socket, a host, or both")
    if host is not None and (pki is None or not token):
        raise ValueError(f"listening on {host} requires the cluster PKI and a bearer token")
    runner = web.AppRunner(make_app(store, token=token, pki=pki), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        if unix_socket is not None:
            path = Path(unix_socket)
            path.parent.mkdir(parents=True, exist_ok=True)
            # The socket needs no credentials: its directory and mode keep everyone but root out.
            path.parent.chmod(0o700)
            if path.is_socket():
                path.unlink()
            await web.UnixSite(runner, str(path)).start()
            path.chmod(0o600)
        if host is not None and pki is not None:
            tls = server_context(pki.server, pki.ca_pem())
            await web.TCPSite(runner, host, port, ssl_context=tls).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
