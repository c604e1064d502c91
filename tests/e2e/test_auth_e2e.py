"""The attack this closes: any local user was root through the TCP API (a pod with a
hostPath /etc volume, then its log) and through the agent's logs/exec port. Run as
`nobody` against the real all-in-one server, with curl."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import stat
import subprocess
from typing import AsyncIterator

import aiohttp
import pytest

from podbay.api import Node, Pod
from podbay.api.formats import load_pods
from podbay.security.pki import client_context
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import Cluster, free_port, running_cluster, settings_for

pytestmark = pytest.mark.e2e

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
STEAL = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "steal"},
         "spec": {"containers": [{"name": "c", "image": "busybox:1.35", "command": ["cat", "/host/shadow"],
                                  "volumeMounts": [{"name": "etc", "mountPath": "/host"}]}],
                  "volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}]}}
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


@pytest.fixture
async def cluster(host_env: HostEnv) -> AsyncIterator[Cluster]:
    require_root()
    # Traversable directories, as /var/lib is: podbay itself must make its state private.
    for d in (host_env.state_root.parent, host_env.state_root, host_env.run_root):
        os.chmod(d, 0o755)
    settings = dataclasses.replace(settings_for(host_env), api_port=free_port())
    async with running_cluster(settings) as running:
        yield running


async def as_nobody(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    # The server runs on this loop: the subprocess must not block it.
    proc = await asyncio.create_subprocess_exec(*NOBODY, *argv, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return subprocess.CompletedProcess(argv, proc.returncode or 0, out, err)


async def curl(*args: str, stdin: bytes = b"") -> tuple[int, bytes]:
    """(HTTP status, body) of curl run as nobody; -k: nobody cannot read the CA, and need not to be refused."""
    done = await as_nobody("curl", "-sS", "-k", "-o", "-", "-w", "\n%{http_code}", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    body, _, code = done.stdout.rpartition(b"\n")
    return int(code), body


async def test_nobody_cannot_create_a_hostpath_pod_through_the_tcp_api(cluster: Cluster) -> None:
    url = f"https://127.0.0.1:{cluster.settings.api_port}/api/v1/namespaces/default/pods"
    code, body = await curl("-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-", url,
                            stdin=json.dumps(STEAL).encode())
    assert code == 401 and json.loads(body) == UNAUTHORIZED
    code, body = await curl("-H", "Authorization: Bearer guessed", url)
    assert code == 401 and json.loads(body) == UNAUTHORIZED
    pods, _ = await cluster.client.list(Pod, "default")
    assert [p.metadata.name for p in pods] == []


async def test_nobody_cannot_use_the_agents_logs_or_exec(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: victim}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: "busybox:1.35", command: [sh, -c, "echo secret-log; sleep 3600"]}]
""")[0])
    await cluster.wait_for("victim", lambda p: p.status.phase == "Running")
    node = await cluster.client.get(Node, cluster.settings.node_name)
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    agent = f"https://127.0.0.1:{port}"
    code, body = await curl(f"{agent}/containerLogs/default/victim/c")
    assert code == 401 and json.loads(body) == UNAUTHORIZED
    code, body = await curl("-X", "POST", f"{agent}/exec/default/victim/c?command=cat&command=/etc/shadow")
    assert code == 401 and b"root:" not in body
    code, _ = await curl(f"{agent}/healthz")
    assert code == 401
    # The API server presents its client certificate to the agent: the admin's way through works.
    assert (await cluster.client.exec("victim", "default", ["echo", "via-api"]))[1] == b"via-api\n"
    # ... and so does the cluster token, which only root (and joined nodes) can read.
    token = (cluster.settings.state_root / "api-token").read_text().strip()
    unverified = aiohttp.TCPConnector(ssl=client_context(None, verify=False))
    async with aiohttp.ClientSession(connector=unverified) as http:
        async with http.get(f"{agent}/containerLogs/default/victim/c",
                            headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200 and b"secret-log" in await response.read()


async def test_nobody_cannot_read_credentials_or_reach_the_socket(cluster: Cluster) -> None:
    settings = cluster.settings
    pki = settings.state_root / "pki"
    for private in (settings.state_root, settings.run_root, pki):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, private
    secrets = [settings.kubeconfig, settings.state_root / "api-token", settings.state_root / "node-token",
               *sorted(pki.glob("*.key"))]
    assert len(secrets) >= 8
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        denied = await as_nobody("cat", str(path))
        assert denied.returncode != 0 and b"Permission denied" in denied.stderr, path
    assert stat.S_IMODE(settings.socket_path.stat().st_mode) == 0o600
    refused = await as_nobody("curl", "-sS", "--unix-socket", str(settings.socket_path),
                              "http://localhost/api/v1/namespaces/default/pods")
    assert refused.returncode != 0 and refused.stdout == b""

