"""Connections to a pod's ports from inside its network namespace, as the CRI runtimes'
PortForward dials localhost:PORT in the sandbox's netns: a port bound to 127.0.0.1 in
the pod is reachable, and nothing needs the pod's IP to be routable from the node.

A socket belongs to the namespace of the thread that creates it, so a short-lived thread
enters the pod's namespace, creates the socket and leaves; connecting and relaying then
happen on the event loop like any other socket.
"""
from __future__ import annotations

import asyncio
import os
import socket
import threading

from podbay.runtime.syscalls import CLONE_NEWNET, setns

CONNECT_TIMEOUT = 10.0


def _socket_in(netns_path: str) -> socket.socket:
    result: list[socket.socket | BaseException] = []

    def enter_and_create() -> None:
        try:
            target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(target, CLONE_NEWNET)
            finally:
                os.close(target)
            result.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
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


async def dial_pod_port(netns_path: str | None, port: int) -> socket.socket:
    """A connected, non-blocking socket to 127.0.0.1:`port` in the namespace at `netns_path`
    (None: the node's own, for hostNetwork pods). Raises OSError with the runtime's wording."""
    loop = asyncio.get_running_loop()
    sock = (await asyncio.to_thread(_socket_in, netns_path) if netns_path
            else socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as exc:
        sock.close()
        # Go's wording (syscall errors in lower case), which kubectl users know.
        reason = os.strerror(exc.errno).lower() if isinstance(exc, OSError) and exc.errno else "i/o timeout"
        where = f' inside namespace "{netns_path}"' if netns_path else ""
        raise OSError(f"failed to connect to localhost:{port}{where}, IPv4: dial tcp4 127.0.0.1:{port}: "
                      f"connect: {reason.lower()}") from None
    return sock
