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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from podbay.api import jsoncodec
from podbay.api.errors import BadRequest, FieldError
from podbay.api.kinds import API_GROUPS, COMPUTED_GROUPS, RESOURCES, ResourceInfo
from podbay.apiserver import discovery, eventsv1, fieldmanager, logs, metrics, protobody, spdystreams, streams, tables
from podbay.apiserver import bootstrap
from podbay.apiserver.gctuning import tune_gc
from podbay.apiserver.ipallocator import ServiceRanges
from podbay.apiserver.params import (
    MAX_BODY_BYTES,
    decode_json,
    decode_yaml,
    int64_param,
    json_int64,
    json_object,
    json_string,
    resource_version_param,
)
from podbay.apiserver.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
)
from podbay.apiserver.openapi import setup as setup_openapi
from podbay.apiserver.deletion import DeleteOptions
from podbay.apiserver.registry import Registry
from podbay.apiserver.status import HTTPError, ObjectInvalid, error_status, success_body
from podbay.security import authn
from podbay.security.pki import ClusterPKI, server_context
from podbay.store.base import Store
from podbay.store.selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector

STORE_KEY = web.AppKey("store", Store)
REGISTRY_KEY = web.AppKey("registry", Registry)
SHUTDOWN_KEY = web.AppKey("shutdown", asyncio.Event)

JSON = "application/json"
# Seconds the requests in flight get to finish at shutdown (watches end at once: end_watches).
SHUTDOWN_GRACE = 5.0
_PATCH_TYPES = (MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH, APPLY_PATCH)


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
        body=jsoncodec.encode(body), status=status, headers={"Content-Type": media_type}
    )


def _as_table(request: web.Request) -> bool:
    return request.method == "GET" and tables.wants_table(request.headers.get("Accept", ""))


def _include_object(request: web.Request) -> str:
    include = request.query.get("includeObject") or "Metadata"
    if include not in ("None", "Metadata", "Object"):
        raise BadRequest(f'unrecognized includeObject value: "{include[:64]}"')
    return include


def _table_response(request: web.Request, target: "_Target", objects: list[dict[str, Any]], rv: str) -> web.Response:
    return _json_response(tables.table(target.info.model, objects, rv, _include_object(request)), media_type=tables.TABLE)


def _error_response(exc: BaseException) -> web.Response:
    status = error_status(exc)
    response = _json_response(status, status["code"])
    retry = status.get("details", {}).get("retryAfterSeconds")
    if retry and status["code"] in (429, 500, 503, 504):
        # As kube-apiserver's responsewriters: clients (client-go) retry on this header.
        response.headers["Retry-After"] = str(retry)
    return response


# aiohttp's own refusals (body too large, ...) leave as Status bodies like ours.
_HTTP_REASONS = {400: "BadRequest", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType"}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 404:
            return _error_response(HTTPError(404, "NotFound", "the server could not find the requested resource"))
        if exc.status == 405:
            return _error_response(HTTPError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"))
        if exc.status in _HTTP_REASONS:
            return _error_response(HTTPError(exc.status, _HTTP_REASONS[exc.status], exc.text or exc.reason))
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure leaves as a Status body
        if getattr(exc, "code", None) is None:
            request.app.logger.exception("internal error on %s %s", request.method, request.path)
        return _error_response(exc)


async def _body(request: web.Request, info: ResourceInfo | None = None) -> Any:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "application/vnd.kubernetes.protobuf":
        # kubectl 1.32+ sends its typed clients' objects (create deployment/job) this way; of a
        # kind admission refuses, only the name is needed (for the 403).
        try:
            return protobody.decode(await request.read(), metadata_only=bool(info and info.denied))
        except protobody.Undecodable as exc:
            raise HTTPError(415, "UnsupportedMediaType", f"the body of the request could not be decoded: {exc}") from None
    if content_type == "application/cbor":
        raise HTTPError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
    return decode_json(await request.read())


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "t", "yes")


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
    resources = {**API_GROUPS, **COMPUTED_GROUPS}.get(group, {}).get(request.match_info["version"])
    if resources is None:
        raise HTTPError(404, "NotFound", "the server could not find the requested resource")
    return resources


async def _dispatch(request: web.Request) -> web.StreamResponse:
    target = _Target(request.match_info["tail"], _group_resources(request))
    registry = request.app[REGISTRY_KEY]
    method = request.method
    if method != "GET" or not _flag(request, "watch"):
        negotiate(request)
    if target.name is None:
        return await _collection(request, registry, target)
    name, sub = target.name, target.subresource
    if sub in _CONNECT_SUBRESOURCES:
        return await _connect(request, target, name, sub)
    if sub == "binding":
        if method != "POST":
            raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on pods/binding")
        await registry.bind(target.store_namespace, name, await _body(request))
        return _json_response(success_body(code=201), 201)
    if sub == "scale":
        return await _scale(request, registry, target)
    return await _object(request, registry, target, name, sub)


async def _collection(request: web.Request, registry: Registry, target: _Target) -> web.StreamResponse:
    """A collection's verbs: list, watch and create."""
    method = request.method
    if method == "GET":
        if _flag(request, "watch"):
            return await _watch(request, target)
        return await _list(request, target)
    if method == "POST":
        namespace = target.namespace if target.info.namespaced else ""
        if target.info.namespaced and namespace is None:
            raise HTTPError(405, "MethodNotAllowed", "POST is not supported on all-namespaces lists")
        options = _write_options(request, "CreateOptions")
        created = await registry.create(target.resource, namespace or "", await _body(request, target.info),
                                        options)
        return _warned(_json_response(created, 201), options)
    raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on {target.resource}")


# kube-apiserver's Connecter subresources: the request is carried through to the pod's node.
_CONNECT_SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward"})


async def _connect(request: web.Request, target: _Target, name: str, sub: str) -> web.StreamResponse:
    method, store, ns = request.method, request.app[STORE_KEY], target.store_namespace
    if sub == "log":
        if method != "GET":
            raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on pods/log")
        return await logs.proxy_log(request, store, ns, name)
    if sub == "exec":
        if method == "GET":
            return await streams.proxy_exec_stream(request, store, ns, name)
        if "Upgrade" in request.headers:  # SPDY: kubectl before 1.30, or after a failed WebSocket
            return await spdystreams.serve_exec(request, store, ns, name)
        if method != "POST":
            raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on pods/exec")
        return await logs.proxy_exec(request, store, ns, name)
    if sub == "attach":
        if method == "GET" and streams.is_websocket(request):
            return await streams.proxy_exec_stream(request, store, ns, name, "attach")
        if method not in ("GET", "POST"):
            raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on pods/attach")
        return await spdystreams.serve_exec(request, store, ns, name, "attach")
    if method not in ("GET", "POST"):
        raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported on pods/portforward")
    return await spdystreams.serve_port_forward(request, store, ns, name)


async def _object(request: web.Request, registry: Registry, target: _Target, name: str,
                  sub: str | None) -> web.StreamResponse:
    """One object's (or its status-like subresource's) verbs: get, update, patch, apply and delete."""
    method = request.method
    if method == "GET":
        obj = await registry.get(target.resource, target.store_namespace, name)
        if _as_table(request):
            return _table_response(request, target, [obj], obj["metadata"].get("resourceVersion", ""))
        return _json_response(obj)
    if method == "PUT":
        options = _write_options(request, "UpdateOptions")
        updated = await registry.update(target.resource, target.store_namespace, name, await _body(request), sub,
                                        options)
        return _warned(_json_response(updated), options)
    if method == "PATCH":
        content_type = _patch_type(request)
        options = _write_options(request, "PatchOptions", applying=content_type == APPLY_PATCH)
        if content_type == APPLY_PATCH:
            applied, is_new = await registry.apply(target.resource, target.store_namespace, name,
                                                   decode_yaml(await request.read()), sub, options)
            return _warned(_json_response(applied, 201 if is_new else 200), options)
        patched = await registry.patch(
            target.resource, target.store_namespace, name, content_type, await _body(request), sub, options
        )
        return _warned(_json_response(patched), options)
    if method == "DELETE" and sub is None:
        return await _delete(request, registry, target, await _body(request))
    raise HTTPError(405, "MethodNotAllowed", f"{method} is not supported here")


def _write_options(request: web.Request, kind: str, applying: bool = False) -> fieldmanager.WriteOptions:
    return fieldmanager.write_options(request.query, request.headers.get("User-Agent", ""), kind, applying)


def _warned(response: web.Response, options: fieldmanager.WriteOptions) -> web.Response:
    """The write's warnings as kube-apiserver sends them: one `Warning` header each (kubectl prints them)."""
    for text in options.warnings:
        response.headers.add("Warning", fieldmanager.warning_header(text))
    return response


def _patch_type(request: web.Request) -> str:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type not in _PATCH_TYPES:
        raise HTTPError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(_PATCH_TYPES)}",
        )
    return content_type


async def _scale(request: web.Request, registry: Registry, target: "_Target") -> web.Response:
    """The autoscaling/v1 Scale of a ReplicaSet, Deployment or ReplicationController."""
    assert target.name is not None
    ns = target.store_namespace
    if request.method == "GET":
        return _json_response(await registry.get_scale(target.resource, ns, target.name))
    if request.method == "PUT":
        return _json_response(await registry.update_scale(target.resource, ns, target.name, await _body(request)))
    if request.method == "PATCH":
        patch_type = _patch_type(request)
        if patch_type == APPLY_PATCH:
            raise HTTPError(415, "UnsupportedMediaType", "server-side apply of the scale subresource is not supported")
        return _json_response(
            await registry.update_scale(target.resource, ns, target.name, await _body(request), patch_type))
    raise HTTPError(405, "MethodNotAllowed", f"{request.method} is not supported on {target.resource}/scale")


def _delete_options(request: web.Request, body: Any) -> DeleteOptions:
    """The query's and the body's DeleteOptions, refused (400) where Go's decoder would refuse them."""
    options = DeleteOptions(grace_period_seconds=int64_param(request.query, "gracePeriodSeconds"),
                            dry_run=_write_options(request, "DeleteOptions").dry_run)
    if "propagationPolicy" in request.query:
        options.propagation_policy = request.query["propagationPolicy"]  # type: ignore[assignment]  # checked by the registry
    if "orphanDependents" in request.query:
        options.orphan_dependents = _flag(request, "orphanDependents")
    if body is None:
        return options
    body = json_object(body, "body", "DeleteOptions", "v1.DeleteOptions")
    dry_run = body.get("dryRun")
    if dry_run is not None:
        if not isinstance(dry_run, list) or any(v != "All" for v in dry_run):
            raise ObjectInvalid("DeleteOptions.meta.k8s.io", "", [FieldError(
                "dryRun", None, f'Unsupported value: {json.dumps(dry_run)[:64]}: supported values: "All"')])
        options.dry_run = options.dry_run or bool(dry_run)
    if body.get("gracePeriodSeconds") is not None:
        options.grace_period_seconds = json_int64(body["gracePeriodSeconds"], "gracePeriodSeconds", "DeleteOptions")
    pre = json_object(body.get("preconditions"), "preconditions", "DeleteOptions", "v1.Preconditions")
    options.precondition_uid = json_string(pre.get("uid"), "preconditions.uid", "DeleteOptions")
    options.precondition_rv = json_string(pre.get("resourceVersion"), "preconditions.resourceVersion", "DeleteOptions")
    if body.get("propagationPolicy") is not None:
        options.propagation_policy = json_string(  # type: ignore[assignment]  # checked by the registry
            body["propagationPolicy"], "propagationPolicy", "DeleteOptions")
    if body.get("orphanDependents") is not None:
        orphan = body["orphanDependents"]
        if not isinstance(orphan, bool):
            raise BadRequest("DeleteOptions in version \"v1\" cannot be handled as a DeleteOptions: json: cannot "
                             "unmarshal into Go struct field DeleteOptions.orphanDependents of type bool")
        options.orphan_dependents = orphan
    return options


async def _delete(request: web.Request, registry: Registry, target: _Target, body: Any) -> web.Response:
    options = _delete_options(request, body)
    assert target.name is not None
    result = await registry.delete(target.resource, target.store_namespace, target.name, options)
    if target.resource in ("pods", "namespaces", "services") or result["metadata"].get("deletionTimestamp"):
        # These registries answer with the object (being deleted or gone), as every registry does
        # with an object its finalizers keep (ReturnDeletedObject; the official client reads a
        # deleted Service as a Service).
        return _json_response(result)
    return _json_response(
        success_body({"name": target.name, "kind": target.resource, "uid": result["metadata"].get("uid")})
    )


@dataclass(frozen=True)
class _ListOptions:
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str
    timeout_seconds: int | None
    limit: int | None


_RV_MATCHES = ("Exact", "NotOlderThan")


def _list_options(request: web.Request, target: _Target, watch: bool) -> _ListOptions:
    """Decoded (400 on a malformed value) then validated as ValidateListOptions does (422)."""
    query = request.query
    options = _ListOptions(
        labels=parse_label_selector(query.get("labelSelector")),
        fields=parse_field_selector(query.get("fieldSelector"), target.resource),
        resource_version=resource_version_param(query),
        timeout_seconds=int64_param(query, "timeoutSeconds"),
        limit=int64_param(query, "limit"),
    )
    match = query.get("resourceVersionMatch", "")
    errors: list[FieldError] = []
    if "sendInitialEvents" in query:
        # podbay has no WatchList; kube-apiserver answers so with the feature gate off.
        why = "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled" if watch \
            else "sendInitialEvents is forbidden for list"
        errors.append(FieldError("sendInitialEvents", None, f"Forbidden: {why}"))
    if match and watch:
        errors.append(FieldError("resourceVersionMatch", None,
                                 "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
    elif match:
        if not options.resource_version:
            errors.append(FieldError("resourceVersionMatch", None,
                                     "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"))
        if query.get("continue"):
            errors.append(FieldError("resourceVersionMatch", None,
                                     "Forbidden: resourceVersionMatch is forbidden when continue is provided"))
        if match not in _RV_MATCHES:
            errors.append(FieldError("resourceVersionMatch", None,
                                     f'Unsupported value: {json.dumps(match[:64])}: supported values: "Exact", "NotOlderThan", ""'))
        elif match == "Exact" and options.resource_version == "0":
            errors.append(FieldError("resourceVersionMatch", None,
                                     'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    if errors:
        raise ObjectInvalid("ListOptions.meta.k8s.io", "", errors)
    return options


async def _list(request: web.Request, target: _Target) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    options = _list_options(request, target, watch=False)
    items, rv = await registry.list(target.resource, target.namespace, options.labels, options.fields)
    limit = options.limit
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


_Send = Callable[[str, dict[str, Any]], Awaitable[None]]


def _event_writer(request: web.Request, target: _Target, response: web.StreamResponse) -> _Send:
    """Writes one watch event line, as a Table row when the client asked for Tables."""
    as_table = _as_table(request)
    include = _include_object(request) if as_table else ""

    async def send(type_: str, obj: dict[str, Any]) -> None:
        if as_table and type_ not in ("ERROR", "BOOKMARK"):
            obj = tables.table(target.info.model, [obj], obj.get("metadata", {}).get("resourceVersion", ""), include)
        await response.write(jsoncodec.encode({"type": type_, "object": obj}) + b"\n")
    return send


async def _stream_events(request: web.Request, target: _Target, options: _ListOptions, send: _Send) -> None:
    registry = request.app[REGISTRY_KEY]
    rv, labels, fields = options.resource_version, options.labels, options.fields
    since = rv
    if rv in ("", "0"):
        # "Any" / "most recent": the current state as ADDED events first.
        items, since = await registry.list(target.resource, target.namespace, labels, fields)
        for item in items:
            await send("ADDED", item)
    events: AsyncIterator[Any] = registry.watch(target.resource, target.namespace, since, labels, fields,
                                                bookmarks=_flag(request, "allowWatchBookmarks"))
    try:
        async for event in events:
            if event.type == "BOOKMARK":
                # Kubernetes' bookmark: an object of the watched kind with only a resourceVersion.
                await send("BOOKMARK", {"kind": target.info.kind, "apiVersion": target.info.api_version,
                                        **event.object})
                continue
            await send(event.type, event.object)
    finally:
        # The ignore: every store's watch is an async generator, though Store promises an AsyncIterator.
        await events.aclose()  # type: ignore[attr-defined]


async def _watch(request: web.Request, target: _Target) -> web.StreamResponse:
    options = _list_options(request, target, watch=True)
    timeout = options.timeout_seconds
    response = web.StreamResponse(headers={"Content-Type": JSON})
    send = _event_writer(request, target, response)
    response.enable_chunked_encoding()
    await response.prepare(request)

    # The stream ends at timeoutSeconds, when the server shuts down, or on error. A negative
    # timeout ends it at once, as kube-apiserver's timer does; none (or 0) never ends it.
    streaming = asyncio.ensure_future(_stream_events(request, target, options, send))
    # Its failure is read even when this handler is cancelled first (an in-process client that
    # closes its stream), or asyncio reports it as never retrieved.
    streaming.add_done_callback(lambda t: t.cancelled() or t.exception())
    stopping = asyncio.ensure_future(request.app[SHUTDOWN_KEY].wait())
    try:
        await asyncio.wait(
            {streaming, stopping},
            timeout=None if not timeout else max(timeout, 0),
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        stopping.cancel()
        if not streaming.done():
            streaming.cancel()
            await asyncio.wait({streaming})
    failure = None if streaming.cancelled() else streaming.exception()
    if isinstance(failure, ConnectionResetError):
        return response
    if failure is not None:
        # The headers are sent: the failure travels as the stream's last event, as kube-apiserver's
        # watch ends with an ERROR event carrying the Status.
        if getattr(failure, "code", None) is None:
            request.app.logger.error("watch of %s failed", target.resource, exc_info=failure)
        with contextlib.suppress(ConnectionResetError):
            await send("ERROR", error_status(failure))
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


async def make_app(store: Store, *, token: str | None = None, pki: ClusterPKI | None = None,
                   service_ranges: ServiceRanges | None = None,
                   kubernetes_endpoint: tuple[str, int] | None = None) -> web.Application:
    """The API as an aiohttp application; creates the system namespaces and default/kubernetes
    (its endpoint: `kubernetes_endpoint`, this server's HTTPS address). TCP peers need the
    bearer `token` or a client certificate TLS verified; the agents are reached with `pki`'s
    API server client certificate."""
    app = web.Application(middlewares=[authn.middleware(token, PUBLIC_PATHS), _errors],
                          client_max_size=MAX_BODY_BYTES)
    registry = Registry(store, service_ranges=service_ranges)
    await bootstrap.ensure_system_namespaces(registry)
    await bootstrap.ensure_kubernetes_service(registry, kubernetes_endpoint)
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry
    app[SHUTDOWN_KEY] = asyncio.Event()

    async def end_watches(app: web.Application) -> None:
        app[SHUTDOWN_KEY].set()

    async def start_namespace_cache(app: web.Application) -> None:
        registry.namespaces.start()

    async def stop_namespace_cache(app: web.Application) -> None:
        await registry.namespaces.stop()

    app.on_shutdown.append(end_watches)
    app.on_startup.append(start_namespace_cache)
    app.on_cleanup.append(stop_namespace_cache)
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
    app.router.add_route("*", "/apis/metrics.k8s.io/v1beta1/{tail:.+}", metrics.handler(store))
    app.router.add_route("*", "/apis/events.k8s.io/v1/{tail:.+}", eventsv1.handler(store))
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
    service_ranges: ServiceRanges | None = None,
    kubernetes_endpoint: tuple[str, int] | None = None,
) -> web.AppRunner:
    """Starts the API; returns the runner (call `cleanup()` to stop). The TCP listener on
    host:port speaks HTTPS with `pki`'s serving certificate and takes the bearer `token`
    or a client certificate signed by its CA; without both it refuses to start."""
    if unix_socket is None and host is None:
        raise ValueError("serve needs a unix socket, a host, or both")
    if host is not None and (pki is None or not token):
        raise ValueError(f"listening on {host} requires the cluster PKI and a bearer token")
    tune_gc()
    app = await make_app(store, token=token, pki=pki, service_ranges=service_ranges,
                         kubernetes_endpoint=kubernetes_endpoint)
    # A handler ends when its client leaves (a watch or a followed log may not write again for
    # hours, so it would never notice); at shutdown the requests in flight get a few seconds, and
    # the watches and streams, which end only when their clients leave, are then cancelled.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True,
                           shutdown_timeout=SHUTDOWN_GRACE)
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
