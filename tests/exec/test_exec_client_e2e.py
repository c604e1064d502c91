"""podbay's own client on the exec stream: streams, exit code, errors, and a closed
stream ending the command."""
from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest

from podbay.api.errors import BadRequest, NotFound
from podbay.api.formats import load_pods
from podbay.client import Client
from tests.exec.conftest import ExecTarget

pytestmark = pytest.mark.e2e


async def processes(client: Client, pod: str) -> str:
    code, out, _ = await client.exec(pod, "default", ["ps", "-o", "args"])
    assert code == 0
    return out.decode()


async def test_stream_exit_code_and_errors(target: ExecTarget) -> None:
    client = target.cluster.client
    async with client.exec_stream(target.pod, "default", ["sh"], stdin=True) as stream:
        await stream.write_stdin(b"echo to-out; echo to-err >&2; exit 9\n")
        seen = [chunk async for chunk in stream]
    assert b"".join(d for c, d in seen if c == 1) == b"to-out\n"
    assert b"".join(d for c, d in seen if c == 2) == b"to-err\n"
    assert stream.exit_code == 9

    with pytest.raises(NotFound, match='pods "ghost" not found'):
        async with client.exec_stream("ghost", "default", ["true"]):
            pass
    with pytest.raises(BadRequest, match="container nope is not valid"):
        async with client.exec_stream(target.pod, "default", ["true"], container="nope"):
            pass

    # The agent's refusal arrives on the error channel, after the upgrade, as the kubelet's does.
    await client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: done}
spec:
  restartPolicy: Never
  containers: [{name: main, image: "busybox:1.35", command: ["true"]}]
""")[0])
    await target.cluster.wait_for("done", lambda p: p.status.phase == "Succeeded")
    with pytest.raises(BadRequest, match='container "main" is not running'):
        async with client.exec_stream("done", "default", ["true"]) as stream:
            async for _ in stream:
                pass


async def test_a_background_child_does_not_hold_the_stream(target: ExecTarget) -> None:
    client = target.cluster.client
    async with client.exec_stream(target.pod, "default", ["sh", "-c", "sleep 300 & echo parent done"]) as stream:
        seen = [chunk async for chunk in stream]
    assert seen == [(1, b"parent done\n")] and stream.exit_code == 0


async def test_closing_the_stream_kills_the_command(target: ExecTarget) -> None:
    client = target.cluster.client
    async with client.exec_stream(target.pod, "default", ["sh", "-c", "echo started; exec sleep 4321"]) as stream:
        async for _, data in stream:
            assert data == b"started\n"
            break
        assert "sleep 4321" in await processes(client, target.pod)

    async def gone() -> None:
        while "sleep 4321" in await processes(client, target.pod):
            await asyncio.sleep(0.2)
    await asyncio.wait_for(gone(), 30)


async def test_base64_subprotocol(target: ExecTarget) -> None:
    url = f"{target.https_url}/api/v1/namespaces/default/pods/{target.pod}/exec"
    tls = Client.from_kubeconfig(target.kubeconfig).transport.tls
    params = [("command", "head"), ("command", "-n1"), ("stdin", "true"), ("stdout", "true")]
    messages = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
        async with session.ws_connect(url, params=params, protocols=("v4.base64.channel.k8s.io",)) as ws:
            assert ws.protocol == "v4.base64.channel.k8s.io"
            await ws.send_str("0" + base64.b64encode(b"only line\nnot this\n").decode())
            async for msg in ws:
                messages.append(msg.data)
    assert messages[0] == "1"  # the kubelet's empty hello on stdout
    out = b"".join(base64.b64decode(m[1:]) for m in messages if m[0] == "1")
    assert out == b"only line\n"
    assert [base64.b64decode(m[1:]) for m in messages if m[0] == "3"] == [b'{"metadata":{},"status":"Success"}']
