"""Joining is one command: `podbay up --embedded-etcd` keeps the cluster in an etcd of its own and
prints the command that joins another node; `podbay join` runs that node's agent in the background
until `podbay down`. A killed server leaves its etcd running and adopts it when started again."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from podbay.cli.server import running_pid
from tests.cli.podbay_cli import podbay_cli, wait_until
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import settings_for

pytestmark = pytest.mark.e2e


def free_port_pair() -> int:
    """A loopback port whose next one is free too: etcd's client and peer ports."""
    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port


def etcd_pid(env: HostEnv) -> int:
    return int((env.run_root / "etcd.pid").read_text())


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_up_prints_the_join_and_join_runs_a_node_until_down(
        host_env: HostEnv, second_host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    server, node = podbay_cli(host_env), podbay_cli(second_host_env)
    node_name = f"node-{second_host_env.prefix}"
    etcd_port = free_port_pair()
    up = server("up", "--embedded-etcd", "--embedded-etcd-port", str(etcd_port))
    joined = False
    try:
        command = re.search(r"podbay --node-ip <ITS-IP> join --server (https://\S+) --token (K10\S+)", up.stdout)
        assert command, up.stdout
        url, token = command.groups()
        assert token == (host_env.state_root / "node-token").read_text().strip()

        out = node("join", "--server", url, "--token", token).stdout
        joined = True
        assert f"node {node_name} joined {url}" in out
        agent_pid = running_pid(settings_for(second_host_env))
        assert agent_pid is not None
        # The token is the cluster's credential: passed in the environment, never on a command line.
        assert token.encode() not in Path(f"/proc/{agent_pid}/cmdline").read_bytes()

        def ready_nodes() -> set[str]:
            nodes = json.loads(server("get", "nodes", "-o", "json").stdout)["items"]
            return {n["metadata"]["name"] for n in nodes
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
        wait_until(lambda: {f"node-{host_env.prefix}", node_name} <= ready_nodes())

        # The objects are in the embedded etcd, under kube-apiserver's keys.
        keys = subprocess.run(["etcdctl", f"--endpoints=http://127.0.0.1:{etcd_port}", "get", "--prefix",
                               "/registry/minions/", "--keys-only"], capture_output=True, text=True, check=True,
                              env={**os.environ, "ETCDCTL_API": "3"}, timeout=30).stdout
        assert f"/registry/minions/{node_name}" in keys.split()

        # A pod for the joined node runs there.
        manifest = tmp_path / "pod.json"
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "there"}, "spec": {
            "nodeName": node_name, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:1.35", "command": ["sleep", "600"]}]}}))
        server("apply", "-f", str(manifest))
        wait_until(lambda: json.loads(server("get", "pod", "there", "-o", "json").stdout)
                   .get("status", {}).get("phase") == "Running", timeout=120)

        # The server SIGKILLed: its etcd stays, and the next `up` uses it rather than a second one.
        etcd = etcd_pid(host_env)
        os.kill(int(settings_for(host_env).pidfile.read_text()), signal.SIGKILL)
        wait_until(lambda: running_pid(settings_for(host_env)) is None)
        assert alive(etcd)
        server("up", "--embedded-etcd", "--embedded-etcd-port", str(etcd_port))
        assert etcd_pid(host_env) == etcd
        assert json.loads(server("get", "pod", "there", "-o", "json").stdout)["spec"]["nodeName"] == node_name

        # `podbay down` on the node stops its agent; on the server, the server and its etcd.
        assert "stopped" in node("down").stdout
        joined = False
        assert not alive(agent_pid)
        server("down")
        wait_until(lambda: not alive(etcd))
        assert not (host_env.run_root / "etcd.pid").exists()
    finally:
        if joined:
            node("down", check=False)
        node("down", "--purge", check=False)
        server("down", "--purge", check=False)
