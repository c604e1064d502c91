"""Nodes on two hosts: node IPAM gives each Node its own podCIDR, each host's agent routes the
other's podCIDR via its InternalIP (host-gw), and a pod on one host reaches a pod on the other by
pod IP, seen with its own source IP.

The hosts are network namespaces on a bridge that exists only for the test, each running a real
`podbay agent` process with its own roots, bridge, cgroup parent and `--node-ip`; the API server
and node IPAM run in the test process on the bridge's address. The agents enter their namespace
with `nsenter --net` rather than `ip netns exec`: the latter remounts /sys, hiding the cgroup
hierarchies crun needs, and gives the agent a mount namespace of its own whose mounts (rootfs,
namespace pins) the purge afterwards could not see."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import pytest

from podbay.api import Node, Pod
from podbay.api.errors import NotFound
from podbay.api.serialize import from_dict
from podbay.apiserver.embedded import serve_embedded
from podbay.client import Client
from podbay.controllers.nodeipam import NodeIPAM
from podbay.runtime.hostgw import ROUTE_PROTO
from tests.conftest import HostEnv, claimed_env, require_root
from tests.e2e.conftest import Cluster, running_cluster, settings_for
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

NODE_MASK = 26
WEB = ("mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' "
       "> /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && echo hello > /www/index.html && "
       "exec httpd -f -p 8080 -h /www")


@dataclass(frozen=True)
class NetnsHost:
    env: HostEnv
    address: str

    @property
    def netns(self) -> str:
        return f"{self.env.prefix}ns"

    @property
    def node_name(self) -> str:
        return f"node-{self.env.prefix}"

    def podbay(self, cluster_cidr: str, *verb: str, server: str | None = None) -> list[str]:
        """`podbay VERB` on this host: in its network namespace, on its roots and names."""
        e = self.env
        return ["nsenter", f"--net=/run/netns/{self.netns}", sys.executable, "-m", "podbay",
                "--state-root", str(e.state_root), "--run-root", str(e.run_root), "--cgroup-parent", e.cgroup_parent,
                "--network", e.network_name, "--bridge", e.bridge, "--node-name", self.node_name,
                "--cluster-cidr", cluster_cidr, "--node-cidr-mask-size", str(NODE_MASK), "--node-ip", self.address,
                "--warm-sandboxes", "0", "--api-port", "0", *(["--server", server] if server else []), *verb]

    def routes(self) -> dict[str, str]:
        out = run("ip", "-n", self.netns, "-j", "route", "show", "proto", str(ROUTE_PROTO))
        return {r["dst"]: r["gateway"] for r in json.loads(out or "[]")}

    def nat_rules(self) -> str:
        return run("ip", "netns", "exec", self.netns, "iptables-save", "-t", "nat")


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@contextlib.contextmanager
def hosts_on_a_bridge(link_env: HostEnv, envs: list[HostEnv]) -> Iterator[tuple[str, list[NetnsHost]]]:
    """A bridge with the first address of `link_env`'s subnet and, per env, a namespace plugged into it
    with the next address; all removed afterwards."""
    link = ipaddress.ip_network(link_env.subnet)
    bridge, gateway = f"{link_env.prefix}lk", str(link[1])
    hosts = [NetnsHost(env, str(link[2 + n])) for n, env in enumerate(envs)]
    try:
        run("ip", "link", "add", bridge, "type", "bridge")
        run("ip", "addr", "add", f"{gateway}/{link.prefixlen}", "dev", bridge)
        run("ip", "link", "set", bridge, "up")
        for h in hosts:
            outside, inside = f"{h.env.prefix}v", f"{h.env.prefix}e"
            run("ip", "netns", "add", h.netns)
            run("ip", "link", "add", outside, "master", bridge, "type", "veth", "peer", "name", inside,
                "netns", h.netns)
            run("ip", "link", "set", outside, "up")
            run("ip", "-n", h.netns, "addr", "add", f"{h.address}/{link.prefixlen}", "dev", inside)
            run("ip", "-n", h.netns, "link", "set", inside, "up")
            run("ip", "-n", h.netns, "link", "set", "lo", "up")
        yield gateway, hosts
    finally:
        for h in hosts:
            # The veth pair goes now, not when the kernel gets round to cleaning up the deleted
            # namespace (which the leftovers check could beat).
            subprocess.run(["ip", "link", "del", f"{h.env.prefix}v"], capture_output=True)
            subprocess.run(["ip", "netns", "del", h.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


async def wait_nodes(client: Client, names: set[str], check: Callable[[Node], bool],
                     procs: list[subprocess.Popen[bytes]], timeout: float = 90.0) -> dict[str, Node]:
    async def poll() -> dict[str, Node]:
        while True:
            assert all(p.poll() is None for p in procs), "an agent exited"
            nodes = {n.metadata.name: n for n in (await client.list(Node))[0] if n.metadata.name in names}
            if set(nodes) == names and all(check(n) for n in nodes.values()):
                return nodes
            await asyncio.sleep(0.5)
    return await asyncio.wait_for(poll(), timeout)


def ready(node: Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def running_ip(client: Client, name: str, timeout: float = 90.0) -> str:
    async def poll() -> str:
        while True:
            pod = await client.get(Pod, name, "default")
            if pod.status.phase == "Running" and pod.status.pod_ip:
                return pod.status.pod_ip
            await asyncio.sleep(0.5)
    return await asyncio.wait_for(poll(), timeout)


async def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


@contextlib.asynccontextmanager
async def agents(hosts: list[NetnsHost], cluster_cidr: str, tmp_path: Path, token: str, server: str,
                 *flags: str) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """`podbay agent` on each host, joined to `server`; stopped at the end, their logs shown on a
    failure, and each host purged (a killed agent's containers outlive it)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for h in hosts:
            with open(tmp_path / f"{h.netns}.log", "wb") as log:
                procs.append(subprocess.Popen(h.podbay(cluster_cidr, *flags, "agent", "--token", token, server=server),
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        yield procs
    except BaseException:
        for h in hosts:
            log = tmp_path / f"{h.netns}.log"
            if log.exists():
                print(f"--- {h.netns}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        raise
    finally:
        for proc in procs:
            await stop(proc)
        for h in hosts:
            subprocess.run(h.podbay(cluster_cidr, "down", "--purge"), capture_output=True)


async def test_pods_on_two_hosts_reach_each_other_by_pod_ip(host_env: HostEnv, second_host_env: HostEnv,
                                                            tmp_path: Path) -> None:
    require_root()
    # The cluster CIDR is the first host's claimed /24, cut in /26s: no other test routes it.
    cluster_cidr = host_env.subnet
    with claimed_env() as server_env, hosts_on_a_bridge(server_env, [host_env, second_host_env]) as (gateway, hosts):
        async with serve_embedded(server_env.state_root, unix_socket=server_env.run_root / "api.sock",
                                  host=gateway, port=0, node_name="api") as server:
            client = Client.connect(server.url)
            ipam = asyncio.create_task(NodeIPAM(client, cluster_cidr, NODE_MASK).run())
            try:
                async with agents(hosts, cluster_cidr, tmp_path, server.join_token, server.https_url) as procs:
                    await _exercise(client, hosts, procs, cluster_cidr)
            finally:
                ipam.cancel()
                await asyncio.gather(ipam, return_exceptions=True)
                await client.close()


async def _exercise(client: Client, hosts: list[NetnsHost], procs: list[subprocess.Popen[bytes]],
                    cluster_cidr: str) -> None:
    a, b = hosts
    nodes = await wait_nodes(client, {a.node_name, b.node_name}, lambda n: ready(n) and bool(n.spec.pod_cidr),
                             procs)
    cidrs = {name: n.spec.pod_cidr for name, n in nodes.items()}
    assert len(set(cidrs.values())) == 2
    assert all(ipaddress.ip_network(c).subnet_of(ipaddress.ip_network(cluster_cidr)) for c in cidrs.values())
    assert all(n.spec.pod_cidrs == [n.spec.pod_cidr] for n in nodes.values())
    assert {name: next(x.address for x in n.status.addresses if x.type == "InternalIP")
            for name, n in nodes.items()} == {a.node_name: a.address, b.node_name: b.address}

    # Each host routes the other's pods via the other's address, and only those.
    await wait_until(lambda: a.routes() == {cidrs[b.node_name]: b.address} and
                     b.routes() == {cidrs[a.node_name]: a.address})
    # Pods' traffic leaving the cluster is masqueraded by podbay's rule, not the bridge plugin's.
    assert f"-s {cidrs[a.node_name]} ! -d {cluster_cidr}" in a.nat_rules()

    for h in hosts:
        await client.create(from_dict(Pod, {"metadata": {"name": f"web-{h.env.prefix}"}, "spec": {
            "nodeName": h.node_name, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "web", "image": "busybox:1.35", "command": ["sh", "-c", WEB]}]}}))
    ips = {h.node_name: await running_ip(client, f"web-{h.env.prefix}") for h in hosts}
    for h in hosts:
        assert ipaddress.ip_address(ips[h.node_name]) in ipaddress.ip_network(cidrs[h.node_name])

    for src, dst in ((a, b), (b, a)):
        # busybox httpd may take a moment to listen after the container starts.
        for attempt in range(20):
            code, out, err = await client.exec(f"web-{src.env.prefix}", "default", [
                "timeout", "10", "wget", "-q", "-O", "-", f"http://{ips[dst.node_name]}:8080/cgi-bin/peer"])
            if code == 0:
                break
            await asyncio.sleep(0.5)
        assert code == 0, err.decode()
        # Not masqueraded: the receiver sees the sender's pod IP.
        # httpd listens on IPv6 too, so it names an IPv4 peer as ::ffff:a.b.c.d.
        seen = ipaddress.ip_address(out.decode().strip().strip("[]"))
        assert str(getattr(seen, "ipv4_mapped", None) or seen) == ips[src.node_name]

    for h in hosts:
        await client.delete(Pod, f"web-{h.env.prefix}", "default", grace_period_seconds=0)

    # b's address changes (to another one on the link): a replaces its route.
    moved = str(ipaddress.ip_address(b.address) + 10)
    node = await client.get(Node, b.node_name)
    node.status.addresses = [x if x.type != "InternalIP" else x.model_copy(update={"address": moved})
                             for x in node.status.addresses]
    await client.update_status(node)
    await wait_until(lambda: a.routes() == {cidrs[b.node_name]: moved})

    # b's agent stops and its Node is deleted: a drops its route to b's pods; b removed its own routes.
    await stop(procs[1])
    assert procs[1].returncode == 0
    assert b.routes() == {}
    await client.delete(Node, b.node_name)
    await wait_until(lambda: a.routes() == {})
    with pytest.raises(NotFound):
        await client.get(Node, b.node_name)


async def test_the_all_in_one_node_keeps_an_explicit_subnet(cluster: Cluster) -> None:
    node = await cluster.client.get(Node, cluster.settings.node_name)
    assert (node.spec.pod_cidr, node.spec.pod_cidrs) == (cluster.settings.subnet, [cluster.settings.subnet])


async def test_the_all_in_one_node_takes_its_pod_cidr_from_its_own_node_ipam(host_env: HostEnv) -> None:
    require_root()
    settings = dataclasses.replace(settings_for(host_env), subnet=None, cluster_cidr=host_env.subnet,
                                   node_cidr_mask_size=25)
    async with running_cluster(settings) as cluster:
        node = await cluster.client.get(Node, settings.node_name)
        assert node.spec.pod_cidr == str(next(ipaddress.ip_network(host_env.subnet).subnets(new_prefix=25)))
        await cluster.client.create(from_dict(Pod, {"metadata": {"name": "p"}, "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:1.35", "command": ["sleep", "600"]}]}}))
        pod = await cluster.wait_for("p", lambda p: p.status.phase == "Running")
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(node.spec.pod_cidr)
