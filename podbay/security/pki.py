"""The cluster's certificates, made at first start and reused: a CA, the API server's
serving certificate, the admin's client certificate and the API server's client
certificate for the node agents (kubeadm's apiserver-kubelet-client).

Keys are ECDSA P-256 (as k3s): quick to make, understood by kubectl and Python's ssl.
Files are written 0600 in a 0700 directory, each whole or not at all.

The certificates are checked and made by a short-lived child process (`podbay.security.certs`):
the cryptography package that takes is ~10 MiB resident, which a long-running server would
otherwise keep for nothing after its start. Serving needs only the ssl module.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from podbay.security.tls import client_context, write_private

ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"
APISERVER_CLIENT_USER = "kube-apiserver-kubelet-client"
# k3s's join token prefix: K10<sha256 of the CA bundle>::<secret>
JOIN_PREFIX = "K10"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPKI:
    directory: Path
    ca: KeyPair
    server: KeyPair
    admin: KeyPair
    apiserver_client: KeyPair  # presented to the node agents

    @classmethod
    def at(cls, directory: Path) -> "ClusterPKI":
        def pair(name: str) -> KeyPair:
            return KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
        return cls(directory, pair("ca"), pair("apiserver"), pair("admin"), pair("apiserver-kubelet-client"))

    def ca_pem(self) -> bytes:
        return self.ca.cert.read_bytes()


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


def join_token(ca_pem: bytes, secret: str) -> str:
    return f"{JOIN_PREFIX}{ca_hash(ca_pem)}::{secret}"


def parse_join_token(token: str) -> tuple[str, str]:
    """(CA hash, secret) of `K10<sha256 hex>::<secret>`."""
    head, sep, secret = token.partition("::")
    digest = head[len(JOIN_PREFIX):]
    if not head.startswith(JOIN_PREFIX) or not sep or not secret or len(digest) != 64:
        raise ValueError("the token is not a join token (K10<sha256 of the cluster CA>::<secret>, as "
                         "<state-root>/node-token on the API server's machine holds)")
    return digest, secret


def host_names(node_name: str, address: str | None) -> tuple[str, ...]:
    """The names a client on this machine or beyond may reach the API server by."""
    names = ["localhost", "127.0.0.1", "::1", node_name, socket.gethostname()]
    try:
        names += [str(info[4][0]).partition("%")[0] for info in socket.getaddrinfo(socket.gethostname(), None)]
    except OSError:
        pass
    if address and not (_is_ip(address) and ipaddress.ip_address(address).is_unspecified):
        names.append(address)
    return tuple(dict.fromkeys(n for n in names if n))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


# Generous: the child imports cryptography and, the first time, makes four keys, on a loaded machine.
CERTS_TIMEOUT = 120.0


def _certs(*args: str) -> None:
    # The child imports this very podbay, however this process found it (installed, a checkout).
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "podbay.security.certs", *args], capture_output=True, text=True,
                          timeout=CERTS_TIMEOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"making certificates failed: {proc.stderr.strip()[-2000:]}")


def ensure_cluster_pki(directory: Path, server_names: tuple[str, ...]) -> ClusterPKI:
    """The PKI under `directory` (0700), made where missing; the serving certificate is
    made again when it no longer covers `server_names`."""
    _certs("cluster", str(directory), *server_names)
    return ClusterPKI.at(directory)


def ensure_self_signed(pair: KeyPair, cn: str, server_names: tuple[str, ...]) -> KeyPair:
    """A serving certificate for a node agent that has no CA key (kube-apiserver, by default,
    does not verify the kubelet's serving certificate either)."""
    _certs("self-signed", str(pair.cert), str(pair.key), cn, *server_names)
    return pair


def server_context(serving: KeyPair, client_ca: bytes) -> ssl.SSLContext:
    """TLS for a listener: client certificates are optional, but one that is presented must be
    signed by `client_ca` and valid (kube-apiserver's VerifyClientCertIfGiven)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(serving.cert, serving.key)
    ctx.load_verify_locations(cadata=client_ca.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # aiohttp speaks HTTP/1.1 only; saying so keeps Go clients from trying HTTP/2.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
