"""No unauthenticated access from beyond this machine."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from podbay.apiserver import auth
from podbay.apiserver.app import serve
from podbay.store.sqlite import SQLiteStore


def test_loopback_and_socket_need_no_token_others_do() -> None:
    assert auth.authorized(("127.0.0.1", 5000), None, "t")
    assert auth.authorized(("::1", 5000, 0, 0), None, "t")
    assert auth.authorized("", None, "t")  # the unix socket
    assert not auth.authorized(("192.0.2.7", 5000), None, "t")
    assert auth.authorized(("192.0.2.7", 5000), "Bearer t", "t")
    assert not auth.authorized(("192.0.2.7", 5000), "Bearer wrong", "t")
    assert not auth.authorized(("127.0.0.1", 5000), "Bearer wrong", "t")


async def test_a_non_loopback_listener_requires_a_token(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    with pytest.raises(ValueError, match="requires a bearer token"):
        await serve(store, host="0.0.0.0", port=0)
    token_file = tmp_path / "api-token"
    runner = await serve(store, host="0.0.0.0", port=0, token_file=token_file)
    try:
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and len(token_file.read_text().strip()) >= 32
    finally:
        await runner.cleanup()
        await store.close()
