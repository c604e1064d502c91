"""Loopback ports for the servers a test starts, with tests running side by side."""
from __future__ import annotations

import contextlib
import socket


def free_ports(count: int) -> list[int]:
    """Distinct ports free for both TCP and UDP (a DNS server binds both; a port free for one may
    be another test's listener on the other). Each is held until all are chosen, since the kernel
    may hand a port it just got back out again."""
    ports: list[int] = []
    with contextlib.ExitStack() as held:
        while len(ports) < count:
            tcp = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            with contextlib.suppress(OSError):
                udp.bind(("127.0.0.1", port))
                ports.append(port)
    return ports


def free_port() -> int:
    return free_ports(1)[0]
