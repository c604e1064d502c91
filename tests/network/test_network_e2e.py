"""Real CNI plugins on real network namespaces: addresses, pod-to-pod traffic, hostPort,
and a teardown that leaves nothing on the host (checked by host_env)."""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from podbay.runtime.network import NetworkError, PodNetwork, PortMapping
from tests.conftest import HostEnv
from tests.network.conftest import in_netns, links_in

pytestmark = pytest.mark.e2e


def _bridge_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


async def test_attach_gives_eth0_an_address_in_the_subnet_and_lo_up(
        host_env: HostEnv, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("a")
    status = await pod_network.attach("c1", netns, pod_name="web", pod_namespace="default", pod_uid="u1")
    [ip] = status.ips
    subnet = ipaddress.ip_network(host_env.subnet)
    assert ipaddress.ip_address(ip) in subnet and status.interface == "eth0"
    assert status.gateway == str(next(subnet.hosts()))
    links = links_in(netns)
    assert ip in [a["local"] for a in links["eth0"]["addr_info"]]
    assert "UP" in links["lo"]["flags"] and "127.0.0.1" in [a["local"] for a in links["lo"]["addr_info"]]
    assert "default via " + status.gateway in in_netns(netns, "ip", "route").stdout
    await pod_network.check("c1", netns)
    with pytest.raises(NetworkError, match="already attached"):
        await pod_network.attach("c1", netns)
    await pod_network.check("c1", netns)  # the refused ADD left the attachment alone

    await pod_network.detach("c1", netns)
    assert "eth0" not in links_in(netns)
    await pod_network.detach("c1", netns)  # a second DEL is a no-op
    await pod_network.shutdown()
    assert not _bridge_exists(host_env.bridge)


async def test_two_pods_reach_each_other_by_pod_ip(
        pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    a, b = make_netns("a"), make_netns("b")
    status_a, status_b = await asyncio.gather(pod_network.attach("ca", a), pod_network.attach("cb", b))
    assert status_a.ips != status_b.ips
    ping = in_netns(a, "/bin/busybox", "ping", "-c1", "-W2", status_b.ips[0])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    ping = in_netns(b, "/bin/busybox", "ping", "-c1", "-W2", status_a.ips[0])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    await asyncio.gather(pod_network.detach("ca", a), pod_network.detach("cb", b))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _http_get(port: int, deadline_s: float = 10.0, host: str = "127.0.0.1") -> bytes:
    """GET / from host:port, retrying until the server inside the pod listens."""
    deadline = time.monotonic() + deadline_s
    last: object = None
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
            writer.write(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            body = last = await asyncio.wait_for(reader.read(), 2)
            writer.close()
            if body:
                return body
        except (OSError, asyncio.TimeoutError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing served on {host}:{port} (last: {last!r}); nat rules for it: "
                                 f"{[r for r in _iptables_rules().splitlines() if str(port) in r]}")
        await asyncio.sleep(0.05)


# A GET from inside a namespace (the host's /bin/busybox wget segfaults).
_FETCH = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"


# An HTTP server answering one GET with the client's address.
_PEER_ECHO = """
import http.server, sys
class Peer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.client_address[0].encode())
server = http.server.HTTPServer((sys.argv[1], 8080), Peer)
print("listening", flush=True)
server.handle_request()
"""


@contextlib.contextmanager
def _httpd(netns: Path, root: Path, text: str) -> Iterator[None]:
    (root / "index.html").write_text(text)
    httpd = subprocess.Popen(["ip", "netns", "exec", netns.name, "/bin/busybox", "httpd", "-f", "-p", "8080",
                              "-h", str(root)])
    try:
        yield
    finally:
        httpd.kill()
        httpd.wait()


async def test_host_port_on_localhost_reaches_the_pod(
        tmp_path: Path, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("h")
    host_port = _free_port()
    ports = [PortMapping(host_port=host_port, container_port=8080, host_ip="127.0.0.1")]
    await pod_network.attach("ch", netns, port_mappings=ports)
    with _httpd(netns, tmp_path, "hello from the pod\n"):
        assert b"hello from the pod" in await _http_get(host_port)
    await pod_network.detach("ch", netns, port_mappings=ports)


async def test_host_ports_added_to_an_existing_attachment(
        tmp_path: Path, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("w")
    await pod_network.attach("cw", netns)
    host_port = _free_port()
    await pod_network.add_port_mappings("cw", netns, [PortMapping(host_port=host_port, container_port=8080)])
    with _httpd(netns, tmp_path, "warm pod\n"):
        assert b"warm pod" in await _http_get(host_port)
    await pod_network.detach("cw", netns)  # the cached mappings are removed too (host_env checks)


async def test_host_port_reaches_the_pod_from_the_host_and_from_pods_and_goes_with_it(
        tmp_path: Path, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    server, client = make_netns("s"), make_netns("c")
    host_port = _free_port()
    status = await pod_network.attach("cs", server, port_mappings=[PortMapping(host_port=host_port, container_port=8080)])
    await pod_network.attach("cc", client)
    # The gateway is the host's address on the bridge: a host IP as any other.
    assert status.gateway is not None
    with _httpd(server, tmp_path, "mapped\n"):
        assert b"mapped" in await _http_get(host_port)
        assert b"mapped" in await _http_get(host_port, host=status.gateway)
        # Another pod, and the pod itself, through the node's address: masqueraded, so the
        # replies come back through the DNAT.
        for netns in (client, server):
            got = in_netns(netns, sys.executable, "-c", _FETCH, f"http://{status.gateway}:{host_port}/")
            assert got.stdout == "mapped\n", got.stderr
    await pod_network.detach("cs", server)
    assert f"--dport {host_port} " not in _iptables_rules() and f":{host_port}" not in _iptables_rules()
    with pytest.raises(AssertionError, match="nothing served"):
        await _http_get(host_port, deadline_s=0.5)
    await pod_network.detach("cc", client)


async def test_host_ports_outlive_the_process_that_mapped_them(
        tmp_path: Path, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("r")
    host_port = _free_port()
    await pod_network.attach("cr", netns, port_mappings=[PortMapping(host_port=host_port, container_port=8080,
                                                                     host_ip="127.0.0.1")])
    restarted = PodNetwork(pod_network.config)  # an agent restarted: only the cache and the kernel remember
    with _httpd(netns, tmp_path, "still here\n"):
        assert b"still here" in await _http_get(host_port)
        await restarted.detach("cr", netns)
    assert str(host_port) not in _iptables_rules()


async def test_a_users_list_with_portmap_maps_host_ports_through_the_plugin(
        tmp_path: Path, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    path = pod_network.ensure_conflist()
    conflist = json.loads(path.read_text())
    # masqAll (default false) makes it a list of the user's, not podbay's former default.
    conflist["plugins"].append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True,
                                "masqAll": False})
    path.write_text(json.dumps(conflist))
    netns = make_netns("p")
    host_port = _free_port()
    await pod_network.attach("cp", netns, port_mappings=[PortMapping(host_port=host_port, container_port=8080)])
    mine = [r for r in _iptables_rules().splitlines() if str(host_port) in r]
    assert mine and all(r.startswith("-A CNI-") for r in mine)  # the plugin's chains, not podbay's rules
    with _httpd(netns, tmp_path, "via portmap\n"):
        assert b"via portmap" in await _http_get(host_port)
    await pod_network.detach("cp", netns)


async def test_traffic_leaving_the_subnet_is_masqueraded_by_the_networks_one_rule(
        host_env: HostEnv, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    pod, outside = make_netns("m"), make_netns("o")
    # A host outside the pod network, on a link of its own (198.18.0.0/15: benchmark addresses).
    octet = int(host_env.prefix[-2:], 16)
    host_ip, outside_ip, veth = f"198.18.{octet}.1", f"198.18.{octet}.2", f"{host_env.prefix}o"
    subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", outside.name],
                   check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{host_ip}/30", "dev", veth], check=True)
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
        for command in (["ip", "addr", "add", f"{outside_ip}/30", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                        ["ip", "link", "set", "lo", "up"]):
            in_netns(outside, *command).check_returncode()
        await pod_network.ensure_masquerade()
        await pod_network.ensure_masquerade()  # idempotent: one rule
        # This network's rule only: other networks on the host have their own.
        ours = f'name: \\"{pod_network.config.name}\\" masquerade leaving the pod network'
        assert _iptables_rules().count(ours) == 1
        [pod_ip] = (await pod_network.attach("cm", pod)).ips
        # The outside host answers with the address it saw; it has no route to the pod network.
        server = subprocess.Popen(["ip", "netns", "exec", outside.name, sys.executable, "-c", _PEER_ECHO, outside_ip],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline() == "listening\n"
            got = in_netns(pod, sys.executable, "-c", _FETCH, f"http://{outside_ip}:8080/")
        finally:
            server.kill()
            server.wait()
        assert got.stdout == host_ip and got.stdout != pod_ip, got.stderr
        await pod_network.detach("cm", pod)
    finally:
        subprocess.run(["ip", "link", "del", veth], check=False)


async def test_check_reports_a_missing_interface(
        pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("k")
    await pod_network.attach("ck", netns)
    subprocess.run(["ip", "-n", netns.name, "link", "del", "eth0"], check=True)
    with pytest.raises(NetworkError, match="plugin type='bridge' CHECK failed: .*eth0"):
        await pod_network.check("ck", netns)
    await pod_network.detach("ck", netns)
    with pytest.raises(NetworkError, match="not attached"):
        await pod_network.check("ck", netns)


async def test_users_conflist_with_the_firewall_plugin(
        pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    path = pod_network.ensure_conflist()
    conflist = json.loads(path.read_text())
    conflist["plugins"].append({"type": "firewall", "backend": "iptables"})
    path.write_text(json.dumps(conflist))
    netns = make_netns("u")
    [ip] = (await pod_network.attach("cu", netns)).ips
    assert f"-d {ip}/32" in _iptables_rules()
    await pod_network.detach("cu", netns)
    assert f"{ip}/32" not in _iptables_rules()
    assert json.loads(path.read_text()) == conflist


def _iptables_rules() -> str:
    return "".join(subprocess.run(["iptables-save", "-t", t], capture_output=True, text=True).stdout
                   for t in ("filter", "nat"))


async def test_detach_after_the_namespace_is_gone_releases_everything(
        host_env: HostEnv, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("g")
    ports = [PortMapping(host_port=_free_port(), container_port=80)]
    first = await pod_network.attach("cg", netns, port_mappings=ports)
    subprocess.run(["ip", "netns", "del", netns.name], check=True)
    await pod_network.detach("cg", netns)
    await pod_network.detach("cg", None)
    # The address went back to the pool: host-local hands out the next one, then wraps to it.
    ipam = pod_network.config.cache_dir / "ipam" / host_env.network_name
    assert not (ipam / first.ips[0]).exists()


async def test_failed_add_undoes_what_it_added(
        host_env: HostEnv, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("f")
    pod_network.ensure_conflist()
    path = pod_network.conflist_path()
    conflist = json.loads(path.read_text())
    conflist["plugins"].append({"type": "nosuchplugin"})
    path.write_text(json.dumps(conflist))
    with pytest.raises(NetworkError, match='failed to find plugin "nosuchplugin"'):
        await pod_network.attach("cf", netns)
    assert "eth0" not in links_in(netns)
    ipam = pod_network.config.cache_dir / "ipam" / host_env.network_name
    assert not [p for p in ipam.iterdir() if p.name[0].isdigit()]


async def test_cancelled_attach_leaves_nothing_attached(
        host_env: HostEnv, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("x")
    try:
        await asyncio.wait_for(pod_network.attach("cc", netns), timeout=0.005)
    except asyncio.TimeoutError:
        pass
    else:  # a machine fast enough to finish first: the same end state through detach
        await pod_network.detach("cc", netns)
    assert "eth0" not in links_in(netns)
    ipam = pod_network.config.cache_dir / "ipam" / host_env.network_name
    assert not (ipam.is_dir() and [p for p in ipam.iterdir() if p.name[0].isdigit()])
    assert not list((pod_network.config.cache_dir / "results").glob("*.json"))


async def test_plugin_error_message_reaches_the_caller(
        host_env: HostEnv, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    missing = Path("/run/netns") / f"{host_env.prefix}none"
    with pytest.raises(NetworkError, match="plugin type='bridge' ADD failed: .*"):
        await pod_network.attach("cx", missing)


async def test_shutdown_sweeps_rules_of_a_lost_attachment(
        host_env: HostEnv, pod_network: PodNetwork, make_netns: Callable[[str], Path]) -> None:
    netns = make_netns("l")
    await pod_network.attach("cl", netns, port_mappings=[PortMapping(host_port=_free_port(), container_port=80)])
    for cached in (pod_network.config.cache_dir / "results").iterdir():
        cached.unlink()  # the state a DEL needs is lost
    assert host_env.network_name in _iptables_rules()
    await pod_network.shutdown()
    assert host_env.network_name not in _iptables_rules()
    assert not _bridge_exists(host_env.bridge)
