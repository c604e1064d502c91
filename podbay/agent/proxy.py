"""The node's service proxy (kube-proxy in iptables mode): the Services and EndpointSlices of
the cluster as nat rules, so pods and the host reach a Service's ClusterIP:port and its nodePort
on any of this node's addresses (127.0.0.1 too).

    PREROUTING/OUTPUT -> <P>-SERVICES -> <P>-SVC-<hash> -> <P>-SEP-<hash> (DNAT to a pod)
                           `-> (local destination) <P>-NODEPORTS -> <P>-EXT-<hash> -> <P>-SVC-<hash>
    POSTROUTING -> <P>-POSTROUTING: masquerade what <P>-MARK-MASQ marked
    filter INPUT/FORWARD/OUTPUT (new connections) -> <P>-SERVICES: REJECT a port without endpoints

<P> is kube-proxy's KUBE unless configured (tests run several side by side). A Service's
endpoints are chosen with `-m statistic --mode random`, each with the probability that leaves
the later ones an equal share. `ruleset` is the pure part; `ServiceProxy` keeps it applied."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podbay.api.services import SERVICE_NAME_LABEL, EndpointSlice, Service, ServicePort, is_headless
from podbay.client.cache import Informer
from podbay.client.client import Client

log = logging.getLogger(__name__)

MASQ_MARK = "0x4000"  # kube-proxy's --iptables-masquerade-bit 14
_CHAIN_MAX = 28  # iptables' limit on a chain name
_RESYNC = 30.0  # seconds between full rewrites, kube-proxy's --iptables-sync-period default


@dataclass(frozen=True)
class ProxyConfig:
    chain_prefix: str = "KUBE"
    # Traffic from outside it (the host, other machines) to a ClusterIP is masqueraded, as
    # kube-proxy's --cluster-cidr; pods' own keeps their source IP.
    cluster_cidr: str = "10.244.0.0/16"
    # The pods' bridge: loopback sources may leave through it (route_localnet), so 127.0.0.1:<nodePort>
    # works as it does with kube-proxy.
    bridge: str | None = None


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int


def chain(prefix: str, kind: str, *parts: str) -> str:
    """kube-proxy's portProtoHash: base32 of sha256, cut to what fits after `<prefix>-<kind>-`."""
    digest = base64.b32encode(hashlib.sha256("".join(parts).encode()).digest()).decode()
    head = f"{prefix}-{kind}-"
    return head + digest[:min(16, _CHAIN_MAX - len(head))]


def backends(port: ServicePort, slices: list[EndpointSlice]) -> list[Backend]:
    """The endpoints traffic to `port` goes to: ready ones; with none, the serving terminating ones
    (kube-proxy's fallback), so a rolling pod still answers while it drains."""
    ready: list[Backend] = []
    draining: list[Backend] = []
    for es in slices:
        number = next((p.port for p in es.ports if (p.name or "") == (port.name or "")
                       and (p.protocol or "TCP") == port.protocol), None)
        if number is None:
            continue
        for ep in es.endpoints:
            cond = ep.conditions
            for ip in ep.addresses:
                if cond.ready is not False and not cond.terminating:
                    ready.append(Backend(ip, number))
                elif cond.serving and cond.terminating:
                    draining.append(Backend(ip, number))
    chosen = ready or draining
    return sorted(set(chosen), key=lambda b: (b.ip, b.port))


def ruleset(services: list[Service], slices: list[EndpointSlice], config: ProxyConfig,
            existing_chains: set[str]) -> tuple[str, set[str]]:
    """The iptables-restore input (--noflush) and the nat chains it writes. Chains of the prefix in
    `existing_chains` (nat) that no Service needs any more are flushed and deleted in it. The filter
    table's <P>-SERVICES rejects connections to a ClusterIP port without endpoints, as kube-proxy
    does, so clients are refused at once instead of waiting for a timeout."""
    p = config.chain_prefix
    services_chain, nodeports, postrouting, mark = f"{p}-SERVICES", f"{p}-NODEPORTS", f"{p}-POSTROUTING", \
        f"{p}-MARK-MASQ"
    chains = [services_chain, nodeports, postrouting, mark]
    rules = [
        f'-A {postrouting} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN',
        f'-A {postrouting} -j MARK --xor-mark {MASQ_MARK}',
        f'-A {postrouting} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
        f'-A {mark} -j MARK --or-mark {MASQ_MARK}',
    ]
    by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
    for es in slices:
        by_service.setdefault((es.metadata.namespace or "", es.metadata.labels.get(SERVICE_NAME_LABEL, "")),
                              []).append(es)
    node_rules: list[str] = []
    rejects: list[str] = []
    for svc in sorted(services, key=lambda s: (s.metadata.namespace or "", s.metadata.name or "")):
        if is_headless(svc) or not svc.spec.cluster_ip:
            continue
        ns, name = svc.metadata.namespace or "", svc.metadata.name or ""
        ip = svc.spec.cluster_ip
        for port in svc.spec.ports:
            proto = (port.protocol or "TCP").lower()
            port_name = f"{ns}/{name}" + (f":{port.name}" if port.name else "")
            ends = backends(port, by_service.get((ns, name), []))
            if not ends:
                rejects.append(f'-A {services_chain} -m comment --comment "{port_name} has no endpoints" '
                               f'-d {ip}/32 -p {proto} -m {proto} --dport {port.port} '
                               f'-j REJECT --reject-with icmp-port-unreachable')
                continue
            svc_chain = chain(p, "SVC", port_name, proto)
            chains.append(svc_chain)
            rules.append(f'-A {services_chain} -m comment --comment "{port_name} cluster IP" -d {ip}/32 '
                         f'-p {proto} -m {proto} --dport {port.port} -j {svc_chain}')
            rules.append(f'-A {svc_chain} -m comment --comment "{port_name} cluster IP" ! -s {config.cluster_cidr} '
                         f'-d {ip}/32 -p {proto} -m {proto} --dport {port.port} -j {mark}')
            for i, end in enumerate(ends):
                sep = chain(p, "SEP", port_name, proto, f"{end.ip}:{end.port}")
                chains.append(sep)
                left = len(ends) - i
                pick = f"-m statistic --mode random --probability {1 / left:.10f} " if left > 1 else ""
                rules.append(f'-A {svc_chain} -m comment --comment "{port_name} -> {end.ip}:{end.port}" '
                             f'{pick}-j {sep}')
                # Hairpin: a pod reaching itself through the Service must see the reply come back.
                rules.append(f'-A {sep} -m comment --comment "{port_name}" -s {end.ip}/32 -j {mark}')
                rules.append(f'-A {sep} -m comment --comment "{port_name}" -p {proto} -m {proto} '
                             f'-j DNAT --to-destination {end.ip}:{end.port}')
            if svc.spec.type == "NodePort" and port.node_port:
                ext = chain(p, "EXT", port_name, proto)
                chains.append(ext)
                node_rules.append(f'-A {nodeports} -m comment --comment "{port_name}" -p {proto} -m {proto} '
                                  f'--dport {port.node_port} -j {ext}')
                rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {port_name} external '
                             f'destinations" -j {mark}')
                rules.append(f'-A {ext} -j {svc_chain}')
    rules += node_rules
    rules.append(f'-A {services_chain} -m comment --comment "kubernetes service nodeports; NOTE: this must be '
                 f'the last rule in this chain" -m addrtype --dst-type LOCAL -j {nodeports}')
    wanted = set(chains)
    stale = sorted(c for c in existing_chains if c.startswith(f"{p}-") and c not in wanted)
    lines = ["*filter", f":{services_chain} - [0:0]", *rejects, "COMMIT",
             "*nat", *(f":{c} - [0:0]" for c in chains + stale), *rules, *(f"-X {c}" for c in stale), "COMMIT", ""]
    return "\n".join(lines), wanted


def jumps(config: ProxyConfig) -> list[tuple[str, str, list[str]]]:
    """The rules in the built-in chains that lead to the proxy's: (table, chain, iptables arguments)."""
    p = config.chain_prefix
    portals = ["-m", "comment", "--comment", "kubernetes service portals", "-j", f"{p}-SERVICES"]
    new = ["-m", "conntrack", "--ctstate", "NEW", *portals]
    return [("nat", "PREROUTING", portals), ("nat", "OUTPUT", portals),
            ("nat", "POSTROUTING", ["-m", "comment", "--comment", "kubernetes postrouting rules",
                                    "-j", f"{p}-POSTROUTING"]),
            ("filter", "INPUT", new), ("filter", "FORWARD", new), ("filter", "OUTPUT", new)]


async def _run(*command: str, stdin: bytes | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin)
    return proc.returncode or 0, (out + err).decode(errors="replace")


async def _chains(prefix: str, table: str = "nat") -> set[str]:
    _, saved = await _run("iptables-save", "-t", table)
    return {line[1:].split()[0] for line in saved.splitlines()
            if line.startswith(f":{prefix}-")}


async def _restore(text: str) -> None:
    code, out = await _run("iptables-restore", "-w", "--noflush", stdin=text.encode())
    if code != 0:
        raise RuntimeError(f"iptables-restore failed: {out.strip()}")


async def remove_rules(config: ProxyConfig) -> None:
    """Every rule and chain of the proxy's prefix goes (on shutdown, and by `purge`)."""
    for table, builtin, args in jumps(config):
        while (await _run("iptables", "-w", "-t", table, "-D", builtin, *args))[0] == 0:
            pass
    for table in ("filter", "nat"):
        existing = sorted(await _chains(config.chain_prefix, table))
        if existing:
            await _restore("\n".join([f"*{table}", *(f":{c} - [0:0]" for c in existing),
                                      *(f"-X {c}" for c in existing), "COMMIT", ""]))


class ServiceProxy:
    def __init__(self, client: Client, config: ProxyConfig) -> None:
        self.client, self.config = client, config
        self.changed = asyncio.Event()
        self.services = Informer(client, Service, self.changed)
        self.slices = Informer(client, EndpointSlice, self.changed)
        self._applied: str | None = None  # the last iptables-restore input written
        self._chains: set[str] | None = None  # the prefix's chains in the kernel after it

    async def sync(self) -> None:
        """Writes the rules if they changed since the last write. The chains present are read from
        the kernel only when nothing was written yet (a crashed run's are then cleared), else known."""
        if self._chains is None:
            self._chains = await _chains(self.config.chain_prefix)
        text, chains = ruleset(self.services.items(), self.slices.items(), self.config, self._chains)
        if text == self._applied:
            return
        await _restore(text)
        self._applied, self._chains = text, chains
        for table, builtin, args in jumps(self.config):
            if (await _run("iptables", "-w", "-t", table, "-C", builtin, *args))[0] != 0:
                code, out = await _run("iptables", "-w", "-t", table, "-I", builtin, "1", *args)
                if code != 0:
                    raise RuntimeError(f"cannot add the {builtin} rule: {out.strip()}")

    def _route_localnet(self) -> None:
        """kube-proxy sets route_localnet so 127.0.0.1:<nodePort> can be DNATed to a pod; only on
        the pods' bridge here (it exists once a pod runs), not for every interface of the host."""
        if self.config.bridge is None:
            return
        knob = Path("/proc/sys/net/ipv4/conf") / self.config.bridge / "route_localnet"
        if knob.exists() and knob.read_text().strip() != "1":
            knob.write_text("1\n")

    async def run(self) -> None:
        """Keeps the rules equal to the Services and EndpointSlices until cancelled; then removes them."""
        informers: list[Informer[Any]] = [self.services, self.slices]
        tasks = [asyncio.create_task(i.run()) for i in informers]
        try:
            await asyncio.gather(*(i.synced.wait() for i in informers))
            loop = asyncio.get_running_loop()
            resynced = loop.time()
            while True:
                self.changed.clear()
                if loop.time() - resynced > _RESYNC:
                    # As kube-proxy's --iptables-sync-period: rules someone else removed come back.
                    self._applied, self._chains, resynced = None, None, loop.time()
                try:
                    await self.sync()
                except Exception as exc:  # applied again on the next change or retry
                    log.warning("service proxy sync failed: %s", exc)
                    self._applied, self._chains = None, None
                    await asyncio.sleep(1.0)
                    self.changed.set()
                # The bridge appears with the first pod: looked at on every pass, at least every 5 s.
                self._route_localnet()
                with_timeout = asyncio.create_task(self.changed.wait())
                await asyncio.wait([with_timeout, *tasks], timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
                with_timeout.cancel()
                for t in tasks:
                    if t.done():
                        t.result()
        finally:
            for t in tasks:
                t.cancel()
            # Whoever stops the agent may cancel it more than once: the rules go all the same.
            cleanup = asyncio.create_task(remove_rules(self.config))
            while not cleanup.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(cleanup)
            await asyncio.gather(*tasks, return_exceptions=True)
