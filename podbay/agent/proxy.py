"""The node's service proxy (kube-proxy in iptables mode): the Services and EndpointSlices of
the cluster as nat rules, so pods and the host reach a Service's ClusterIP:port and its nodePort
on any of this node's addresses (127.0.0.1 too).

    PREROUTING/OUTPUT -> <P>-SERVICES -> <P>-SVC-<hash> -> <P>-SEP-<hash> (DNAT to a pod)
                           |             (internalTrafficPolicy Local: <P>-SVL-<hash>, this node's)
                           `-> (local destination) <P>-NODEPORTS -> <P>-EXT-<hash> -> <P>-SVC-<hash>
                                                      (externalTrafficPolicy Local: <P>-SVL-<hash>)
    POSTROUTING -> <P>-POSTROUTING: masquerade what <P>-MARK-MASQ marked
    filter INPUT/FORWARD/OUTPUT (new connections) -> <P>-SERVICES: REJECT a ClusterIP port without
        endpoints, DROP one without local endpoints under internalTrafficPolicy Local
    filter INPUT/FORWARD (new connections) -> <P>-EXTERNAL-SERVICES (<P>-EXT-SERVICES where that
        name is too long): the same for nodePorts

<P> is kube-proxy's KUBE unless configured (tests run several side by side). A Service's
endpoints are chosen with `-m statistic --mode random`, each with the probability that leaves
the later ones an equal share; with sessionAffinity ClientIP a `recent` list per endpoint sends
a client back to the endpoint it last reached within the timeout, as kube-proxy does.
`ruleset` is the pure part; `ServiceProxy` keeps it applied."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from podbay.api.services import DEFAULT_AFFINITY_SECONDS, SERVICE_NAME_LABEL, EndpointSlice, Service, ServicePort, \
    is_headless
from podbay.client.informer import Object, SharedInformerFactory, WatchEvents

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
    # This node: the endpoints on it are the "local" ones of the traffic policies' Local.
    node_name: str | None = None


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int


def chain(prefix: str, kind: str, *parts: str) -> str:
    """kube-proxy's portProtoHash: base32 of sha256, cut to what fits after `<prefix>-<kind>-`."""
    digest = base64.b32encode(hashlib.sha256("".join(parts).encode()).digest()).decode()
    head = f"{prefix}-{kind}-"
    return head + digest[:min(16, _CHAIN_MAX - len(head))]


def external_services_chain(prefix: str) -> str:
    """kube-proxy's KUBE-EXTERNAL-SERVICES, shortened where a long prefix would pass iptables' limit."""
    name = f"{prefix}-EXTERNAL-SERVICES"
    return name if len(name) <= _CHAIN_MAX else f"{prefix}-EXT-SERVICES"


def backends(port: ServicePort, slices: list[EndpointSlice], node: str | None = None) -> list[Backend]:
    """The endpoints traffic to `port` goes to (those on `node` when it is named): ready ones; with
    none, the serving terminating ones (kube-proxy's fallback), so a rolling pod still answers
    while it drains."""
    ready: list[Backend] = []
    draining: list[Backend] = []
    for es in slices:
        number = next((p.port for p in es.ports if (p.name or "") == (port.name or "")
                       and (p.protocol or "TCP") == port.protocol), None)
        if number is None:
            continue
        for ep in es.endpoints:
            if node is not None and ep.node_name != node:
                continue
            cond = ep.conditions
            for ip in ep.addresses:
                if cond.ready is not False and not cond.terminating:
                    ready.append(Backend(ip, number))
                elif cond.serving and cond.terminating:
                    draining.append(Backend(ip, number))
    chosen = ready or draining
    return sorted(set(chosen), key=lambda b: (b.ip, b.port))


@dataclass(frozen=True)
class _PortRules:
    """One Service port's part of the ruleset, written into the lists of `ruleset`."""
    config: ProxyConfig
    chains: list[str]
    rules: list[str]
    node_rules: list[str]
    filter_rules: list[str]
    external_filter_rules: list[str]

    def endpoint_chains(self, policy_chain: str, port_name: str, proto: str, ends: list[Backend],
                        affinity: int | None) -> None:
        """writeServiceToEndpointRules: first a `recent` check per endpoint (session affinity),
        then the random pick."""
        p = self.config.chain_prefix
        self.chains.append(policy_chain)
        seps = [chain(p, "SEP", port_name, proto, f"{e.ip}:{e.port}") for e in ends]
        if affinity is not None:
            for end, sep in zip(ends, seps):
                self.rules.append(f'-A {policy_chain} -m comment --comment "{port_name} -> {end.ip}:{end.port}" '
                                  f'-m recent --name {sep} --rcheck --seconds {affinity} --reap -j {sep}')
        for i, (end, sep) in enumerate(zip(ends, seps)):
            left = len(ends) - i
            pick = f"-m statistic --mode random --probability {1 / left:.10f} " if left > 1 else ""
            self.rules.append(f'-A {policy_chain} -m comment --comment "{port_name} -> {end.ip}:{end.port}" '
                              f'{pick}-j {sep}')

    def endpoint(self, port_name: str, proto: str, end: Backend, affinity: int | None) -> None:
        sep = chain(self.config.chain_prefix, "SEP", port_name, proto, f"{end.ip}:{end.port}")
        self.chains.append(sep)
        mark = f"{self.config.chain_prefix}-MARK-MASQ"
        # Hairpin: a pod reaching itself through the Service must see the reply come back.
        self.rules.append(f'-A {sep} -m comment --comment "{port_name}" -s {end.ip}/32 -j {mark}')
        remember = f"-m recent --name {sep} --set " if affinity is not None else ""
        self.rules.append(f'-A {sep} -m comment --comment "{port_name}" {remember}-p {proto} -m {proto} '
                          f'-j DNAT --to-destination {end.ip}:{end.port}')

    def service_port(self, svc: Service, port: ServicePort, slices: list[EndpointSlice]) -> None:
        """syncProxyRules for one port: the cluster-wide (SVC) and this node's (SVL) endpoint
        chains as the traffic policies need them, the EXT chain of a nodePort, and the filter
        rules refusing (no endpoints) or dropping (no local endpoints) what cannot be served."""
        info = service_port_info(svc, port, self.config.chain_prefix)
        cluster_ends = backends(port, slices)
        local_ends = backends(port, slices, self.config.node_name) if info.internal_local or info.external_local \
            else []
        if not cluster_ends:
            self.no_endpoints(info)
            return
        self.cluster_ip(info, bool(local_ends))
        if info.node_port:
            self.node_port(info, info.node_port, bool(local_ends))
        reachable = set(local_ends)
        # The cluster-wide chain serves Cluster policies, and a Local nodePort's pods and host.
        if not info.internal_local or info.node_port:
            self.endpoint_chains(info.svc_chain, info.name, info.proto, cluster_ends, info.affinity)
            reachable |= set(cluster_ends)
        if local_ends:
            self.endpoint_chains(info.svl_chain, info.name, info.proto, local_ends, info.affinity)
        for end in sorted(reachable, key=lambda b: (b.ip, b.port)):
            self.endpoint(info.name, info.proto, end, info.affinity)

    def no_endpoints(self, info: ServicePortInfo) -> None:
        """A port without endpoints refuses connections at once instead of letting them time out."""
        p = self.config.chain_prefix
        self.filter_rules.append(f'-A {p}-SERVICES -m comment --comment "{info.name} has no endpoints" '
                                 f'-d {info.ip}/32 {info.dport} -j REJECT --reject-with icmp-port-unreachable')
        if info.node_port:
            self.external_filter_rules.append(f'-A {external_services_chain(p)} -m comment --comment "{info.name} '
                                              f'has no endpoints" {info.node_dport} -j REJECT --reject-with '
                                              f'icmp-port-unreachable')

    def cluster_ip(self, info: ServicePortInfo, has_local: bool) -> None:
        """The ClusterIP's jump to its endpoint chain, marking traffic from outside the cluster for masquerade."""
        p, name, ip, dport = self.config.chain_prefix, info.name, info.ip, info.dport
        internal_chain = info.svl_chain if info.internal_local else info.svc_chain
        if info.internal_local and not has_local:
            self.filter_rules.append(f'-A {p}-SERVICES -m comment --comment "{name} has no local endpoints" '
                                     f'-d {ip}/32 {dport} -j DROP')
            return
        self.rules.append(f'-A {p}-SERVICES -m comment --comment "{name} cluster IP" -d {ip}/32 {dport} '
                          f'-j {internal_chain}')
        self.rules.append(f'-A {internal_chain} -m comment --comment "{name} cluster IP" '
                          f'! -s {self.config.cluster_cidr} -d {ip}/32 {dport} -j {p}-MARK-MASQ')

    def node_port(self, info: ServicePortInfo, node_port: int, has_local: bool) -> None:
        """The nodePort's EXT chain, as externalTrafficPolicy wants it."""
        p, name, proto, cidr = self.config.chain_prefix, info.name, info.proto, self.config.cluster_cidr
        ext = chain(p, "EXT", name, proto)
        self.chains.append(ext)
        self.node_rules.append(f'-A {p}-NODEPORTS -m comment --comment "{name}" -p {proto} -m {proto} '
                               f'--dport {node_port} -j {ext}')
        if not info.external_local:
            self.rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {name} external '
                              f'destinations" -j {p}-MARK-MASQ')
        else:
            # Pods and the host itself reach a Local nodePort through every endpoint (as if
            # through an outside load balancer); only the host's own traffic is masqueraded.
            self.rules.extend([
                f'-A {ext} -m comment --comment "pod traffic for {name} external destinations" '
                f'-s {cidr} -j {info.svc_chain}',
                f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {name} external '
                f'destinations" -m addrtype --src-type LOCAL -j {p}-MARK-MASQ',
                f'-A {ext} -m comment --comment "route LOCAL traffic for {name} external destinations" '
                f'-m addrtype --src-type LOCAL -j {info.svc_chain}'])
        if info.external_local and not has_local:
            self.external_filter_rules.append(f'-A {external_services_chain(p)} -m comment --comment "{name} has no '
                                              f'local endpoints" {info.node_dport} -j DROP')
        else:
            self.rules.append(f'-A {ext} -j {info.svl_chain if info.external_local else info.svc_chain}')


@dataclass(frozen=True)
class ServicePortInfo:
    """kube-proxy's servicePortInfo: what the rules of one Service port are written from."""

    name: str  # namespace/name[:port], the rules' comment
    proto: str  # lower case, as iptables' -p and -m take it
    ip: str | None  # the ClusterIP
    port: int
    node_port: int | None  # only a NodePort Service's
    affinity: int | None  # seconds a client sticks to its endpoint
    internal_local: bool
    external_local: bool
    svc_chain: str
    svl_chain: str

    @property
    def dport(self) -> str:
        return f"-p {self.proto} -m {self.proto} --dport {self.port}"

    @property
    def node_dport(self) -> str:
        return f"-m addrtype --dst-type LOCAL -p {self.proto} -m {self.proto} --dport {self.node_port}"


def service_port_info(svc: Service, port: ServicePort, prefix: str) -> ServicePortInfo:
    ns, name = svc.metadata.namespace or "", svc.metadata.name or ""
    proto = (port.protocol or "TCP").lower()
    port_name = f"{ns}/{name}" + (f":{port.name}" if port.name else "")
    affinity: int | None = None
    if svc.spec.session_affinity == "ClientIP":
        config = svc.spec.session_affinity_config
        client_ip = config.client_ip if config else None
        affinity = (client_ip.timeout_seconds if client_ip else None) or DEFAULT_AFFINITY_SECONDS
    node_port = port.node_port if svc.spec.type == "NodePort" else None
    return ServicePortInfo(
        name=port_name, proto=proto, ip=svc.spec.cluster_ip, port=port.port, node_port=node_port, affinity=affinity,
        internal_local=svc.spec.internal_traffic_policy == "Local",
        external_local=bool(node_port) and svc.spec.external_traffic_policy == "Local",
        svc_chain=chain(prefix, "SVC", port_name, proto), svl_chain=chain(prefix, "SVL", port_name, proto))


def ruleset(services: list[Service], slices: list[EndpointSlice], config: ProxyConfig,
            existing_chains: set[str]) -> tuple[str, set[str]]:
    """The iptables-restore input (--noflush) and the nat chains it writes. Chains of the prefix in
    `existing_chains` (nat) that no Service needs any more are flushed and deleted in it. The filter
    table's <P>-SERVICES and <P>-EXTERNAL-SERVICES reject connections to a port without endpoints,
    as kube-proxy does, so clients are refused at once instead of waiting for a timeout."""
    p = config.chain_prefix
    services_chain, nodeports, postrouting, mark = f"{p}-SERVICES", f"{p}-NODEPORTS", f"{p}-POSTROUTING", \
        f"{p}-MARK-MASQ"
    out = _PortRules(config, [services_chain, nodeports, postrouting, mark], [
        f'-A {postrouting} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN',
        f'-A {postrouting} -j MARK --xor-mark {MASQ_MARK}',
        f'-A {postrouting} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
        f'-A {mark} -j MARK --or-mark {MASQ_MARK}',
    ], [], [], [])
    by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
    for es in slices:
        by_service.setdefault((es.metadata.namespace or "", es.metadata.labels.get(SERVICE_NAME_LABEL, "")),
                              []).append(es)
    for svc in sorted(services, key=lambda s: (s.metadata.namespace or "", s.metadata.name or "")):
        if is_headless(svc) or not svc.spec.cluster_ip:
            continue
        for port in svc.spec.ports:
            out.service_port(svc, port, by_service.get((svc.metadata.namespace or "", svc.metadata.name or ""), []))
    rules = out.rules + out.node_rules
    rules.append(f'-A {services_chain} -m comment --comment "kubernetes service nodeports; NOTE: this must be '
                 f'the last rule in this chain" -m addrtype --dst-type LOCAL -j {nodeports}')
    wanted = set(out.chains)
    stale = sorted(c for c in existing_chains if c.startswith(f"{p}-") and c not in wanted)
    nat_chains = list(dict.fromkeys(out.chains))
    lines = ["*filter", f":{services_chain} - [0:0]", f":{external_services_chain(p)} - [0:0]", *out.filter_rules,
             *out.external_filter_rules, "COMMIT",
             "*nat", *(f":{c} - [0:0]" for c in nat_chains + stale), *rules, *(f"-X {c}" for c in stale),
             "COMMIT", ""]
    return "\n".join(lines), wanted


def jumps(config: ProxyConfig) -> list[tuple[str, str, list[str]]]:
    """The rules in the built-in chains that lead to the proxy's: (table, chain, iptables arguments)."""
    p = config.chain_prefix
    portals = ["-m", "comment", "--comment", "kubernetes service portals", "-j", f"{p}-SERVICES"]
    new = ["-m", "conntrack", "--ctstate", "NEW", *portals]
    external = ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
                "kubernetes externally-visible service portals", "-j", external_services_chain(p)]
    return [("nat", "PREROUTING", portals), ("nat", "OUTPUT", portals),
            ("nat", "POSTROUTING", ["-m", "comment", "--comment", "kubernetes postrouting rules",
                                    "-j", f"{p}-POSTROUTING"]),
            ("filter", "INPUT", new), ("filter", "FORWARD", new), ("filter", "OUTPUT", new),
            ("filter", "INPUT", external), ("filter", "FORWARD", external)]


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
    def __init__(self, informers: SharedInformerFactory, config: ProxyConfig) -> None:
        self.config = config
        self.changed = asyncio.Event()
        self.services = informers.informer(Service)
        self.slices = informers.informer(EndpointSlice)
        self._applied: str | None = None  # the last iptables-restore input written
        self._chains: set[str] | None = None  # the prefix's chains in the kernel after it

    async def sync(self) -> None:
        """Writes the rules if they changed since the last write. The chains present are read from
        the kernel only when nothing was written yet (a crashed run's are then cleared), else known."""
        if self._chains is None:
            self._chains = await _chains(self.config.chain_prefix)
        text, chains = ruleset(self.services.list(), self.slices.list(), self.config, self._chains)
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
        wake: WatchEvents[Object] = WatchEvents(lambda _, __: self.changed.set())
        tasks = [asyncio.create_task(self.services.serve(wake)), asyncio.create_task(self.slices.serve(wake))]
        try:
            await asyncio.gather(self.services.wait_synced(), self.slices.wait_synced())
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
