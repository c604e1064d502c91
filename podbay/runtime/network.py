"""Pod networking through the standard CNI plugins, invoked as the CNI spec (1.0) says.

The network is an ordinary conflist file (<conf_dir>/<name>.conflist) users may
replace; podbay writes a default once: bridge with host-local IPAM, a gateway
on the bridge and IP masquerade, then portmap for hostPort. Each ADD's result
and config are cached by sandbox id (as libcni does) so DEL runs correctly
after a crash or once the namespace is gone.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CNI_VERSION = "1.0.0"
IFNAME = "eth0"


@dataclass(frozen=True)
class NetworkConfig:
    name: str = "podbay"
    bridge: str = "podbay0"
    subnet: str = "10.244.0.0/24"
    conf_dir: Path = Path("/etc/cni/net.d")
    bin_dirs: tuple[Path, ...] = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
    cache_dir: Path = Path("/var/lib/podbay/cni")


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


class NetworkError(Exception):
    """A CNI plugin failed; the message carries its error (msg and details)."""


def host_port_conflicts(existing: list[PortMapping], wanted: list[PortMapping]) -> list[str]:
    """Which wanted hostPorts are taken: same port and protocol on an overlapping host IP
    (an empty host IP or 0.0.0.0 overlaps every address)."""
    def overlap(a: str, b: str) -> bool:
        a, b = a or "0.0.0.0", b or "0.0.0.0"
        return a == b or "0.0.0.0" in (a, b)

    out = []
    for w in wanted:
        taken = next((e for e in existing if e.host_port == w.host_port
                      and e.protocol.upper() == w.protocol.upper() and overlap(e.host_ip, w.host_ip)), None)
        if taken is not None:
            out.append(f"hostPort {w.host_port}/{w.protocol.upper()} on {w.host_ip or '0.0.0.0'} is already "
                       f"allocated to another pod (on {taken.host_ip or '0.0.0.0'})")
    return out


def default_conflist(config: NetworkConfig) -> dict[str, Any]:
    net = ipaddress.ip_network(config.subnet)
    return {
        "cniVersion": CNI_VERSION,
        "name": config.name,
        "plugins": [
            {"type": "bridge", "bridge": config.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": str(net)}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(config.cache_dir / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


class PodNetwork:
    def __init__(self, config: NetworkConfig) -> None:
        self.config = config

    def conflist_path(self) -> Path:
        return self.config.conf_dir / f"{self.config.name}.conflist"

    def ensure_conflist(self) -> Path:
        path = self.conflist_path()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(default_conflist(self.config), indent=2))
            tmp.replace(path)
        return path

    def _cache(self, container_id: str) -> Path:
        return self.config.cache_dir / "results" / f"{self.config.name}-{container_id}.json"

    def _plugin(self, kind: str) -> Path:
        for d in self.config.bin_dirs:
            candidate = d / kind
            if candidate.exists():
                return candidate
        raise NetworkError(f'failed to find plugin "{kind}" in path {[str(d) for d in self.config.bin_dirs]}')

    async def _exec(self, command: str, plugin: dict[str, Any], conf: dict[str, Any], container_id: str,
                    netns: Path | None, args: str) -> dict[str, Any] | None:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": str(netns or ""),
               "CNI_IFNAME": IFNAME, "CNI_PATH": os.pathsep.join(map(str, self.config.bin_dirs)), "CNI_ARGS": args,
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        proc = await asyncio.create_subprocess_exec(
            str(self._plugin(plugin["type"])), env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(json.dumps(conf).encode())
        if proc.returncode != 0:
            try:
                error = json.loads(out)
                message = error.get("msg", "") + (f"; {error['details']}" if error.get("details") else "")
            except ValueError:
                message = (out or err).decode(errors="replace").strip()
            raise NetworkError(f"plugin type={plugin['type']!r} {command} failed: {message}")
        return json.loads(out) if out.strip() else None

    @staticmethod
    def _plugin_conf(conflist: dict[str, Any], plugin: dict[str, Any], prev: dict[str, Any] | None,
                     ports: list[PortMapping]) -> dict[str, Any]:
        conf = {**plugin, "name": conflist["name"], "cniVersion": conflist.get("cniVersion", CNI_VERSION)}
        conf.pop("capabilities", None)
        if prev is not None:
            conf["prevResult"] = prev
        if plugin.get("capabilities", {}).get("portMappings") and ports:
            conf["runtimeConfig"] = {"portMappings": [
                {"hostPort": p.host_port, "containerPort": p.container_port, "protocol": p.protocol.lower(),
                 "hostIP": p.host_ip} for p in ports]}
        return conf

    @staticmethod
    def _args(pod_name: str, pod_namespace: str, pod_uid: str, container_id: str) -> str:
        return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod_namespace};K8S_POD_NAME={pod_name};"
                f"K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={pod_uid}")

    async def attach(self, container_id: str, netns: Path, *, port_mappings: list[PortMapping] | None = None,
                     pod_name: str = "", pod_namespace: str = "", pod_uid: str = "") -> NetworkStatus:
        """CNI ADD of every plugin in order; a failure undoes what was added before raising."""
        ports = list(port_mappings or [])
        conflist = json.loads(self.ensure_conflist().read_text())
        args = self._args(pod_name, pod_namespace, pod_uid, container_id)
        cache = self._cache(container_id)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"conflist": conflist, "ports": [asdict(p) for p in ports], "args": args,
                                     "result": None}))
        prev: dict[str, Any] | None = None
        try:
            for plugin in conflist["plugins"]:
                prev = await self._exec("ADD", plugin, self._plugin_conf(conflist, plugin, prev, ports),
                                        container_id, netns, args) or prev
        except BaseException:
            await self.detach(container_id, netns)
            raise
        cache.write_text(json.dumps({"conflist": conflist, "ports": [asdict(p) for p in ports], "args": args,
                                     "result": prev}))
        return _status(prev or {})

    async def add_port_mappings(self, container_id: str, netns: Path, ports: list[PortMapping]) -> None:
        """hostPort mappings for an attachment made without them (a warm sandbox taken by a pod):
        ADD of the plugins that take portMappings, chained on the cached result."""
        cache = self._cache(container_id)
        cached = json.loads(cache.read_text())
        conflist, prev = cached["conflist"], cached.get("result")
        cached["ports"] = [asdict(p) for p in ports]
        cache.write_text(json.dumps(cached))  # so a DEL after a failure below removes them too
        for plugin in conflist["plugins"]:
            if plugin.get("capabilities", {}).get("portMappings"):
                await self._exec("ADD", plugin, self._plugin_conf(conflist, plugin, prev, ports), container_id,
                                 netns, cached["args"])

    async def detach(self, container_id: str, netns: Path | None, *,
                     port_mappings: list[PortMapping] | None = None) -> None:
        """CNI DEL in reverse order, from the cached config and result; idempotent."""
        cache = self._cache(container_id)
        try:
            cached = json.loads(cache.read_text())
        except (FileNotFoundError, ValueError):
            return
        conflist, prev = cached["conflist"], cached.get("result")
        ports = [PortMapping(**p) for p in cached["ports"]] or list(port_mappings or [])
        path = netns if netns is not None and netns.exists() else None
        errors = []
        for plugin in reversed(conflist["plugins"]):
            try:
                await self._exec("DEL", plugin, self._plugin_conf(conflist, plugin, prev, ports), container_id,
                                 path, cached["args"])
            except NetworkError as exc:
                errors.append(str(exc))
        if errors:
            raise NetworkError("; ".join(errors))
        cache.unlink(missing_ok=True)

    async def check(self, container_id: str, netns: Path) -> None:
        cached = json.loads(self._cache(container_id).read_text())
        conflist, prev = cached["conflist"], cached.get("result")
        ports = [PortMapping(**p) for p in cached["ports"]]
        for plugin in conflist["plugins"]:
            await self._exec("CHECK", plugin, self._plugin_conf(conflist, plugin, prev, ports), container_id,
                             netns, cached["args"])

    async def shutdown(self) -> None:
        """Removes the bridge, which the bridge plugin never deletes."""
        proc = await asyncio.create_subprocess_exec("ip", "link", "del", self.config.bridge,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()


def _status(result: dict[str, Any]) -> NetworkStatus:
    ips, gateway = [], None
    for ip in result.get("ips", []):
        ips.append(str(ipaddress.ip_interface(ip["address"]).ip))
        gateway = gateway or ip.get("gateway")
    return NetworkStatus(ips=ips, gateway=gateway, raw=result)
