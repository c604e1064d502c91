"""Pure rules of the credentials: join tokens and reading kubeconfigs."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from podbay.security import kubeconfig
from podbay.security.pki import ca_hash, join_token, parse_join_token


def test_a_join_token_carries_the_ca_hash_and_the_secret() -> None:
    token = join_token(b"CA PEM", "s3cret")
    assert token == f"K10{ca_hash(b'CA PEM')}::s3cret"
    assert parse_join_token(token) == (ca_hash(b"CA PEM"), "s3cret")
    for bad in ("s3cret", "K10abc::s3cret", f"K10{ca_hash(b'x')}::", f"X10{ca_hash(b'x')}::s"):
        with pytest.raises(ValueError, match="not a join token"):
            parse_join_token(bad)


def test_a_written_kubeconfig_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig.render("https://127.0.0.1:6443", b"CA", b"CERT", b"KEY"))
    creds = kubeconfig.load(path)
    assert (creds.server, creds.ca, creds.cert, creds.key, creds.token, creds.namespace) == (
        "https://127.0.0.1:6443", b"CA", b"CERT", b"KEY", None, "default")


def test_files_named_relative_to_the_kubeconfig_and_tokens(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"CA")
    path = tmp_path / "config"
    path.write_text(f"""
apiVersion: v1
kind: Config
current-context: a
contexts:
- {{name: a, context: {{cluster: c, user: u}}}}
- {{name: b, context: {{cluster: missing, user: u}}}}
clusters:
- {{name: c, cluster: {{server: "https://h:1", certificate-authority: ca.crt}}}}
users:
- {{name: u, user: {{token: T, client-key-data: {base64.b64encode(b"K").decode()}}}}}
""")
    creds = kubeconfig.load(path)
    assert (creds.ca, creds.token, creds.key, creds.cert) == (b"CA", "T", b"K", None)
    with pytest.raises(ValueError, match="no cluster named 'missing'"):
        kubeconfig.load(path, "b")
    with pytest.raises(ValueError, match="no context named 'z'"):
        kubeconfig.load(path, "z")
    with pytest.raises(ValueError, match="cannot read the kubeconfig"):
        kubeconfig.load(tmp_path / "absent")
