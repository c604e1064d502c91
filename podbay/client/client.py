"""The async API client every loop and the CLI use: typed with podbay.api
models, errors raised as podbay.api.errors exceptions."""
from __future__ import annotations

import base64
import builtins
import contextlib
import hmac
import json
import os
import ssl
from pathlib import Path
from typing import Any, AsyncIterator, Sequence, TypeVar

import aiohttp

from podbay.api import Binding, Pod, jsoncodec
from podbay.api.resourcenames import RESOURCE_NAMES, Resource
from podbay.api.remotecommand import CLIENT_PROTOCOLS
from podbay.client.codec import decode, encode
from podbay.client.errors import error_from_response as _error
from podbay.client.reflector import Reflector
from podbay.client.rest import split_servers
from podbay.client.streams import ExecStream
from podbay.client.transport import Transport
from podbay.security import kubeconfig
from podbay.security.pki import ca_hash, parse_join_token
from podbay.security.tls import client_context

T = TypeVar("T")

DEFAULT_SERVER = "unix:///run/podbay/api.sock"
# kind -> (resource, namespaced)
_RESOURCES: dict[str, Resource] = {r.kind: r for r in RESOURCE_NAMES}
PATCH_TYPES = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}
_MAX_CA_BYTES = 1 << 20
# A plain request whose server sends nothing for this long counts as a server that stopped answering.
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)


def _resource(kind: type[Any]) -> Resource:
    try:
        return _RESOURCES[kind.__name__]
    except KeyError:
        raise TypeError(f"podbay serves no resource for {kind.__name__}") from None


class Client:
    def __init__(self, base_url: str | Sequence[str], unix_socket: str | None = None, token: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        """`base_url`: one server or several serving the same cluster (API servers on one etcd):
        a request that finds one not answering goes to the next. `tls`: how an https server is
        verified and what certificate is presented (default: the system's CAs, no client certificate)."""
        self.transport = Transport(base_url, unix_socket, token, tls)

    @classmethod
    def connect(cls, server: str | None = None, token: str | None = None) -> "Client":
        """`server`: "unix:///path/api.sock" or "http(s)://host:port";
        defaults to $PODBAY_SERVER, then the default socket. The token defaults
        to $PODBAY_TOKEN."""
        server = server or os.environ.get("PODBAY_SERVER") or DEFAULT_SERVER
        token = token or os.environ.get("PODBAY_TOKEN") or None
        servers = split_servers(server)
        if len(servers) > 1:
            if any(not s.startswith(("http://", "https://")) for s in servers):
                raise ValueError(f"{server}: only http(s) URLs can be listed together, not a unix socket")
            return cls(servers, token=token)
        if server.startswith("unix://"):
            return cls("http://localhost", unix_socket=server[len("unix://"):], token=token)
        if server.startswith("/"):
            return cls("http://localhost", unix_socket=server, token=token)
        return cls(server, token=token)

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None,
                        server: str | Sequence[str] | None = None) -> "Client":
        """The server and credentials of a kubeconfig's context (default: its current one);
        `server` (one URL or several) overrides the kubeconfig's server."""
        creds = kubeconfig.load(Path(path), context)
        tls = client_context(creds.ca, creds.cert, creds.key)
        return cls(server or creds.server, token=creds.token, tls=tls)

    @classmethod
    async def join(cls, server: str | Sequence[str], join_token: str) -> tuple["Client", bytes]:
        """A client of `server` (one URL or several) for a node joining it with `join_token`
        (K10<CA hash>::<secret>), and the cluster CA. The CA is fetched from the anonymous /cacerts
        of the first server that answers and trusted only if its hash is the one the token carries:
        from then on every server is verified against it."""
        digest, secret = parse_join_token(join_token)
        probe = cls(server, tls=client_context(None, verify=False))
        try:
            ca = await probe.cluster_ca()
        finally:
            await probe.close()
        if not hmac.compare_digest(ca_hash(ca), digest):
            raise ValueError(f"the CA {probe.base_url} serves does not match the hash in the join token: "
                             "refusing a server that may not be the cluster's")
        return cls(server, token=secret, tls=client_context(ca)), ca

    # -- plumbing ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The server requests go to now: the last one that answered."""
        return self.transport.base_url

    async def cluster_ca(self) -> bytes:
        """The cluster CA (PEM) the server hands to anyone at /cacerts."""
        async def fetch(url: str) -> bytes:
            async with self.transport.http().get(url + "/cacerts", timeout=_REQUEST_TIMEOUT) as resp:
                raw = await resp.content.read(_MAX_CA_BYTES)
                if resp.status != 200:
                    raise _error(resp.status, raw)
                return raw
        return await self.transport.failover("GET", fetch)

    @staticmethod
    def path(kind: type[Any], namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        return _resource(kind).path(namespace, name, subresource)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call; the decoded JSON answer, or the error it carries raised."""
        data = jsoncodec.encode(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}

        async def send(url: str) -> bytes:
            async with self.transport.round_trip(method, url, path, data=data, params=params, headers=headers,
                                                 timeout=_REQUEST_TIMEOUT) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw)
                return raw
        raw = await self.transport.failover(method, send)
        return jsoncodec.decode(raw) if raw else None

    # -- typed verbs ---------------------------------------------------------------

    async def get(self, kind: type[T], name: str, namespace: str | None = None) -> T:
        ns = self._namespace(kind, namespace)
        return decode(kind, await self.request("GET", self.path(kind, ns, name)))

    async def list(
        self,
        kind: type[T],
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[T], str]:
        """All namespaces when `namespace` is None."""
        params = _selectors(label_selector, field_selector)
        body = await self.request("GET", self.path(kind, namespace), params=params)
        items = [decode(kind, item) for item in body.get("items", [])]
        return items, body.get("metadata", {}).get("resourceVersion", "")

    async def create(self, obj: T) -> T:
        kind = type(obj)
        ns = self._namespace(kind, obj.metadata.namespace)  # type: ignore[attr-defined]
        body = await self.request("POST", self.path(kind, ns), encode(obj))
        return decode(kind, body)

    async def update(self, obj: T) -> T:
        """PUT; a set metadata.resourceVersion is the precondition (Conflict)."""
        return await self._put(obj, None)

    async def update_status(self, obj: T) -> T:
        return await self._put(obj, "status")

    async def _put(self, obj: T, subresource: str | None) -> T:
        kind = type(obj)
        meta = obj.metadata  # type: ignore[attr-defined]
        path = self.path(kind, self._namespace(kind, meta.namespace), meta.name, subresource)
        return decode(kind, await self.request("PUT", path, encode(obj)))

    async def patch(
        self,
        kind: type[T],
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: str = "strategic",
        subresource: str | None = None,
    ) -> T:
        """`patch_type`: "strategic", "merge" or "json" (RFC 6902 operations)."""
        path = self.path(kind, self._namespace(kind, namespace), name, subresource)
        body = await self.request("PATCH", path, patch, content_type=PATCH_TYPES[patch_type])
        return decode(kind, body)

    async def delete(
        self,
        kind: type[T],
        name: str,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        propagation_policy: str | None = None,
    ) -> T | None:
        """The object as the server last stored it (a pod being deleted
        gracefully, or an object its finalizers keep, carries deletionTimestamp), or None when
        the server answers with a Status. `propagation_policy`: "Background", "Foreground" or
        "Orphan" (what becomes of the objects it owns)."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        body = await self.request("DELETE", self.path(kind, self._namespace(kind, namespace), name), options)
        if not body or body.get("kind") == "Status":
            return None
        return decode(kind, body)

    async def bind(self, binding: Binding) -> None:
        meta = binding.metadata
        path = self.path(Pod, meta.namespace or "default", meta.name, "binding")
        await self.request("POST", path, encode(binding, kind="Binding"))

    async def exec(self, name: str, namespace: str | None, command: builtins.list[str], container: str | None = None,
                   timeout: float | None = None) -> tuple[int, bytes, bytes]:
        """Runs a command in a pod's container to completion: (exit code, stdout, stderr)."""
        params = [("command", c) for c in command]
        if container:
            params.append(("container", container))
        if timeout:
            params.append(("timeout", str(timeout)))
        path = self.path(Pod, namespace or "default", name, "exec")

        async def run(url: str) -> bytes:
            async with self.transport.http("POST").post(url + path, params=params) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw)
                return raw
        body = json.loads(await self.transport.failover("POST", run))
        return int(body["exitCode"]), base64.b64decode(body["stdout"]), base64.b64decode(body["stderr"])

    @contextlib.asynccontextmanager
    async def exec_stream(self, name: str, namespace: str | None, command: builtins.list[str], container: str | None = None,
                          *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                          tty: bool = False) -> AsyncIterator[ExecStream]:
        """An interactive exec (pods/{name}/exec over a WebSocket); closed when the block ends,
        which ends the command if it still runs."""
        params = [("command", c) for c in command] + [
            (k, str(v).lower()) for k, v in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr), ("tty", tty))]
        if container:
            params.append(("container", container))
        path = self.path(Pod, namespace or "default", name, "exec")
        try:
            ws = await self.transport.failover("POST", lambda base: self.transport.http("POST").ws_connect(
                base + path, params=params, protocols=CLIENT_PROTOCOLS, max_msg_size=0))
        except aiohttp.WSServerHandshakeError:
            # The refusal's Status is not kept by the handshake; the same GET without an
            # upgrade gets it (the server checks the target first).
            async with self.transport.http().get(self.base_url + path, params=params) as resp:
                raise _error(resp.status, await resp.read()) from None
        stream = ExecStream(ws)
        try:
            yield stream
        finally:
            await stream.close()

    async def logs(
        self,
        name: str,
        namespace: str | None = None,
        container: str | None = None,
        follow: bool = False,
        tail_lines: int | None = None,
        previous: bool = False,
        timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        """A pod's log bytes as the node's agent serves them (`pods/{name}/log`)."""
        params = {"follow": str(follow).lower(), "previous": str(previous).lower(),
                  "timestamps": str(timestamps).lower()}
        if container:
            params["container"] = container
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        path = self.path(Pod, namespace or "default", name, "log")
        # Only opening the stream fails over: a log cut off midway cannot be resumed where it broke.
        resp = await self.transport.failover("GET", lambda base: self.transport.http().get(base + path, params=params))
        async with resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.read())
            async for chunk in resp.content.iter_any():
                yield chunk

    async def watch(
        self,
        kind: type[T],
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncIterator[tuple[str, T]]:
        """("ADDED" | "MODIFIED" | "DELETED", object), forever.

        As client-go's reflector: without `resource_version` (or with "0") it lists first and yields
        the current objects as ADDED, then watches from the list's resourceVersion. When the stream
        ends or its server stops answering it resumes from the last resourceVersion it delivered, on
        the next server when there are several, so no event is missed or repeated; when that
        resourceVersion is too old (410) it lists again and yields the difference from what it had
        delivered, as an informer's relist does."""
        params = _selectors(label_selector, field_selector)
        reflector = Reflector(self.transport, kind, self.path(kind, namespace), params,
                              lambda: self.list(kind, namespace, label_selector, field_selector))
        async with contextlib.aclosing(reflector.events(resource_version)) as events:
            async for event in events:
                yield event

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    def _namespace(kind: type[Any], namespace: str | None) -> str | None:
        return (namespace or "default") if _resource(kind).namespaced else None


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params

