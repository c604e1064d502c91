"""The in-process RoundTripper `podbay up`'s own components call the API server through: against a
real server (SQLite and etcd), it answers as the same request over the unix socket does (bodies,
Status errors, field managers, the body limit) and streams watches both ways."""
from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

import aiohttp
import pytest

from podbay.api import ConfigMap, Container, ObjectMeta, Pod, PodSpec
from podbay.api.errors import APIError, Forbidden, NotFound
from podbay.apiserver.embedded import EmbeddedServer
from podbay.apiserver.params import MAX_BODY_BYTES
from podbay.client import Client
from podbay.client.inprocess import InProcessRoundTripper, in_process_client
from podbay.security.authn import UNIX_SOCKET_USER, Identity
from podbay.security.pki import MASTERS
from tests.polling import wait_until

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
_TIMEOUT = aiohttp.ClientTimeout(total=None)


def round_tripper(server: EmbeddedServer) -> InProcessRoundTripper:
    assert server.runner.server is not None
    return InProcessRoundTripper(server.runner.server, Identity(UNIX_SOCKET_USER, (MASTERS,)))


@pytest.fixture
async def clients(api_server: EmbeddedServer) -> AsyncIterator[tuple[Client, Client]]:
    """(in-process, over the unix socket), as the same user."""
    assert api_server.runner.server is not None
    local = in_process_client(api_server.runner.server, api_server.url, Identity(UNIX_SOCKET_USER, (MASTERS,)))
    http = Client.connect(api_server.url)
    try:
        yield local, http
    finally:
        await local.close()
        await http.close()


def configmap(name: str, namespace: str = "default", size: int = 0) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, namespace=namespace), data={"k": "v" * size})


async def failure(call: asyncio.Future[object] | object) -> APIError:
    with pytest.raises(APIError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_answers_are_the_sockets(clients: tuple[Client, Client]) -> None:
    local, http = clients
    made = [await c.create(configmap(f"cm-{i}")) for i, c in enumerate(clients)]
    managers = [[(e["manager"], e["operation"]) for e in m.metadata.managed_fields or []] for m in made]
    assert managers[0] == managers[1] == [("Python", "Update")]

    missing = [await failure(c.get(ConfigMap, "nope", "default")) for c in clients]
    assert all(isinstance(e, NotFound) for e in missing)
    assert [str(e) for e in missing] == ['configmaps "nope" not found'] * 2

    # Admission's refusal: a pod naming a RuntimeClass that does not exist is a 403 Status.
    refused = [await failure(c.create(Pod(metadata=ObjectMeta(name=f"p-{i}", namespace="default"), spec=PodSpec(
        containers=[Container(name="c", image="busybox")], runtime_class_name="nope")))) for i, c in enumerate(clients)]
    assert all(isinstance(e, Forbidden) for e in refused), refused
    assert [str(e) for e in refused] == [f'pods "p-{i}" is forbidden: pod rejected: RuntimeClass "nope" not found'
                                         for i in range(2)]

    items, _ = await local.list(ConfigMap, "default")
    assert sorted(str(i.metadata.name) for i in items) == ["cm-0", "cm-1"]


async def test_status_bodies_and_the_body_limit(api_server: EmbeddedServer) -> None:
    rt = round_tripper(api_server)
    async with rt.round_trip("POST", "", CONFIGMAPS, data=b"{not json", headers={"Content-Type": "application/json"},
                             timeout=_TIMEOUT) as resp:
        status = json.loads(await resp.read())
        assert resp.status == 400 and status["kind"] == "Status" and status["code"] == 400
    async with rt.round_trip("POST", "", CONFIGMAPS, data=b" " * (MAX_BODY_BYTES + 1),
                             headers={"Content-Type": "application/json"}, timeout=_TIMEOUT) as resp:
        status = json.loads(await resp.read())
        assert resp.status == 413 and status["reason"] == "RequestEntityTooLarge"
    async with rt.round_trip("GET", "", "/api/v1/nopes", timeout=_TIMEOUT) as resp:
        assert resp.status == 404 and json.loads(await resp.read())["reason"] == "NotFound"
    async with rt.round_trip("GET", "", "/healthz", timeout=_TIMEOUT) as resp:
        assert resp.status == 200 and await resp.read() == b"ok"


async def test_watch_sees_changes_and_ends_when_the_server_ends_it(clients: tuple[Client, Client],
                                                                   api_server: EmbeddedServer) -> None:
    local, http = clients
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for kind, cm in local.watch(ConfigMap, "default"):
            seen.append((kind, str(cm.metadata.name)))
            if kind == "DELETED":
                return
    watching = asyncio.create_task(watch())
    made = await http.create(configmap("w"))
    made.data = {"k": "changed"}
    await http.update(made)
    await http.delete(ConfigMap, "w", "default")
    await asyncio.wait_for(watching, 30)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]

    # More than the reader buffers (flow control holds the handler), then the server's timeout ends it.
    for i in range(40):
        await http.create(configmap(f"big-{i}", size=8192))
    rt = round_tripper(api_server)
    async with rt.round_trip("GET", "", CONFIGMAPS, params={"watch": "1", "timeoutSeconds": "1"},
                             timeout=_TIMEOUT) as resp:
        assert resp.status == 200
        lines = [json.loads(line) async for line in resp.content]
    assert sorted((e["type"], e["object"]["metadata"]["name"]) for e in lines) == sorted(
        ("ADDED", f"big-{i}") for i in range(40))


async def test_a_watch_the_client_leaves_ends_its_handler(api_server: EmbeddedServer) -> None:
    rt = round_tripper(api_server)
    handlers_before = len(asyncio.all_tasks())
    async with rt.round_trip("GET", "", CONFIGMAPS, params={"watch": "1"}, timeout=_TIMEOUT) as resp:
        assert resp.status == 200
        assert len(asyncio.all_tasks()) > handlers_before
    # The handler and its store watch are gone, not left waiting for an event to write.
    await wait_until(lambda: len(asyncio.all_tasks()) <= handlers_before, "the watch handler to end", 10)


async def test_a_write_its_client_gave_up_on_is_still_made(clients: tuple[Client, Client]) -> None:
    """As behind a dropped connection: the server finishes what it was handed."""
    local, http = clients
    creating = asyncio.create_task(local.create(configmap("abandoned")))
    await asyncio.sleep(0)  # the request is handed over, not answered
    creating.cancel()

    async def made() -> str:
        async for _, cm in http.watch(ConfigMap, "default"):
            return str(cm.metadata.name)
        raise AssertionError("watch ended")
    assert await asyncio.wait_for(made(), 10) == "abandoned"
    assert creating.cancelled()
