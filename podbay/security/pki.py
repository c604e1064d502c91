"""The cluster's certificates, made at first start and reused: a CA, the API server's
serving certificate, the admin's client certificate and the API server's client
certificate for the node agents (kubeadm's apiserver-kubelet-client).

Keys are ECDSA P-256 (as k3s): quick to make, understood by kubectl and Python's ssl.
Files are written 0600 in a 0700 directory, each whole or not at all.
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podbay.security.tls import client_context, write_private

CA_DAYS = 3650
LEAF_DAYS = 365
ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"
APISERVER_CLIENT_USER = "kube-apiserver-kubelet-client"
# k3s's join token prefix: K10<sha256 of the CA bundle>::<secret>
JOIN_PREFIX = "K10"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _load(pair: KeyPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pair.key} is not an ECDSA key")
    return cert, key


def issue(ca: KeyPair | None, cn: str, orgs: tuple[str, ...] = (), *, server_names: tuple[str, ...] = (),
          client: bool = False, not_before: datetime.datetime | None = None,
          not_after: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """A certificate (PEM) and its key (PEM) signed by `ca`; self-signed when `ca` is None.
    `server_names` (DNS names or IP addresses) make it a serving certificate."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = _new_key()
    if ca is None:
        issuer_name, signer = _name(cn, orgs), key
    else:
        ca_cert, signer = _load(ca)
        issuer_name = ca_cert.subject
    builder = (x509.CertificateBuilder().subject_name(_name(cn, orgs)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
               .not_valid_after(not_after or now + datetime.timedelta(days=LEAF_DAYS)))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in server_names]),
                                        critical=False)
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _make_ca(pair: KeyPair) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    key = _new_key()
    name = _name(f"podbay-ca@{int(now.timestamp())}")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    write_private(pair.key, _key_pem(key))
    write_private(pair.cert, cert.public_bytes(serialization.Encoding.PEM))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _usable(pair: KeyPair, ca: x509.Certificate, names: tuple[str, ...] = ()) -> bool:
    """The pair exists, is signed by `ca`, is valid for a while yet and covers `names`."""
    try:
        cert, _ = _load(pair)
    except (OSError, ValueError):
        return False
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    if cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) < datetime.timedelta(days=30):
        return False
    if not names:
        return True
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    covered = {str(n) for n in sans.get_values_for_type(x509.DNSName)} | {
        str(n) for n in sans.get_values_for_type(x509.IPAddress)}
    return {str(_normal(n)) for n in names} <= covered


def _normal(name: str) -> str | IPAddress:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return name


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


def ensure_cluster_pki(directory: Path, server_names: tuple[str, ...]) -> ClusterPKI:
    """The PKI under `directory` (0700), made where missing; the serving certificate is
    made again when it no longer covers `server_names`."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pki = ClusterPKI.at(directory)
    if not (pki.ca.cert.exists() and pki.ca.key.exists()):
        _make_ca(pki.ca)
    ca_cert, _ = _load(pki.ca)
    wanted: list[tuple[KeyPair, str, tuple[str, ...], tuple[str, ...], bool]] = [
        (pki.server, "kube-apiserver", (), server_names, False),
        (pki.admin, ADMIN_USER, (MASTERS,), (), True),
        (pki.apiserver_client, APISERVER_CLIENT_USER, (MASTERS,), (), True),
    ]
    for pair, cn, orgs, names, client in wanted:
        if not _usable(pair, ca_cert, names):
            cert, key = issue(pki.ca, cn, orgs, server_names=names, client=client)
            write_private(pair.key, key)
            write_private(pair.cert, cert)
    return pki


def ensure_self_signed(pair: KeyPair, cn: str, server_names: tuple[str, ...]) -> KeyPair:
    """A serving certificate for a node agent that has no CA key (kube-apiserver, by default,
    does not verify the kubelet's serving certificate either)."""
    try:
        cert, _ = _load(pair)
        if _usable(pair, cert, server_names):
            return pair
    except (OSError, ValueError):
        pass
    pair.cert.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(pair.cert.parent, 0o700)
    cert_pem, key_pem = issue(None, cn, server_names=server_names)
    write_private(pair.key, key_pem)
    write_private(pair.cert, cert_pem)
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
