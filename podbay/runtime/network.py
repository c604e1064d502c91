"""Pod networking through the standard CNI plugins (see `cni` for one plugin's execution).

The network is an ordinary conflist file (<conf_dir>/<name>.conflist) users may
replace; podbay writes a default once: bridge with host-local IPAM and a gateway
on the bridge; podbay masquerades with one rule per network (`masquerade_rule`)
rather than the plugin's chain per pod. hostPorts go to a plugin of the list that takes
`portMappings` (portmap, in a user's list) or, when none does, to podbay's own
rules (`hostports`). Each ADD's result and config are cached by sandbox id (as
libcni does) so DEL runs correctly after a crash or once the namespace is gone.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from podbay.runtime import hostports
from podbay.runtime.cni import CNI_VERSION, NetworkError, cni_args, exec_plugin, find_plugin
from podbay.runtime.files import remove_json, write_json_atomic
from podbay.runtime.namespaces import loopback_up
from podbay.runtime.syscalls import finished_before_cancel

__all__ = ["NetworkConfig", "PortMapping", "NetworkStatus", "NetworkError", "PodNetwork", "default_conflist",
           "host_port_conflicts"]

IFNAME = "eth0"
# The last plugin of podbay's default list until hostPorts became podbay's own rules: a list
# written then is still podbay's, and is rewritten.
_PORTMAP = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


@dataclass(frozen=True)
class NetworkConfig:
    name: str = "podbay"
    bridge: str = "podbay0"
    subnet: str = "10.244.0.0/24"
    conf_dir: Path = Path("/etc/cni/net.d")
    bin_dirs: tuple[Path, ...] = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
    cache_dir: Path = Path("/var/lib/podbay/cni")
    # Pods' traffic to the cluster CIDR (other nodes' pods, routed host-gw) keeps its source IP;
    # None: everything leaving `subnet` is masqueraded, by the bridge plugin.
    cluster_cidr: str | None = None


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class NetworkStatus:
    ips: list[str]
    gateway: str | None
    interface: str = IFNAME
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def host_port_conflicts(existing: list[PortMapping], wanted: list[PortMapping]) -> list[str]:
    """Which wanted hostPorts are taken: same port and protocol on an overlapping host IP
    (an empty host IP or 0.0.0.0 overlaps every address). Wanted entries are checked
    against each other too, as one pod cannot map a hostPort twice."""
    def overlap(a: str, b: str) -> bool:
        a, b = a or "0.0.0.0", b or "0.0.0.0"
        return a == b or "0.0.0.0" in (a, b)

    def clash(a: PortMapping, b: PortMapping) -> bool:
        return a.host_port == b.host_port and a.protocol.upper() == b.protocol.upper() and overlap(a.host_ip, b.host_ip)

    out = []
    for n, w in enumerate(wanted):
        where = f"hostPort {w.host_port}/{w.protocol.upper()} on {w.host_ip or '0.0.0.0'}"
        taken = next((e for e in existing if clash(e, w)), None)
        if taken is not None:
            out.append(f"{where} is already allocated to another pod (on {taken.host_ip or '0.0.0.0'})")
        elif any(clash(earlier, w) for earlier in wanted[:n]):
            out.append(f"{where} is requested twice")
    return out


def host_masquerade(config: NetworkConfig) -> bool:
    """Whether the node's subnet is part of the cluster CIDR, so only what leaves the cluster is
    masqueraded (otherwise everything leaving the node's subnet is). A subnet outside the cluster
    CIDR is not part of the pod network other nodes route to."""
    if config.cluster_cidr is None:
        return False
    subnet, cluster = ipaddress.ip_network(config.subnet), ipaddress.ip_network(config.cluster_cidr)
    # The ignore: equal versions mean both are IPv4Network or both IPv6Network, which mypy cannot see.
    return subnet.version == cluster.version and subnet.subnet_of(cluster)  # type: ignore[arg-type]


def masquerade_rule(config: NetworkConfig) -> list[str]:
    """The network's nat POSTROUTING rule (iptables arguments after the chain). Its comment starts as
    the plugins' do, so `shutdown` finds it with theirs.

    Outside a cluster CIDR it is the bridge plugin's `ipMasq` for the whole subnet at once: what
    leaves the subnet, except multicast (the plugin's `! -d 224.0.0.0/4`, or ff00::/8), is
    masqueraded. The plugin makes a chain and four rule execs per pod on ADD and on DEL; this
    is one rule for the network's life."""
    if host_masquerade(config):
        return ["-s", config.subnet, "!", "-d", str(config.cluster_cidr), "-m", "comment", "--comment",
                f'name: "{config.name}" masquerade leaving the cluster', "-j", "MASQUERADE"]
    return ["-s", config.subnet, "!", "-d", config.subnet, "-m", "addrtype", "!", "--dst-type", "MULTICAST",
            "-m", "comment", "--comment", f'name: "{config.name}" masquerade leaving the pod network',
            "-j", "MASQUERADE"]


def default_conflist(config: NetworkConfig) -> dict[str, Any]:
    # No "firewall" plugin: it works with iptables' nft backend here, but it only adds ACCEPT
    # rules to its own CNI-FORWARD chain, which matters only when FORWARD's policy is DROP, and
    # costs ~18 ms per ADD and ~28 ms per DEL (bench/network_attach.py --firewall); a host
    # that needs it adds it to the conflist. No "portmap" either: `hostports` does its work
    # in one exec (bench/README.md).
    net = ipaddress.ip_network(config.subnet)
    return {
        "cniVersion": CNI_VERSION,
        "name": config.name,
        "plugins": [
            {"type": "bridge", "bridge": config.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": str(net)}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(config.cache_dir / "ipam")}},
        ],
    }


def _plugin_conf(conflist: dict[str, Any], plugin: dict[str, Any], prev: dict[str, Any] | None,
                 ports: list[PortMapping]) -> dict[str, Any]:
    """One plugin's stdin config: name and cniVersion from the list, the previous result, and
    runtimeConfig only for capabilities the plugin declares."""
    conf = {**plugin, "name": conflist["name"], "cniVersion": conflist.get("cniVersion", CNI_VERSION)}
    conf.pop("capabilities", None)
    if prev is not None:
        conf["prevResult"] = prev
    if plugin.get("capabilities", {}).get("portMappings") and ports:
        conf["runtimeConfig"] = {"portMappings": [
            {"hostPort": p.host_port, "containerPort": p.container_port, "protocol": p.protocol.lower(),
             "hostIP": p.host_ip} for p in ports]}
    return conf


def _cache_ports(cache: Path, ports: list[PortMapping]) -> Any:
    """The attachment's cache (CNI's JSON, as read) with `ports` added, written before they are
    mapped: so a DEL after a failure removes them too."""
    cached = json.loads(cache.read_text())
    cached["ports"] = [asdict(p) for p in ports]
    write_json_atomic(cache, cached)
    return cached


def _maps_ports(conflist: dict[str, Any]) -> bool:
    """Whether a plugin of the list takes the hostPort mappings (otherwise podbay's own rules do)."""
    return any(p.get("capabilities", {}).get("portMappings") for p in conflist["plugins"])


def _leaves_rules(conflist: dict[str, Any], ports: list[PortMapping]) -> bool:
    """Whether the attachment may have nat rules a DEL must sweep: podbay's hostPort rules, or a
    bridge plugin's masquerade (which its DEL leaves once the namespace is gone)."""
    return bool(ports and not _maps_ports(conflist)) or any(p.get("ipMasq") for p in conflist["plugins"])


def _idle(plugin: dict[str, Any], ports: list[PortMapping]) -> bool:
    """portmap with no mappings does nothing on ADD, DEL or CHECK (it hands prevResult on), so
    its exec is skipped: most pods have no hostPort."""
    return plugin["type"] == "portmap" and not ports


def _status(result: dict[str, Any]) -> NetworkStatus:
    """The pod's addresses: those on the interface inside the sandbox (or all, when unattributed)."""
    interfaces = result.get("interfaces", [])
    ips, gateway = [], None
    for ip in result.get("ips", []):
        index = ip.get("interface")
        if index is not None and not interfaces[index].get("sandbox"):
            continue
        ips.append(str(ipaddress.ip_interface(ip["address"]).ip))
        gateway = gateway or ip.get("gateway")
    return NetworkStatus(ips=ips, gateway=gateway, raw=result)


async def _run(*command: str, stdin: bytes | None = None) -> tuple[int | None, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin)
    return proc.returncode, out, err


def nat_rules_to_drop(saved: str, comment: str) -> list[str]:
    """An iptables-restore batch (one table) deleting every rule carrying `comment` and the
    CNI-* chains those rules jump to that nothing else jumps to (portmap's CNI-DN-* chains hold
    rules without the comment, so such chains are flushed whole)."""
    table = next((line for line in saved.splitlines() if line.startswith("*")), "*nat")
    rules = [line for line in saved.splitlines() if line.startswith("-A ")]
    ours = [line for line in rules if comment in line]
    if not ours:
        return []
    targets = {line.split(" -j ")[-1].split()[0] for line in ours if " -j " in line}
    chains = sorted(chain for chain in targets if chain.startswith("CNI-") and not any(
        comment not in line and line.split()[1] != chain and f" -j {chain} " in f"{line} " for line in rules))
    return [table, *("-D" + line[2:] for line in ours), *(f"-F {chain}" for chain in chains),
            *(f"-X {chain}" for chain in chains), "COMMIT", ""]


async def _drop_rules(comment: str, families: set[int]) -> list[str]:
    """Deletes the NAT rules whose comment matches (the bridge plugin's ipMasq rules, portmap's
    DNAT rules: `name: "<net>" id: "<id>"`) and the per-container chains they jump to.

    The bridge plugin (1.1.x) finds the addresses to un-masquerade on the interface inside the
    namespace, so a DEL once the namespace or its eth0 is gone releases the IP but leaves its
    POSTROUTING rule and chain; this finds them by the plugin's comment instead."""
    errors = []
    for family, save, restore in ((4, "iptables-save", "iptables-restore"), (6, "ip6tables-save", "ip6tables-restore")):
        if family not in families:
            continue
        code, out, err = await _run(save, "-t", "nat")
        if code != 0:
            errors.append(f"{save}: {err.decode().strip()}")
            continue
        batch = nat_rules_to_drop(out.decode(), comment)
        if not batch:
            continue
        code, _, err = await _run(restore, "--noflush", "--wait", stdin="\n".join(batch).encode())
        if code != 0:
            errors.append(f"{restore}: removing rules with {comment}: {err.decode().strip()}")
    return errors


def _families(result: dict[str, Any] | None) -> set[int]:
    return {ipaddress.ip_interface(ip["address"]).version for ip in (result or {}).get("ips", [])} or {4}


def plugin_comment(network: str, container_id: str | None = None) -> str:
    """As the plugins write it in iptables-save's quoting; without an id, any container's."""
    text = f'name: \\"{network}\\"'
    return text + (f' id: \\"{container_id}\\""' if container_id is not None else "")


def _stale_default(path: Path, config: NetworkConfig) -> bool:
    """Whether the file is podbay's default conflist, but for another subnet or cluster CIDR."""
    try:
        existing = json.loads(path.read_text())
        subnet = existing["plugins"][0]["ipam"]["ranges"][0][0]["subnet"]
        was = [default_conflist(replace(config, subnet=subnet, cluster_cidr=cidr))
               for cidr in (config.cluster_cidr, None)]
        # Until podbay masqueraded and mapped hostPorts itself, the bridge plugin could masquerade
        # and portmap followed it.
        was += [{**c, "plugins": [{**c["plugins"][0], "ipMasq": True}, *c["plugins"][1:]]} for c in was]
        was += [{**c, "plugins": [*c["plugins"], _PORTMAP]} for c in was]
    except (OSError, ValueError, LookupError, TypeError):
        return False
    return existing in was and existing != default_conflist(config)


async def _loopback_up(netns: Path) -> None:
    try:
        await loopback_up(netns)
    except OSError as exc:
        raise NetworkError(f"setting up lo in {netns}: {exc.strerror or exc}") from None


class PodNetwork:
    def __init__(self, config: NetworkConfig) -> None:
        self.config = config

    def conflist_path(self) -> Path:
        return self.config.conf_dir / f"{self.config.name}.conflist"

    def ensure_conflist(self) -> Path:
        """Writes the default conflist unless one exists: a user's own file is never replaced. One
        podbay wrote for another subnet (the Node's podCIDR changed) or masquerading is rewritten."""
        path = self.conflist_path()
        if not path.exists() or _stale_default(path, self.config):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, default_conflist(self.config))
        return path

    async def ensure_masquerade(self) -> None:
        """The network's masquerade rule (`masquerade_rule`); idempotent."""
        iptables = "iptables" if ipaddress.ip_network(self.config.subnet).version == 4 else "ip6tables"
        rule = masquerade_rule(self.config)
        code, _, _ = await _run(iptables, "-w", "-t", "nat", "-C", "POSTROUTING", *rule)
        if code == 0:
            return
        code, _, err = await _run(iptables, "-w", "-t", "nat", "-A", "POSTROUTING", *rule)
        if code != 0:
            raise NetworkError(f"adding the masquerade rule of network {self.config.name!r}: {err.decode().strip()}")

    def _load_conflist(self) -> dict[str, Any]:
        path = self.ensure_conflist()
        try:
            conflist: dict[str, Any] = json.loads(path.read_text())  # checked below
        except ValueError as exc:
            raise NetworkError(f"{path}: not JSON: {exc}") from None
        problems = [f"{field_}: missing" for field_ in ("name", "plugins") if field_ not in conflist]
        if not problems and not (isinstance(conflist["plugins"], list) and conflist["plugins"]):
            problems.append("plugins: must be a non-empty list")
        if not problems:
            problems += [f"plugins[{n}].type: missing" for n, p in enumerate(conflist["plugins"])
                         if not isinstance(p, dict) or not p.get("type")]
        if problems:
            raise NetworkError(f"{path}: {'; '.join(problems)}")
        return conflist

    def _cache(self, container_id: str) -> Path:
        return self.config.cache_dir / "results" / f"{self.config.name}-{container_id}.json"

    async def _exec(self, command: str, conf: dict[str, Any], container_id: str, netns: Path | None,
                    args: str) -> dict[str, Any] | None:
        return await exec_plugin(command, conf, bin_dirs=self.config.bin_dirs, container_id=container_id,
                                 netns=netns, ifname=IFNAME, args=args)

    async def attach(self, container_id: str, netns: Path, *, port_mappings: list[PortMapping] | None = None,
                     pod_name: str = "", pod_namespace: str = "", pod_uid: str = "") -> NetworkStatus:
        """lo set up, and CNI ADD of every plugin of the list in order; a failure runs DEL for
        what was added before raising."""
        ports = list(port_mappings or [])
        conflist = self._load_conflist()
        args = cni_args({"K8S_POD_NAMESPACE": pod_namespace, "K8S_POD_NAME": pod_name,
                         "K8S_POD_INFRA_CONTAINER_ID": container_id, "K8S_POD_UID": pod_uid})
        cache = self._cache(container_id)
        if cache.exists():
            # A second ADD would fail on the existing eth0, and its undoing DEL would then tear
            # down the attachment that works.
            raise NetworkError(f"container {container_id} is already attached to network {self.config.name!r}; "
                               "detach it first")
        cache.parent.mkdir(parents=True, exist_ok=True)
        record = {"conflist": conflist, "ports": [asdict(p) for p in ports], "args": args, "result": None,
                  "added": 0}
        # lo is independent of eth0, so it is set up alongside the chain rather than after it;
        # both run to the end before any undo, so no DEL races an ADD still in flight.
        try:
            loopback, chain = await asyncio.gather(
                _loopback_up(netns), self._add_chain(conflist, ports, container_id, netns, args, record, cache),
                return_exceptions=True)
        except BaseException:
            await self._undo(container_id, netns)
            raise
        for outcome in (chain, loopback):
            if isinstance(outcome, BaseException):
                await self._undo(container_id, netns)
                raise outcome
        return _status(chain)

    async def _add_chain(self, conflist: dict[str, Any], ports: list[PortMapping], container_id: str, netns: Path,
                         args: str, record: dict[str, Any], cache: Path) -> dict[str, Any]:
        prev: dict[str, Any] | None = None
        for n, plugin in enumerate(conflist["plugins"]):
            record["added"] = n + 1
            if _idle(plugin, ports):
                continue
            find_plugin(plugin["type"], self.config.bin_dirs)
            # Cached before it runs (as libcni does), so a crash or a failure part-way still
            # leaves what DEL needs; a plugin that fails may have changed the host already.
            # Written in a worker thread, as the plugin runs: a new file waits on ext4's journal.
            await finished_before_cancel(asyncio.to_thread(write_json_atomic, cache, record))
            prev = await self._exec("ADD", _plugin_conf(conflist, plugin, prev, ports), container_id, netns, args)
            record["result"] = prev
        await finished_before_cancel(asyncio.to_thread(write_json_atomic, cache, record))
        if prev is None:
            raise NetworkError(f"{self.conflist_path()}: no plugin of network {conflist['name']!r} returned a result")
        if ports and not _maps_ports(conflist):
            await self._add_host_ports(conflist, container_id, prev, ports)
        return prev

    async def _add_host_ports(self, conflist: dict[str, Any], container_id: str, result: dict[str, Any],
                              ports: list[PortMapping]) -> None:
        """podbay's own hostPort rules (`hostports`), tagged as the bridge plugin tags its rules
        for this container, so detach removes both together."""
        interfaces = result.get("interfaces", [])
        addresses = [hostports.PodAddress.parse(ip["address"]) for ip in result.get("ips", [])
                     if ip.get("interface") is None or interfaces[ip["interface"]].get("sandbox")]
        # The bridge plugin reports the bridge first; a list whose plugin reports no host-side
        # interface is routed through the configured bridge.
        bridge = next((i["name"] for i in interfaces if not i.get("sandbox")), self.config.bridge)
        try:
            await hostports.add(ports, addresses, f'name: "{conflist["name"]}" id: "{container_id}"', bridge)
        except (hostports.HostPortError, OSError) as exc:
            raise NetworkError(str(exc)) from None

    async def _undo(self, container_id: str, netns: Path) -> None:
        try:
            await self.detach(container_id, netns)
        except NetworkError:
            pass  # the ADD's error is the one worth reporting; the cache stays for a later DEL

    async def add_port_mappings(self, container_id: str, netns: Path, ports: list[PortMapping]) -> None:
        """hostPort mappings for an attachment made without them (a warm sandbox taken by a pod):
        ADD of the plugins that take portMappings, chained on the cached result."""
        # In a worker thread: on the loop the read and the write held up the pod's sandbox step.
        cached = await finished_before_cancel(asyncio.to_thread(_cache_ports, self._cache(container_id), ports))
        conflist, prev = cached["conflist"], cached.get("result")
        if not _maps_ports(conflist):
            await self._add_host_ports(conflist, container_id, prev, ports)
        for plugin in conflist["plugins"]:
            if plugin.get("capabilities", {}).get("portMappings"):
                await self._exec("ADD", _plugin_conf(conflist, plugin, prev, ports), container_id, netns,
                                 cached["args"])

    async def detach(self, container_id: str, netns: Path | None, *,
                     port_mappings: list[PortMapping] | None = None) -> None:
        """CNI DEL in reverse order, from the cached config and result; idempotent, and works
        once the namespace is gone (plugins then release IPs and host rules only).

        lo is left up: setting it down would only touch a namespace that is being dropped."""
        cache = self._cache(container_id)
        try:
            cached = json.loads(cache.read_text())
        except FileNotFoundError:
            return  # never attached, or already detached: the cache is written before any ADD
        except ValueError as exc:
            raise NetworkError(f"{cache}: corrupt CNI cache: {exc}") from None
        conflist, prev = cached["conflist"], cached.get("result")
        ports = [PortMapping(**p) for p in cached["ports"]] or list(port_mappings or [])
        path = netns if netns is not None and netns.exists() else None
        errors = []
        for plugin in reversed(conflist["plugins"][:cached.get("added", len(conflist["plugins"]))]):
            if _idle(plugin, ports):
                continue
            try:
                await self._exec("DEL", _plugin_conf(conflist, plugin, prev, ports), container_id, path,
                                 cached["args"])
            except NetworkError as exc:
                errors.append(str(exc))
        if not errors and _leaves_rules(conflist, ports):
            errors += await _drop_rules(plugin_comment(conflist["name"], container_id), _families(prev))
        if errors:
            raise NetworkError("; ".join(errors))
        remove_json(cache)

    async def check(self, container_id: str, netns: Path) -> None:
        """CNI CHECK of every plugin against the cached result; NetworkError names what is wrong."""
        try:
            cached = json.loads(self._cache(container_id).read_text())
        except FileNotFoundError:
            raise NetworkError(f"container {container_id} is not attached to network {self.config.name!r}") from None
        conflist, prev = cached["conflist"], cached.get("result")
        ports = [PortMapping(**p) for p in cached["ports"]]
        for plugin in conflist["plugins"]:
            if _idle(plugin, ports):
                continue
            await self._exec("CHECK", _plugin_conf(conflist, plugin, prev, ports), container_id, netns,
                             cached["args"])

    async def shutdown(self) -> None:
        """Removes the bridge, which the bridge plugin never deletes, and any NAT rule still naming
        this network (a detach that failed). The shared CNI-HOSTPORT-* chains stay: portmap
        keeps them for every CNI network on the host. No error if nothing is left."""
        family = ipaddress.ip_network(self.config.subnet).version
        code, _, err = await _run("ip", "link", "del", self.config.bridge)
        errors = [] if code == 0 or b"Cannot find device" in err else [
            f"removing bridge {self.config.bridge}: {err.decode().strip()}"]
        errors += await _drop_rules(plugin_comment(self.config.name), {family})
        if errors:
            raise NetworkError("; ".join(errors))
