"""Host-gw routes (as flannel's host-gw backend and kubenet lay them): another node's pod CIDR
is reached through that node's address, with no tunnel. podbay's routes carry their own
`proto` number, so it lists, replaces and removes those and never a route someone else made."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from podbay.runtime.cni import NetworkError
from podbay.runtime.network import _run

# Not taken in iproute2's rt_protos; `ip route show proto 211` lists podbay's routes.
ROUTE_PROTO = 211


@dataclass(frozen=True)
class RouteChanges:
    put: dict[str, str] = field(default_factory=dict)  # destination -> gateway (new or changed)
    delete: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.put or self.delete)


def route_changes(wanted: dict[str, str], current: dict[str, str]) -> RouteChanges:
    """What turns the routes podbay has (`current`, destination -> gateway) into `wanted` (pure)."""
    return RouteChanges(put={dst: via for dst, via in wanted.items() if current.get(dst) != via},
                        delete=tuple(sorted(set(current) - set(wanted))))


async def _ip(*args: str) -> tuple[int | None, str]:
    code, out, err = await _run("ip", *args)
    return code, (out if code == 0 else err).decode().strip()


async def owned_routes() -> dict[str, str]:
    """podbay's routes on this host: destination -> gateway."""
    routes: dict[str, str] = {}
    for family in ("-4", "-6"):
        code, text = await _ip("-j", family, "route", "show", "proto", str(ROUTE_PROTO))
        if code != 0:
            raise NetworkError(f"listing routes: {text}")
        for route in json.loads(text or "[]"):
            if "gateway" in route:
                routes[route["dst"]] = route["gateway"]
    return routes


async def local_addresses() -> set[str]:
    """Every address on this host's interfaces: a node reached at one of them is this host."""
    code, text = await _ip("-j", "addr", "show")
    if code != 0:
        raise NetworkError(f"listing addresses: {text}")
    return {a["local"] for link in json.loads(text or "[]") for a in link.get("addr_info", []) if "local" in a}


async def apply(changes: RouteChanges, current: dict[str, str]) -> list[str]:
    """Makes the changes; a route to a destination podbay does not own yet is added, never
    replaced, so a route of the host's own (a connected subnet, an admin's) stays and the
    conflict is reported. Returns the errors."""
    errors = []
    for dst, via in changes.put.items():
        verb = "replace" if dst in current else "add"
        code, text = await _ip("route", verb, dst, "via", via, "proto", str(ROUTE_PROTO))
        if code != 0:
            errors.append(f"route {verb} {dst} via {via}: {text}")
    for dst in changes.delete:
        code, text = await _ip("route", "del", dst, "proto", str(ROUTE_PROTO))
        if code != 0 and "No such process" not in text:
            errors.append(f"route del {dst}: {text}")
    return errors


async def remove_owned_routes() -> list[str]:
    """Removes every podbay route on this host; returns the errors."""
    current = await owned_routes()
    return await apply(route_changes({}, current), current)
