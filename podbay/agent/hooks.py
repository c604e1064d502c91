"""Lifecycle handlers and probe actions: exec in the container, HTTP GET, TCP or a gRPC
health check into the pod's IP, sleep. Each returns (success, message) and is cut at its timeout.
"""
from __future__ import annotations

import asyncio

import aiohttp

from podbay.agent.cri import ContainerRuntime
from podbay.api import Container, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction

USER_AGENT = "kube-probe/1.32"


def _port(port: int | str, container: Container) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.ports:
        if p.name == port:
            return p.container_port
    raise ValueError(f"port {port!r} not found in container {container.name}")


async def run_exec(runtime: ContainerRuntime, container_id: str, command: list[str], timeout: float) -> tuple[bool, str]:
    try:
        code, out, err = await runtime.exec_sync(container_id, command, timeout)
    except asyncio.TimeoutError:
        return False, f"command {command!r} timed out"
    except Exception as exc:
        return False, str(exc)
    if code != 0:
        text = ((out or b"") + (err or b"")).decode(errors="replace")
        return False, f"command {command!r} exited with {code}: {text.strip()}"
    return True, ""


async def run_http_get(action: HTTPGetAction, container: Container, pod_ip: str | None, timeout: float) -> tuple[bool, str]:
    host = action.host or pod_ip
    if not host:
        return False, "pod has no IP"
    scheme = (action.scheme or "HTTP").lower()
    path = action.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{host}:{_port(action.port, container)}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.http_headers:
        headers[h.name] = h.value
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, headers=headers, ssl=False, allow_redirects=True) as resp:
                await resp.read()
                if 200 <= resp.status < 400:
                    return True, ""
                return False, f"HTTP probe failed with statuscode: {resp.status}"
    except asyncio.TimeoutError:
        return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except aiohttp.ClientError as exc:
        return False, f'Get "{url}": {exc}'


async def run_tcp(action: TCPSocketAction, container: Container, pod_ip: str | None, timeout: float) -> tuple[bool, str]:
    host = action.host or pod_ip
    port = _port(action.port, container)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return False, f"dial tcp {host}:{port}: {exc or 'i/o timeout'}"
    writer.close()
    return True, ""


async def run_handler(runtime: ContainerRuntime, handler: LifecycleHandler | Probe, container: Container, container_id: str, pod_ip: str | None,
                      timeout: float) -> tuple[bool, str]:
    """A LifecycleHandler or a Probe's action."""
    if handler.exec is not None:
        return await run_exec(runtime, container_id, list(handler.exec.command), timeout)
    if handler.http_get is not None:
        return await run_http_get(handler.http_get, container, pod_ip, timeout)
    if handler.tcp_socket is not None:
        return await run_tcp(handler.tcp_socket, container, pod_ip, timeout)
    if isinstance(handler, Probe) and handler.grpc is not None:
        if not pod_ip:
            return False, "pod has no IP"
        # h2 (~1.7 MiB resident) only once a pod has a gRPC probe.
        from podbay.agent.grpcprobe import probe_grpc
        return await probe_grpc(pod_ip, handler.grpc.port, handler.grpc.service or "", timeout, USER_AGENT)
    if isinstance(handler, LifecycleHandler) and handler.sleep is not None:
        await asyncio.sleep(min(handler.sleep.seconds, timeout))
        return True, ""
    return False, "handler has no action"
