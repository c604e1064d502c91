"""The certificates are made by `python -m podbay.security.certs` in a child process: what it
makes, what it reuses, and how its failure reaches the server."""
from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from podbay.security.pki import KeyPair, ensure_cluster_pki, ensure_self_signed


def test_the_child_makes_the_cluster_pki_once_and_reuses_it(tmp_path: Path) -> None:
    pki = ensure_cluster_pki(tmp_path / "pki", ("localhost", "127.0.0.1"))
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    made = {p.name: p.read_bytes() for p in pki.directory.iterdir()}
    assert set(made) == {f"{n}.{ext}" for n in ("ca", "apiserver", "admin", "apiserver-kubelet-client")
                         for ext in ("crt", "key")}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in pki.directory.iterdir())
    again = ensure_cluster_pki(tmp_path / "pki", ("localhost", "127.0.0.1"))
    assert {p.name: p.read_bytes() for p in again.directory.iterdir()} == made


def test_the_child_makes_a_self_signed_pair_again_only_for_new_names(tmp_path: Path) -> None:
    pair = KeyPair(tmp_path / "pki" / "agent.crt", tmp_path / "pki" / "agent.key")
    assert ensure_self_signed(pair, "node-agent", ("localhost",)) == pair
    first = pair.cert.read_bytes()
    ensure_self_signed(pair, "node-agent", ("localhost",))
    assert pair.cert.read_bytes() == first
    ensure_self_signed(pair, "node-agent", ("localhost", "10.0.0.7"))
    assert pair.cert.read_bytes() != first


def test_a_failure_in_the_child_is_raised_with_its_cause_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RuntimeError, match="making certificates failed: .*Not a directory"):
        ensure_cluster_pki(blocker / "pki", ("localhost",))
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_the_child_refuses_an_unknown_request() -> None:
    proc = subprocess.run([sys.executable, "-m", "podbay.security.certs", "renew-everything"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: python -m podbay.security.certs")
