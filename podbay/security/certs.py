"""The cluster's certificates checked and made, run as a short-lived child process by
`podbay.security.pki` (`python -m podbay.security.certs cluster DIR NAME...` or
`... self-signed CERT KEY CN NAME...`), so that only this process loads the cryptography package."""
from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podbay.security.pki import ADMIN_USER, APISERVER_CLIENT_USER, MASTERS, ClusterPKI, KeyPair
from podbay.security.tls import write_private

CA_DAYS = 3650
LEAF_DAYS = 365

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def make_cluster_pki(directory: Path, server_names: tuple[str, ...]) -> None:
    """`pki.ensure_cluster_pki`'s work: the files under `directory` (0700), made where missing; the
    serving certificate is made again when it no longer covers `server_names`."""
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


def make_self_signed(pair: KeyPair, cn: str, server_names: tuple[str, ...]) -> None:
    """`pki.ensure_self_signed`'s work: the pair, made again unless usable for `server_names`."""
    try:
        cert, _ = _load(pair)
        if _usable(pair, cert, server_names):
            return
    except (OSError, ValueError):
        pass
    pair.cert.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(pair.cert.parent, 0o700)
    cert_pem, key_pem = issue(None, cn, server_names=server_names)
    write_private(pair.key, key_pem)
    write_private(pair.cert, cert_pem)


USAGE = "usage: python -m podbay.security.certs cluster DIR NAME... | self-signed CERT KEY CN NAME..."


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["cluster", directory, *names]:
                make_cluster_pki(Path(directory), tuple(names))
            case ["self-signed", cert, key, cn, *names]:
                make_self_signed(KeyPair(Path(cert), Path(key)), cn, tuple(names))
            case _:
                print(USAGE, file=sys.stderr)
                return 2
    except (OSError, ValueError) as exc:
        # One line for the server to raise and log, not a traceback.
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
