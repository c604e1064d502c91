"""The agent's small kubelet-like HTTP server: container logs, exec (run to completion on POST,
streamed over a WebSocket on GET), attach and port-forward, which the API server proxies for
`pods/{name}/log`, `pods/{name}/exec` and the rest, and the Summary API it reads for
metrics.k8s.io. Only the API server (its client certificate) and holders of the cluster token
get in: this server runs commands in any container.
"""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from aiohttp import web

from podbay.agent.config import ServerAuth
from podbay.agent.containerlogs import LogOptions, read_logs
from podbay.agent.nodeview import NodeView
from podbay.api.stored import uid_of
from podbay.agent.podstate import ContainerRecord, RunState
from podbay.agent.runtimeview import container_record, runtime_pods
from podbay.agent.portforward import pod_network, serve_port_forward
from podbay.agent.streams import serve_exec
from podbay.runtime.types import ContainerRuntimeError
from podbay.security import authn
from podbay.security.pki import server_context


# Seconds the requests in flight get to finish at shutdown; followed logs and exec sessions are
# cancelled after them.
SHUTDOWN_GRACE = 5.0


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


def _container_path(request: web.Request) -> tuple[str, str, str]:
    return request.match_info["ns"], request.match_info["pod"], request.match_info["container"]


async def _logs(agent: NodeView, request: web.Request) -> web.StreamResponse:
    ns, pod, name = _container_path(request)
    options = LogOptions.from_query(request.query, datetime.now(timezone.utc))
    record = await _find(agent, ns, pod, name, options.previous)
    path = Path(await agent.runtime.container_log_path(record.id))

    async def alive() -> bool:
        status = await agent.runtime.container_status(record.id)
        return container_record(status).state is RunState.RUNNING

    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    if path.exists():
        await read_logs(path, options, alive, resp.write)
    await resp.write_eof()
    return resp


async def _exec(agent: NodeView, request: web.Request) -> web.Response:
    """Runs a command to completion: ?command=a&command=b[&timeout=s] →
    {"exitCode", "stdout", "stderr"} with base64 output."""
    ns, pod, name = _container_path(request)
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


def install_default_handlers(app: web.Application, agent: NodeView) -> None:
    """/healthz and the Summary API (the kubelet's InstallDefaultHandlers)."""
    async def stats_summary(_: web.Request) -> web.Response:
        return web.json_response(agent.resource_metrics.summary(agent.config.node_name))

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/stats/summary", stats_summary)
    app.router.add_get("/healthz", healthz)


def install_debugging_handlers(app: web.Application, agent: NodeView) -> None:
    """Logs, exec, attach and port-forward into the node's containers (the kubelet's
    InstallDebuggingHandlers), which the API server proxies."""
    async def exec_stream(request: web.Request) -> web.StreamResponse:
        ns, pod, name = _container_path(request)
        return await serve_exec(request, agent.runtime, lambda: _running(agent, ns, pod, name))

    async def attach(request: web.Request) -> web.StreamResponse:
        ns, pod, name = _container_path(request)
        return await serve_exec(request, agent.runtime, lambda: _running(agent, ns, pod, name), attach=True)

    async def port_forward(request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        return await serve_port_forward(request, lambda: pod_network(agent, ns, pod))

    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", partial(_logs, agent))
    app.router.add_post("/exec/{ns}/{pod}/{container}", partial(_exec, agent))
    app.router.add_get("/exec/{ns}/{pod}/{container}", exec_stream)
    app.router.add_get("/attach/{ns}/{pod}/{container}", attach)
    app.router.add_get("/portForward/{ns}/{pod}", port_forward)


def make_app(agent: NodeView, auth: ServerAuth) -> web.Application:
    app = web.Application(middlewares=[authn.middleware(auth.token)])
    install_debugging_handlers(app, agent)
    install_default_handlers(app, agent)
    return app


async def start_server(agent: NodeView, host: str, port: int, auth: ServerAuth) -> _Server:
    """HTTPS on host:port; every request, /healthz too as on the kubelet's port, needs credentials."""
    # As the API server's: a followed log or an exec whose client left ends (the API server's
    # proxy connection to it closes), and none holds up the agent's shutdown.
    runner = web.AppRunner(make_app(agent, auth), handler_cancellation=True, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=server_context(auth.serving, auth.client_ca))
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above, so a Server
    return _Server(runner, bound)
