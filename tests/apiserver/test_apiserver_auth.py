"""Credentials on the TCP API: a client certificate signed by the cluster CA or the bearer
token; nobody else, whatever address they come from. Against a real server."""
from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import stat
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from podbay.apiserver.app import serve
from podbay.apiserver.embedded import EmbeddedServer, serve_embedded
from podbay.client import Client
from podbay.security.certs import issue
from podbay.security.pki import KeyPair, client_context, ensure_cluster_pki, write_private
from podbay.store.sqlite import SQLiteStore

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
PODS = "/api/v1/namespaces/default/pods"


async def fetch(url: str, tls: ssl.SSLContext, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http:
        async with http.get(url, headers=headers or {}) as response:
            return response.status, await response.read()


def verify_only(server: EmbeddedServer) -> ssl.SSLContext:
    return client_context(server.pki.ca_pem())


def mallory(ca: KeyPair, **validity: datetime.datetime) -> tuple[bytes, bytes]:
    return issue(ca, "mallory", ("system:masters",), client=True, **validity)  # type: ignore[arg-type]


async def test_anonymous_gets_kube_apiservers_401_status(api_server: EmbeddedServer) -> None:
    code, body = await fetch(api_server.https_url + PODS, verify_only(api_server))
    assert code == 401 and json.loads(body) == UNAUTHORIZED
    code, _ = await fetch(api_server.https_url + PODS, verify_only(api_server), {"Authorization": "Bearer wrong"})
    assert code == 401
    code, _ = await fetch(api_server.https_url + PODS, verify_only(api_server), {"Authorization": "Basic eDp5"})
    assert code == 401


async def test_public_info_is_anonymous(api_server: EmbeddedServer) -> None:
    for path in ("/healthz", "/readyz", "/livez", "/version"):
        code, _ = await fetch(api_server.https_url + path, verify_only(api_server))
        assert code == 200, path
    code, ca = await fetch(api_server.https_url + "/cacerts", verify_only(api_server))
    assert code == 200 and ca == api_server.pki.ca_pem()


async def test_the_token_and_the_admin_certificate_are_let_in(api_server: EmbeddedServer) -> None:
    code, body = await fetch(api_server.https_url + PODS, verify_only(api_server),
                             {"Authorization": f"Bearer {api_server.token}"})
    assert code == 200 and json.loads(body)["kind"] == "PodList"
    pki = api_server.pki
    admin = client_context(pki.ca_pem(), pki.admin.cert.read_bytes(), pki.admin.key.read_bytes())
    code, body = await fetch(api_server.https_url + PODS, admin)
    assert code == 200 and json.loads(body)["kind"] == "PodList"


async def test_expired_and_foreign_certificates_are_refused(api_server: EmbeddedServer, tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = mallory(api_server.pki.ca, not_before=now - datetime.timedelta(days=2),
                        not_after=now - datetime.timedelta(days=1))
    foreign_pki = ensure_cluster_pki(tmp_path / "foreign", ("localhost",))
    foreign = mallory(foreign_pki.ca)
    for cert, key in (expired, foreign):
        tls = client_context(api_server.pki.ca_pem(), cert, key)
        # TLS refuses a certificate it cannot verify: the handshake, or the first read, fails.
        with pytest.raises(aiohttp.ClientError):
            await fetch(api_server.https_url + PODS, tls)


async def test_a_client_that_does_not_know_the_ca_does_not_trust_the_server(api_server: EmbeddedServer) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await fetch(api_server.https_url + PODS, ssl.create_default_context())


async def test_tcp_without_credentials_to_check_does_not_start(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    try:
        with pytest.raises(ValueError, match="requires the cluster PKI and a bearer token"):
            await serve(store, host="127.0.0.1", port=0)
    finally:
        await store.close()


async def test_files_are_private_and_reused(tmp_path: Path) -> None:
    root = tmp_path / "api"
    async with serve_embedded(root) as server:
        first_ca = server.pki.ca_pem()
        assert server.kubeconfig is not None
        assert stat.S_IMODE(server.pki.directory.stat().st_mode) == 0o700
        for path in (server.kubeconfig, root / "api-token", root / "node-token", server.pki.ca.key,
                     server.pki.server.key, server.pki.admin.key, server.pki.apiserver_client.key):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        token = server.token
    async with serve_embedded(root) as server:
        assert server.pki.ca_pem() == first_ca and server.token == token


async def test_a_serving_certificate_that_no_longer_covers_the_address_is_made_again(tmp_path: Path) -> None:
    pki = ensure_cluster_pki(tmp_path / "pki", ("localhost",))
    cert, key = issue(pki.ca, "kube-apiserver", server_names=("localhost",))
    write_private(pki.server.cert, cert)
    write_private(pki.server.key, key)
    again = ensure_cluster_pki(tmp_path / "pki", ("localhost", "127.0.0.1"))
    assert again.server.cert.read_bytes() != cert
    assert ensure_cluster_pki(tmp_path / "pki", ("localhost", "127.0.0.1")).server.cert.read_bytes() == \
        again.server.cert.read_bytes()


async def test_the_official_client_and_podbays_client_use_the_kubeconfig(api_server: EmbeddedServer) -> None:
    assert api_server.kubeconfig is not None
    k8s_config.load_kube_config(str(api_server.kubeconfig))
    core = k8s.CoreV1Api()
    try:
        pods = await asyncio.to_thread(core.list_namespaced_pod, "default")
        assert pods.items == []
    finally:
        core.api_client.close()
    client = Client.from_kubeconfig(api_server.kubeconfig)
    try:
        assert (await client.request("GET", PODS))["kind"] == "PodList"
    finally:
        await client.close()


async def test_a_join_token_with_another_ca_hash_is_refused(api_server: EmbeddedServer) -> None:
    client, ca = await Client.join(api_server.https_url, api_server.join_token)
    try:
        assert ca == api_server.pki.ca_pem() and (await client.request("GET", PODS))["kind"] == "PodList"
    finally:
        await client.close()
    forged = "K10" + "0" * 64 + "::" + api_server.token
    with pytest.raises(ValueError, match="does not match the hash in the join token"):
        await Client.join(api_server.https_url, forged)
    with pytest.raises(ValueError, match="not a join token"):
        await Client.join(api_server.https_url, api_server.token)
