"""The resolvers cluster DNS forwards names outside the cluster zone to (CoreDNS's `forward`):
parsed from --cluster-dns-upstreams or read from the host's resolv.conf. Light, as the
command line reads it before anything else."""
from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Upstream:
    """A resolver non-cluster names are forwarded to."""
    address: str
    port: int = 53

    def __str__(self) -> str:
        return self.address if self.port == 53 else f"{self.address}:{self.port}"


_MAX_UPSTREAMS = 15  # CoreDNS's forward plugin takes at most 15 destinations


def parse_upstreams(text: str) -> tuple[Upstream, ...]:
    """Comma-separated IPv4 addresses, each with an optional :port; empty: none."""
    out: list[Upstream] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        address, _, port = item.partition(":")
        try:
            ipaddress.IPv4Address(address)
            number = int(port) if port else 53
        except ValueError:
            raise ValueError(f"{item!r}: want an IPv4 address with an optional :port") from None
        if not 1 <= number <= 65535:
            raise ValueError(f"{item!r}: port must be between 1 and 65535")
        out.append(Upstream(address, number))
    if len(out) > _MAX_UPSTREAMS:
        raise ValueError(f"at most {_MAX_UPSTREAMS} upstream resolvers")
    return tuple(out)


def host_resolvers(path: Path = Path("/etc/resolv.conf")) -> tuple[Upstream, ...]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ()
    found: list[Upstream] = []
    for f in (line.split() for line in lines):
        if len(f) > 1 and f[0] == "nameserver":
            with contextlib.suppress(ValueError):  # IPv6 resolvers: this server forwards over IPv4
                found.append(Upstream(str(ipaddress.IPv4Address(f[1]))))
    return tuple(found[:_MAX_UPSTREAMS])
