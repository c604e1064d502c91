"""A create the API server answered 201 survives a SIGKILL of the server: the SQLite store commits
concurrent writes as one group, and answers none of them before that group's COMMIT has returned."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from podbay.store.sqlite import SQLiteStore
from tests.conftest import HostEnv

REPO = Path(__file__).resolve().parents[2]
CLIENTS = 20
ACKNOWLEDGED_BEFORE_KILL = 150


def pod(name: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}).encode()


async def test_creates_answered_201_survive_a_sigkill_of_the_server(host_env: HostEnv) -> None:
    state, run = host_env.state_root, host_env.run_root
    server = subprocess.Popen(
        [sys.executable, "-m", "podbay", "--state-root", str(state), "--run-root", str(run), "--api-port", "0",
         "apiserver"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        socket = run / "api.sock"
        deadline = asyncio.get_running_loop().time() + 60
        acknowledged: dict[str, dict[str, Any]] = {}
        enough = asyncio.Event()
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket))) as session:
            url = "http://localhost/api/v1/namespaces/default/pods"
            while True:
                assert asyncio.get_running_loop().time() < deadline, "the API server never answered"
                try:
                    async with session.get(url) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

            async def create(k: int) -> None:
                # Creates until the server is gone; the kill lands while some are in flight.
                for i in range(10_000):
                    name = f"p-{k}-{i}"
                    try:
                        async with session.post(url, data=pod(name),
                                                headers={"Content-Type": "application/json"}) as r:
                            body = await r.read()
                    except aiohttp.ClientError:
                        return
                    assert r.status == 201, body
                    acknowledged[name] = json.loads(body)
                    if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                        enough.set()

            creators = [asyncio.create_task(create(k)) for k in range(CLIENTS)]
            await asyncio.wait_for(enough.wait(), 120)
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
            await asyncio.wait_for(asyncio.gather(*creators), 60)
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=30)

    store = SQLiteStore(state / "store.db")
    try:
        items, _ = await store.list("pods", "default")
    finally:
        await store.close()
    stored = {p["metadata"]["name"]: p for p in items}
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    for name, answered in acknowledged.items():
        assert stored.get(name) == answered, f"pod {name} was answered 201 but is not stored as answered"
    # Each stored pod is whole; the ones in flight at the kill are stored whole or not at all.
    assert all(p["metadata"].get("uid") and p["spec"]["containers"] for p in stored.values())
