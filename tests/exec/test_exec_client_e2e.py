"""podbay's own client on the exec stream: streams, exit code, errors, and a closed
stream ending the command."""
from __future__ import annotations

import asyncio

import pytest

from podbay.api.errors import BadRequest, NotFound
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
