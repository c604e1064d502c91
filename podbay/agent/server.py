"""The agent's small kubelet-like HTTP server: container logs and exec (run to completion
on POST, streamed over a WebSocket on GET), which the API server proxies for
`pods/{name}/log` and `pods/{name}/exec`, and the Summary API it reads for metrics.k8s.io. Only the API server (its client certificate)
and holders of the cluster token get in: this server runs commands in any container.
"""
from __future__ import annotations

import asyncio
import base64
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from aiohttp import web

from podbay.agent.config import ServerAuth
from podbay.agent.nodeview import NodeView
from podbay.api.stored import uid_of
from podbay.agent.podstate import ContainerRecord, RunState
from podbay.agent.runtimeview import container_record, runtime_pods
from podbay.agent.portforward import pod_network, serve_port_forward
from podbay.agent.streams import serve_exec
from podbay.runtime.types import ContainerRuntimeError
from podbay.security import authn
from podbay.security.pki import server_context

FOLLOW_POLL_SECONDS = 0.2  # log files have no change notification through the runtime


@dataclass
class LogLine:
    timestamp: str
    stream: str
    partial: bool
    content: bytes


def parse_cri_line(raw: bytes) -> LogLine | None:
    """`<RFC3339Nano> stdout|stderr F|P <content>` — the CRI log format."""
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return LogLine(parts[0].decode(), parts[1].decode(), parts[2] == b"P", content)


def render(line: LogLine, timestamps: bool) -> bytes:
    text = line.content if line.partial else line.content + b"\n"
    return (line.timestamp.encode() + b" " + text) if timestamps else text


def log_since(query: Mapping[str, str], now: datetime) -> datetime | None:
    """The oldest line's time that PodLogOptions' sinceSeconds or sinceTime lets through (the API
    server validated them); None: every line."""
    if query.get("sinceSeconds"):
        return now - timedelta(seconds=int(query["sinceSeconds"]))
    if query.get("sinceTime"):
        return _utc(datetime.fromisoformat(query["sinceTime"]))
    return None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def newer(line: LogLine, since: datetime | None) -> bool:
    """The kubelet's filter: a line at or after `since` (CRI's RFC3339Nano read to the microsecond)."""
    if since is None:
        return True
    try:
        return _utc(datetime.fromisoformat(line.timestamp)) >= since
    except ValueError:
        return True


def tail(lines: list[LogLine], n: int | None) -> list[LogLine]:
    """The last `n` whole lines (partial chunks join the line they end)."""
    if n is None:
        return lines
    out: deque[list[LogLine]] = deque(maxlen=max(n, 0))
    current: list[LogLine] = []
    for ln in lines:
        current.append(ln)
        if not ln.partial:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return [ln for group in out for ln in group] if n > 0 else []


class _Server:
    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self.runner = runner
        self.port = port

    async def close(self) -> None:
        await self.runner.cleanup()


async def _find(agent: NodeView, namespace: str, pod: str, container: str, previous: bool) -> ContainerRecord:
    for p in agent.pods(with_deleted=True):
        if p.metadata.namespace == namespace and p.metadata.name == pod:
            rt = (await runtime_pods(agent.runtime)).get(uid_of(p))
            history = rt.history(container) if rt is not None else []
            index = 1 if previous else 0
            if len(history) <= index:
                what = "previous terminated" if previous else ""
                raise web.HTTPBadRequest(text=f'{what} container "{container}" in pod "{pod}" not found')
            return history[index]
    raise web.HTTPNotFound(text=f'pod "{pod}" not found on this node')


async def _running(agent: NodeView, namespace: str, pod: str, container: str) -> ContainerRecord:
    record = await _find(agent, namespace, pod, container, False)
    if record.state is not RunState.RUNNING:
        raise web.HTTPBadRequest(text=f'container "{container}" is not running')
    return record


async def _read_lines(path: Path, follow: bool, alive: Any) -> AsyncIterator[LogLine]:
    with open(path, "rb") as f:
        buf = b""
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith(b"\n"):
                    line = parse_cri_line(buf)
                    buf = b""
                    if line is not None:
                        yield line
                continue
            if not follow or not await alive():
                return
            await asyncio.sleep(FOLLOW_POLL_SECONDS)


def make_app(agent: NodeView, auth: ServerAuth) -> web.Application:
    async def logs(request: web.Request) -> web.StreamResponse:
        ns, pod, name = request.match_info["ns"], request.match_info["pod"], request.match_info["container"]
        q = request.query
        follow = q.get("follow") in ("1", "true")
        timestamps = q.get("timestamps") in ("1", "true")
        tail_lines = int(q["tailLines"]) if q.get("tailLines") not in (None, "") else None
        since = log_since(q, datetime.now(timezone.utc))
        # limitBytes: the kubelet stops writing once that many bytes went out.
        budget = int(q["limitBytes"]) if q.get("limitBytes") else None
        record = await _find(agent, ns, pod, name, q.get("previous") in ("1", "true"))
        path = Path(await agent.runtime.container_log_path(record.id))

        async def alive() -> bool:
            status = await agent.runtime.container_status(record.id)
            return container_record(status).state is RunState.RUNNING

        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        if not path.exists():
            await resp.write_eof()
            return resp

        async def write(line: LogLine) -> bool:
            """Writes the line if it is new enough; False once limitBytes is spent."""
            nonlocal budget
            if not newer(line, since):
                return True
            data = render(line, timestamps)
            if budget is not None:
                data, budget = data[:budget], budget - len(data[:budget])
            await resp.write(data)
            return budget is None or budget > 0

        writing = True
        if tail_lines is not None:
            lines = [ln async for ln in _read_lines(path, False, alive)]
            for ln in tail(lines, tail_lines):
                if writing:
                    writing = await write(ln)
            skip = len(lines)
        else:
            skip = 0
        if writing and (tail_lines is None or follow):
            seen = 0
            async for ln in _read_lines(path, follow, alive):
                seen += 1
                if seen > skip and not await write(ln):
                    break
        await resp.write_eof()
        return resp

    async def exec_(request: web.Request) -> web.Response:
        """Runs a command to completion: ?command=a&command=b[&timeout=s] →
        {"exitCode", "stdout", "stderr"} with base64 output."""
        ns, pod, name = request.match_info["ns"], request.match_info["pod"], request.match_info["container"]
        command = request.query.getall("command", [])
        if not command:
            raise web.HTTPBadRequest(text="command: Required value")
        record = await _running(agent, ns, pod, name)
        timeout = float(request.query.get("timeout", "0") or 0) or None
        try:
            code, out, err = await agent.runtime.exec_sync(record.id, command, timeout)
        except ContainerRuntimeError:  # it stopped since _running looked
            raise web.HTTPBadRequest(text=f'container "{name}" is not running') from None
        return web.json_response({"exitCode": code, "stdout": base64.b64encode(out or b"").decode(),
                                  "stderr": base64.b64encode(err or b"").decode()})

    async def exec_stream(request: web.Request) -> web.StreamResponse:
        ns, pod, name = request.match_info["ns"], request.match_info["pod"], request.match_info["container"]
        return await serve_exec(request, agent.runtime, lambda: _running(agent, ns, pod, name))

    async def attach(request: web.Request) -> web.StreamResponse:
        ns, pod, name = request.match_info["ns"], request.match_info["pod"], request.match_info["container"]
        return await serve_exec(request, agent.runtime, lambda: _running(agent, ns, pod, name), attach=True)

    async def port_forward(request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        return await serve_port_forward(request, lambda: pod_network(agent, ns, pod))

    async def stats_summary(_: web.Request) -> web.Response:
        return web.json_response(agent.resource_metrics.summary(agent.config.node_name))

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[authn.middleware(auth.token)])
    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", logs)
    app.router.add_post("/exec/{ns}/{pod}/{container}", exec_)
    app.router.add_get("/exec/{ns}/{pod}/{container}", exec_stream)
    app.router.add_get("/attach/{ns}/{pod}/{container}", attach)
    app.router.add_get("/portForward/{ns}/{pod}", port_forward)
    app.router.add_get("/stats/summary", stats_summary)
    app.router.add_get("/healthz", healthz)
    return app


async def start_server(agent: NodeView, host: str, port: int, auth: ServerAuth) -> _Server:
    """HTTPS on host:port; every request, /healthz too as on the kubelet's port, needs credentials."""
    runner = web.AppRunner(make_app(agent, auth))
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=server_context(auth.serving, auth.client_ca))
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above, so a Server
    return _Server(runner, bound)
