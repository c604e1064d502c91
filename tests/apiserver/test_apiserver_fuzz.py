"""A request fuzzer against a live embedded server: odd paths, the real query parameters
with junk values, odd Content-Type and Accept, and bodies from random JSON to deep
nesting, large strings and junk bytes, for every method. No answer may be a 5xx (but
the documented ones), the server keeps answering /healthz, and its memory stays bounded.

Deterministic (derandomize): a failure prints the example that caused it, and the same
example is generated again on the next run.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import socket
import string
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podbay.apiserver.embedded import serve_embedded

POD = {"metadata": {"name": "fz"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
FZ = "/api/v1/namespaces/default/pods/fz"
# Memory a few hundred requests may add (caches, allocator arenas); a leak of request
# bodies (up to 8 MiB each) would exceed it.
RSS_GROWTH_LIMIT_KIB = 256 * 1024


@dataclass
class Live:
    socket_path: Path
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event
    thread: threading.Thread


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The embedded server on its own event loop in a thread: the fuzzer talks to it
    with a blocking client, as Hypothesis' tests are synchronous."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: list[Live] = []

    async def run() -> None:
        async with serve_embedded(root, host=None) as server:
            assert server.socket_path is not None
            stop = asyncio.Event()
            box.append(Live(server.socket_path, loop, stop, thread))
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(60), "the embedded server did not start"
    yield box[0]
    loop.call_soon_threadsafe(box[0].stop.set)
    thread.join(60)
    loop.close()


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None

    def __repr__(self) -> str:
        body = None if self.body is None else self.body[:300]
        return f"Request({self.method} {self.target[:300]} headers={self.headers} body={body!r} ({len(self.body or b'')} bytes))"


@dataclass
class Response:
    status: int
    body: bytes


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over the server's unix socket: the API itself, not the TCP listener's transport."""

    def __init__(self, socket_path: Path) -> None:
        super().__init__("localhost", timeout=60)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(str(self.socket_path))
        self.sock = sock


def send(socket_path: Path, request: Request) -> Response:
    """Status and, for a 5xx, the body. Other bodies are left unread: a watch never ends."""
    conn = UnixHTTPConnection(socket_path)
    try:
        conn.putrequest(request.method, request.target, skip_host=False, skip_accept_encoding=True)
        for name, value in request.headers:
            conn.putheader(name, value)
        if request.body is not None:
            conn.putheader("Content-Length", str(len(request.body)))
        try:
            conn.endheaders(request.body)
        except (BrokenPipeError, ConnectionResetError):
            # The server refused the request from its headers (a 400 or 413) and stopped
            # reading the body: its answer is still there to read.
            pass
        response = conn.getresponse()
        return Response(response.status, response.read() if response.status >= 500 else b"")
    finally:
        conn.close()


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


# -- strategies ----------------------------------------------------------------

NAMES = ["pods", "fz", "status", "log", "exec", "binding", "nodes", "namespaces", "default", "kube-system",
         "events", "configmaps", "secrets", "api", "v1", "..", ".", "%00", "%2F", "%2e%2e", "", "x" * 300,
         "UPPER", "a.b", "-", "%ff", "%", "namespaces%2Fdefault"]
PREFIXES = ["/api/v1", "/api/v1/namespaces/default", "/api/v1/namespaces/default/pods", FZ, "/api", "/apis",
            "/", "/healthz", "/version", "/api/v1/namespaces", "/apis/apps/v1", "/openapi/v2", "//api/v1",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases"]
PARAMS = ["watch", "resourceVersion", "resourceVersionMatch", "timeoutSeconds", "limit", "continue",
          "labelSelector", "fieldSelector", "allowWatchBookmarks", "sendInitialEvents", "gracePeriodSeconds",
          "propagationPolicy", "dryRun", "fieldManager", "fieldValidation", "tailLines", "sinceSeconds",
          "sinceTime", "limitBytes", "container", "follow", "previous", "timestamps", "includeObject",
          "command", "stdin", "stdout", "stderr", "tty", "pretty"]
JUNK_VALUES = ["", "0", "1", "-1", "true", "false", "abc", "99999999999999999999999", str(2**63), str(2**64),
               "1e3", " 1", "1_0", "a=b", "a in (", "!", "a,b", "metadata.name=fz", "spec.nodeName!=",
               "Exact", "NotOlderThan", "2024-01-01T00:00:00Z", "x" * 2000, "\u00e9", "%", "c"]
CONTENT_TYPES = ["application/json", "application/merge-patch+json", "application/strategic-merge-patch+json",
                 "application/json-patch+json", "application/apply-patch+yaml", "application/yaml",
                 "application/vnd.kubernetes.protobuf", "text/plain", "", ";", "application/json; charset=utf-16",
                 "multipart/form-data; boundary=x", "*/*"]
ACCEPTS = ["application/json", "*/*", "", "application/json;as=Table;g=meta.k8s.io;v=v1",
           "application/json;as=Table;v=v1;g=meta.k8s.io, application/json", "application/vnd.kubernetes.protobuf",
           "text/html", ";;;", "application/json;q=abc", "application/*;as=Table"]
POD_PATHS: list[tuple[Any, ...]] = [
    ("metadata",), ("metadata", "name"), ("metadata", "namespace"), ("metadata", "labels"),
    ("metadata", "annotations"), ("metadata", "uid"), ("metadata", "resourceVersion"), ("metadata", "finalizers"),
    ("metadata", "generateName"), ("metadata", "ownerReferences"), ("spec",), ("spec", "containers"),
    ("spec", "containers", 0), ("spec", "containers", 0, "image"), ("spec", "containers", 0, "ports"),
    ("spec", "containers", 0, "resources"), ("spec", "nodeName"), ("spec", "tolerations"), ("status",),
    ("kind",), ("apiVersion",), ("target",), ("target", "name"), ("gracePeriodSeconds",), ("preconditions",),
    ("data",), ("spec", "terminationGracePeriodSeconds"), ("$patch",), ("metadata", "$patch"),
]

segment = st.one_of(
    st.sampled_from(NAMES),
    st.text(alphabet=string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@", max_size=20),
    st.text(max_size=10).map(lambda t: quote(t, safe="")),
)
# Most requests reach a real handler; the rest probe the path parser.
REAL_PATHS = [FZ, FZ + "/status", FZ + "/binding", FZ + "/log", FZ + "/exec", "/api/v1/namespaces/default/pods",
              "/api/v1/pods", "/api/v1/namespaces", "/api/v1/namespaces/default", "/api/v1/nodes",
              "/api/v1/nodes/n1", "/api/v1/namespaces/default/configmaps", "/api/v1/namespaces/default/events",
              "/api/v1/namespaces/default/secrets/s", "/api/v1/namespaces/kube-system/pods/fz"]
path = st.one_of(
    st.sampled_from(REAL_PATHS),
    st.sampled_from(REAL_PATHS),
    st.builds(lambda prefix, rest: prefix.rstrip("/") + "".join("/" + s for s in rest),
              st.sampled_from(PREFIXES), st.lists(segment, max_size=4)),
)
query = st.lists(st.tuples(st.sampled_from(PARAMS), st.one_of(st.sampled_from(JUNK_VALUES), st.text(max_size=20))),
                 max_size=5).map(lambda pairs: urlencode(pairs))
header_value = st.text(alphabet=string.printable.strip() + " ", max_size=60).map(str.strip)
headers = st.builds(
    lambda content_type, more: [("Content-Type", content_type)] + more,
    st.one_of(st.sampled_from(CONTENT_TYPES[:4]), st.sampled_from(CONTENT_TYPES), header_value),
    st.lists(st.one_of(
        st.tuples(st.just("Content-Type"), st.sampled_from(CONTENT_TYPES)),
        st.tuples(st.just("Accept"), st.one_of(st.sampled_from(ACCEPTS), header_value)),
        st.tuples(st.sampled_from(["Authorization", "Upgrade", "Connection", "Sec-WebSocket-Protocol",
                                   "Content-Encoding", "X-Junk"]), header_value),
    ), max_size=3),
)

json_value = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _with(obj: Any, where: tuple[Any, ...], value: Any) -> Any:
    """`obj` (a copy) with `value` at `where`, or None deleting it."""
    obj = json.loads(json.dumps(obj))
    node = obj
    for key in where[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[where[-1]] = value
    return obj


mutated_pod = st.builds(_with, st.just(POD), st.sampled_from(POD_PATHS), json_value)
json_patch_ops = st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "junk"]),
     "path": st.one_of(st.sampled_from(["/metadata", "/metadata/name", "/metadata/labels/a", "/spec/containers/0",
                                        "/spec/containers/-", "/spec/containers/-1", "/status", "", "/", "x"]),
                       json_value)},
    optional={"value": json_value, "from": st.sampled_from(["/metadata", "/spec", "", "/nope", "/spec/containers/9"])},
), max_size=5)


def _deep(depth: int, objects: bool) -> bytes:
    return (b'{"a":' * depth + b"1" + b"}" * depth) if objects else (b"[" * depth + b"]" * depth)


merge_patch = st.fixed_dictionaries(
    {"metadata": st.fixed_dictionaries({}, optional={k: json_value for k in (
        "name", "namespace", "uid", "labels", "resourceVersion", "finalizers", "$patch")})},
    optional={"spec": json_value, "status": json_value, "$patch": json_value},
)
body = st.one_of(
    st.none(),
    json_value.map(lambda v: json.dumps(v).encode()),
    mutated_pod.map(lambda v: json.dumps(v).encode()),
    mutated_pod.map(lambda v: json.dumps(v).encode()),
    merge_patch.map(lambda v: json.dumps(v).encode()),
    json_patch_ops.map(lambda v: json.dumps(v).encode()),
    st.builds(_deep, st.integers(min_value=50, max_value=20_000), st.booleans()),
    st.integers(min_value=0, max_value=1_000_000).map(
        lambda n: json.dumps({"metadata": {"name": "fz", "labels": {"a": "x" * n}}}).encode()),
    st.binary(max_size=512),
    st.just(b'{"metadata":{"name":"\xff\xfe"}}'),
)
request = st.builds(
    lambda method, target, q, hs, b: Request(method, target + ("?" + q if q else ""), hs, b),
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND"]),
    path, query, headers, body,
)


def documented_5xx(req: Request, response: Response) -> bool:
    """503 ServiceUnavailable from pods/log and pods/exec when the pod's node publishes no
    agent address or its agent cannot be reached (docs/security.md, Bounded input)."""
    if response.status != 503:
        return False
    reason = json.loads(response.body).get("reason")
    return reason == "ServiceUnavailable" and ("/log" in req.target or "/exec" in req.target)


def test_no_request_makes_the_server_fail(live: Live) -> None:
    def ensure_pod() -> None:
        if send(live.socket_path, Request("GET", FZ)).status == 404:
            created = send(live.socket_path, Request("POST", "/api/v1/namespaces/default/pods",
                                              [("Content-Type", "application/json")], json.dumps(POD).encode()))
            assert created.status in (201, 409)

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(request)
    def one(req: Request) -> None:
        ensure_pod()
        response = send(live.socket_path, req)
        assert response.status < 500 or documented_5xx(req, response), (
            f"{req!r} answered {response.status}: {response.body[:500]!r}")
        assert send(live.socket_path, Request("GET", "/healthz")).status == 200, f"/healthz failed after {req!r}"

    ensure_pod()
    before = rss_kib()
    one()
    growth = rss_kib() - before
    assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth} KiB over the fuzzing run"
