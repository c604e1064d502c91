"""The files every container of a pod shares: /etc/hosts, /etc/resolv.conf, /etc/hostname."""
from __future__ import annotations

from pathlib import Path

from podbay.runtime.types import DNSConfig, HostAlias

_HEADER = "# Kubernetes-managed hosts file.\n"
_DEFAULTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
             "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")


def hosts_file(pod_ip: str | None, hostname: str, fqdn: str, aliases: list[HostAlias],
               host_network_hosts: str | None = None) -> str:
    """As the kubelet writes it (managedHostsFileContent / hostsEntriesFromHostAliases)."""
    if host_network_hosts is not None:
        text = host_network_hosts if host_network_hosts.endswith("\n") else host_network_hosts + "\n"
    else:
        text = _HEADER + _DEFAULTS
        if pod_ip:
            text += f"{pod_ip}\t{fqdn}\t{hostname}\n" if fqdn else f"{pod_ip}\t{hostname}\n"
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        text += "".join(f"{a.ip}\t{chr(9).join(a.hostnames)}\n" for a in aliases)
    return text


def resolv_conf(dns: DNSConfig | None, host_resolv: str) -> str:
    if dns is None:
        return host_resolv
    lines = [f"nameserver {s}" for s in dns.servers]
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


def write_pod_etc(directory: Path, *, pod_ip: str | None, hostname: str, fqdn: str, aliases: list[HostAlias],
                  dns: DNSConfig | None, host_network: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    host_hosts = Path("/etc/hosts").read_text() if host_network else None
    host_resolv = Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else ""
    (directory / "hosts").write_text(hosts_file(pod_ip, hostname, fqdn, aliases, host_hosts))
    (directory / "resolv.conf").write_text(resolv_conf(dns, host_resolv))
    (directory / "hostname").write_text(hostname + "\n")
