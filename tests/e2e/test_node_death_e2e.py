"""A node dies and its ReplicaSet's pods come back on the other node: two hosts (network
namespaces on a bridge, each a real `podbay agent` process, as in test_hostgw_e2e), the API
server, scheduler and controllers in the test process with short node grace periods. The agent
of the node holding pods is killed (SIGKILL, by its PID); the node lifecycle controller marks
the Node Ready=Unknown and deletes its pods; the ReplicaSet makes new ones, which the scheduler
binds to the node still alive, where they run."""
from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from pathlib import Path

import pytest

from podbay.api import Node, Pod
from podbay.api.apps import ReplicaSet
from podbay.apiserver.embedded import serve_embedded
from podbay.cli.allinone import serve_controllers
from podbay.client import Client
from tests.conftest import HostEnv, claimed_env, require_root
from tests.e2e.conftest import settings_for
from tests.e2e.test_hostgw_e2e import NODE_MASK, NetnsHost, agents, hosts_on_a_bridge, ready, wait_nodes
from tests.e2e.workloads import manifest, running, template, wait_objects

pytestmark = pytest.mark.e2e

# The agents heartbeat every NODE_GRACE/4 seconds; a node silent for NODE_GRACE is Ready=Unknown
# and its pods go EVICTION_TIMEOUT later (Kubernetes: 40 s and 5 minutes).
NODE_GRACE = 4.0
EVICTION_TIMEOUT = 1.0


async def test_a_dead_nodes_replica_set_pods_reappear_on_the_other_node(
        host_env: HostEnv, second_host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    cluster_cidr = host_env.subnet
    with claimed_env() as server_env, hosts_on_a_bridge(server_env, [host_env, second_host_env]) as (gateway, hosts):
        async with serve_embedded(server_env.state_root, unix_socket=server_env.run_root / "api.sock",
                                  host=gateway, port=0, node_name="api") as server:
            client = Client.connect(server.url)
            stop_controllers = asyncio.Event()
            settings = dataclasses.replace(
                settings_for(server_env), server=server.url, cluster_cidr=cluster_cidr,
                node_cidr_mask_size=NODE_MASK, allocate_node_cidrs=True, node_grace=NODE_GRACE,
                pod_eviction_timeout=EVICTION_TIMEOUT, node_monitor_period=0.5)
            controllers = asyncio.create_task(serve_controllers(settings, stop=stop_controllers))
            try:
                async with agents(hosts, cluster_cidr, tmp_path, server.join_token, server.https_url,
                                  "--node-grace", str(NODE_GRACE)) as procs:
                    await _exercise(client, hosts, procs)
            finally:
                stop_controllers.set()
                await asyncio.gather(controllers, return_exceptions=True)
                await client.close()


async def _exercise(client: Client, hosts: list[NetnsHost], procs: list[subprocess.Popen[bytes]]) -> None:
    names = {h.node_name for h in hosts}
    await wait_nodes(client, names, lambda n: ready(n) and bool(n.spec.pod_cidr), procs)
    labels = {"app": "survivor"}
    await client.create(manifest(ReplicaSet, "survivor", {
        "replicas": 2, "selector": {"matchLabels": labels}, "template": template(labels, grace=0)}))
    pods = await wait_objects(client, Pod, lambda ps: len(running(ps)) == 2, label_selector="app=survivor",
                              what="the set's pods", timeout=120)
    doomed = pods[0].spec.node_name
    victim = next(i for i, h in enumerate(hosts) if h.node_name == doomed)
    survivor = (names - {doomed}).pop()
    on_doomed = {p.metadata.name for p in pods if p.spec.node_name == doomed}

    procs[victim].kill()  # the node's agent dies without a word; its containers run on
    await asyncio.to_thread(procs[victim].wait)
    # The node goes Ready=Unknown, its pods are deleted, and the set's new pods run on the survivor.
    moved = await wait_objects(client, Pod, lambda ps: len(running(ps)) == 2 and not on_doomed & {
        p.metadata.name for p in ps} and all(p.spec.node_name == survivor for p in running(ps)),
        label_selector="app=survivor", what="the pods on the surviving node", timeout=120)
    assert len(moved) == 2
    node = await client.get(Node, doomed)
    assert [(c.status, c.reason) for c in node.status.conditions if c.type == "Ready"] == [
        ("Unknown", "NodeStatusUnknown")]
    rs = await client.get(ReplicaSet, "survivor", "default")
    assert rs.spec.replicas == 2
    await client.delete(ReplicaSet, "survivor", "default", propagation_policy="Background")
    await wait_objects(client, Pod, lambda ps: not ps, label_selector="app=survivor", what="the set's pods gone")
