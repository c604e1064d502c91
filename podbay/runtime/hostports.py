"""hostPort mappings as one iptables-restore batch per pod, for networks whose plugin list has no
plugin taking `portMappings` (podbay's default list).

The rules do what the portmap plugin (`snat: true`) does, as kubenet's hostport manager did in
Kubernetes: traffic to a local address (`--dst-type LOCAL`; only the hostIP when one is given) on
the hostPort is DNATed to the pod, from outside (PREROUTING) and from the host itself (OUTPUT);
such connections coming from 127.0.0.1 or from the pod network (a pod reaching a hostPort of its
own node) are masqueraded, as their replies would otherwise not come back through the DNAT; and
the bridge routes 127.0.0.1 (route_localnet). Each rule carries the bridge plugin's comment for
the sandbox (`name: "<net>" id: "<id>"`), so the DEL that removes that plugin's leftover rules
removes these in the same batch, and a network's shutdown finds any left behind.

The portmap plugin execs iptables ~17 times for one mapping and ~14 times to remove it (each a
full read of the nat table); this is one exec to add, none of its own to remove.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from podbay.runtime.syscalls import run_off_loop


class HostPort(Protocol):
    @property
    def host_port(self) -> int: ...
    @property
    def container_port(self) -> int: ...
    @property
    def protocol(self) -> str: ...
    @property
    def host_ip(self) -> str: ...


@dataclass(frozen=True)
class PodAddress:
    """One of the pod's addresses with its network's prefix (as the ADD result gives it)."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    @classmethod
    def parse(cls, cidr: str) -> "PodAddress":
        interface = ipaddress.ip_interface(cidr)
        return cls(interface.ip, interface.network)


def _quoted(comment: str) -> str:
    return '"' + comment.replace('"', '\\"') + '"'


def rules(ports: Sequence[HostPort], pod: PodAddress, comment: str) -> list[str]:
    """The nat rules (iptables-restore lines) mapping `ports` to `pod`, for its address family.
    Inserted, not appended: a hairpin connection must be masqueraded before the bridge plugin's
    per-pod chain ACCEPTs traffic within the pod network, as portmap's chain is."""
    out = []
    tag = f"-m comment --comment {_quoted(comment)}"
    to = f"[{pod.ip}]" if pod.ip.version == 6 else str(pod.ip)
    sources = [str(pod.network)] + (["127.0.0.1"] if pod.ip.version == 4 else [])
    for p in ports:
        host_ip = p.host_ip if p.host_ip not in ("", "0.0.0.0", "::") else ""
        if host_ip and ipaddress.ip_address(host_ip).version != pod.ip.version:
            continue  # the mapping belongs to the pod's other family
        proto = p.protocol.lower()
        match = f"-p {proto}" + (f" -d {host_ip}" if host_ip else "") + f" --dport {p.host_port}"
        dnat = f"{match} -m addrtype --dst-type LOCAL {tag} -j DNAT --to-destination {to}:{p.container_port}"
        out += [f"-I PREROUTING {dnat}", f"-I OUTPUT {dnat}"]
        out += [f"-I POSTROUTING -p {proto} -s {source} -d {pod.ip} --dport {p.container_port} -m conntrack "
                f"--ctstate DNAT --ctorigdstport {p.host_port} {tag} -j MASQUERADE" for source in sources]
    return out


class HostPortError(Exception):
    """iptables-restore refused the batch; nothing of it was applied (a table commits whole)."""


async def add(ports: Sequence[HostPort], addresses: list[PodAddress], comment: str, bridge: str) -> None:
    """The mappings for every address family the pod has: one iptables-restore per family."""
    for family in sorted({a.ip.version for a in addresses}):
        pod = next(a for a in addresses if a.ip.version == family)
        lines = rules(ports, pod, comment)
        if not lines:
            continue
        if family == 4:
            _route_localnet(bridge)
        batch = "\n".join(["*nat", *lines, "COMMIT", ""]).encode()
        restore = "iptables-restore" if family == 4 else "ip6tables-restore"
        # Spawned from a worker thread: on the loop the fork held up the pod's sandbox step, whose
        # containers are being created meanwhile.
        proc = await run_off_loop([restore, "--noflush", "--wait"], input=batch)
        if proc.returncode != 0:
            raise HostPortError(f"{restore}: adding hostPort rules: {proc.stderr.decode(errors='replace').strip()}")


def _route_localnet(bridge: str) -> None:
    """127.0.0.1 may be DNATed to the pod through the bridge only with route_localnet on it
    (portmap sets it too, and never unsets it: other pods on the bridge may rely on it)."""
    path = Path("/proc/sys/net/ipv4/conf") / bridge / "route_localnet"
    if path.read_text().strip() != "1":
        path.write_text("1")
