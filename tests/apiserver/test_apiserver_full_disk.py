"""A full disk under the store: creates answer 503 with Retry-After, store nothing, and
succeed again once space is freed. The store lives on a tiny tmpfs this test mounts."""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest

from podbay.apiserver.embedded import serve_embedded
from podbay.store.sqlite import SQLiteStore

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Writes a file until the disk has no byte left; returns it."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    return filler
                chunk = chunk[: len(chunk) // 2]


async def test_a_create_on_a_full_disk_is_503_with_retry_after_and_stores_nothing(
    tmp_path: Path, tiny_disk: Path
) -> None:
    store = SQLiteStore(tiny_disk / "store.db")
    try:
        async with serve_embedded(tmp_path / "api", host=None, store=store) as server:
            config_map = {"metadata": {"name": "big"}, "data": {"blob": "x" * 256 * 1024}}
            connector = aiohttp.UnixConnector(path=str(server.socket_path))
            async with aiohttp.ClientSession("http://localhost", connector=connector) as http:
                filler = fill(tiny_disk)

                async with http.post(CONFIGMAPS, json=config_map) as response:
                    status = await response.json()
                    assert response.status == 503, status
                    assert response.headers["Retry-After"] == str(status["details"]["retryAfterSeconds"])
                assert status["reason"] == "ServiceUnavailable"
                assert "insufficient storage" in status["message"] and "disk is full" in status["message"]

                async with http.get(f"{CONFIGMAPS}/big") as response:
                    assert response.status == 404
                async with http.get(CONFIGMAPS) as response:
                    assert (await response.json())["items"] == []
                async with http.get("/healthz") as response:
                    assert response.status == 200

                os.unlink(filler)
                async with http.post(CONFIGMAPS, json=config_map) as response:
                    assert response.status == 201, await response.text()
                async with http.get(f"{CONFIGMAPS}/big") as response:
                    assert (await response.json())["data"]["blob"] == config_map["data"]["blob"]
    finally:
        await store.close()
