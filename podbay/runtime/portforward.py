"""Connections to a pod's ports from inside its network namespace, as the CRI runtimes'
PortForward dials localhost:PORT in the sandbox's netns (IPv4, then IPv6): a port bound
to the pod's loopback is reachable, and nothing needs the pod's IP to be routable from
the node.

A socket belongs to the namespace of the thread that creates it, so a short-lived thread
enters the pod's namespace, creates the sockets and ends; connecting and relaying then
happen on the event loop like any other socket.
"""
from __future__ import annotations

import asyncio
import os
import socket
import threading

from podbay.runtime.syscalls import CLONE_NEWNET, setns

CONNECT_TIMEOUT = 10.0
# family, address, and how containerd's message names each attempt
_LOOPBACKS = ((socket.AF_INET, "127.0.0.1", "IPv4: dial tcp4 127.0.0.1:{port}"),
              (socket.AF_INET6, "::1", "IPv6 dial tcp6 [::1]:{port}"))


def _new_sockets() -> list[socket.socket | None]:
    """One per loopback family; None where the namespace has no such family."""
    made: list[socket.socket | None] = []
    for family, *_ in _LOOPBACKS:
        try:
            made.append(socket.socket(family, socket.SOCK_STREAM))
        except OSError:
            made.append(None)
    return made


def _sockets_in(netns_path: str) -> list[socket.socket | None]:
    result: list[list[socket.socket | None] | BaseException] = []

    def enter_and_create() -> None:
        try:
            target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(target, CLONE_NEWNET)
            finally:
                os.close(target)
            result.append(_new_sockets())
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    # A thread of its own, never a pooled one: it ends in the pod's namespace.
    thread = threading.Thread(target=enter_and_create, name="netns-socket", daemon=True)
    thread.start()
    thread.join()
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _go_error(exc: BaseException) -> str:
    # Go's wording (syscall errors in lower case), which kubectl users know.
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return "i/o timeout"


async def dial_pod_port(netns_path: str | None, port: int) -> socket.socket:
    """A connected, non-blocking socket to localhost:`port` in the namespace at `netns_path`
    (None: the node's own, for hostNetwork pods). Raises OSError in containerd's words."""
    loop = asyncio.get_running_loop()
    sockets = await asyncio.to_thread(_sockets_in, netns_path) if netns_path else _new_sockets()
    failures: list[str] = []
    connected: socket.socket | None = None
    try:
        for sock, (_, address, shown) in zip(sockets, _LOOPBACKS):
            if sock is None:
                continue
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (address, port)), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                failures.append(f"{shown.format(port=port)}: connect: {_go_error(exc)}")
            else:
                connected = sock
                break
    finally:
        for sock in sockets:
            if sock is not None and sock is not connected:
                sock.close()
    if connected is not None:
        return connected
    where = f' inside namespace "{netns_path}"' if netns_path else ""
    raise OSError(f"failed to connect to localhost:{port}{where}, {' '.join(failures)}")
