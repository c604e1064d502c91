"""Pulling from a real registry (Debian's docker-registry) on 127.0.0.1."""
from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from images_registry import RegistryFactory
from images_layouts import busybox_layer, write_layout

from podbay.runtime.images import ImageStore, pull
from podbay.runtime.images.registry import PullError

pytestmark = pytest.mark.e2e


@pytest.fixture
def layouts(tmp_path: Path) -> dict[str, Path]:
    layer = busybox_layer(tmp_path)
    write_layout(tmp_path / "one", layer, "one")
    write_layout(tmp_path / "multi", layer, "multi", archs=("arm64", "amd64", "ppc64le"))
    return {"one": tmp_path / "one", "multi": tmp_path / "multi"}


def assert_runs(store: ImageStore, ref: str) -> None:
    [layer] = store.mount_layers(ref)
    out = subprocess.run(["chroot", str(layer), "/bin/sh", "-c", "echo ok"], capture_output=True, text=True)
    assert out.stdout == "ok\n"


async def test_pull_by_tag_and_digest_oci_and_docker_manifests(store: ImageStore, start_registry: RegistryFactory,
                                                             layouts: dict[str, Path]) -> None:
    registry = start_registry()
    registry.push(f"oci:{layouts['one']}:one", "busybox:1.35")
    registry.push(f"oci:{layouts['one']}:one", "library/docker:v2s2", "--format", "v2s2")
    seen: dict[str, tuple[int, int]] = {}

    image = await pull(store, f"{registry.host}/busybox:1.35",
                             progress=lambda d, done, total: seen.__setitem__(d, (done, total)))
    assert image.repo_tags == [f"{registry.host}/busybox:1.35"]
    [repo_digest] = image.repo_digests
    assert repo_digest.startswith(f"{registry.host}/busybox@sha256:")
    assert image.config.cmd == ["sh"] and "ARCH=amd64" in image.config.env
    assert len(seen) == 2 and all(done == total > 0 for done, total in seen.values())  # config and layer
    assert_runs(store, f"{registry.host}/busybox:1.35")
    assert store.image_status(repo_digest) == image

    docker = await pull(store, f"{registry.host}/library/docker:v2s2")
    assert docker.id == image.id  # the same config pulled from another repository is the same image
    [manifest_digest] = [d.split("@")[1] for d in docker.repo_digests if d.startswith(f"{registry.host}/library/")]
    manifest = json.loads(store.content.blob_path(manifest_digest).read_bytes())
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    by_digest = await pull(store, f"{registry.host}/library/docker@{manifest_digest}")
    assert by_digest == store.image_status(f"{registry.host}/library/docker:v2s2")


async def test_pull_an_index_takes_linux_amd64(store: ImageStore, start_registry: RegistryFactory,
                                               layouts: dict[str, Path]) -> None:
    registry = start_registry()
    registry.push(f"oci:{layouts['multi']}:multi", "multi:v1", "--all")
    registry.push(f"oci:{layouts['multi']}:multi", "multi:v2s2", "--all", "--format", "v2s2")
    for tag in ("v1", "v2s2"):
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/multi:{tag}"],
                             capture_output=True, check=True).stdout
        assert len(json.loads(raw)["manifests"]) == 3
        image = await pull(store, f"{registry.host}/multi:{tag}")
        assert "ARCH=amd64" in image.config.env, tag
        # The repo digest is the index's, as `docker pull` reports it.
        assert f"{registry.host}/multi@sha256:{hashlib.sha256(raw).hexdigest()}" in image.repo_digests
    assert_runs(store, f"{registry.host}/multi:v1")
    assert len(store.list_images()) == 1  # both tags are the same amd64 image


async def test_failed_pulls_leave_nothing_visible(store: ImageStore, start_registry: RegistryFactory,
                                                  layouts: dict[str, Path], tmp_path: Path) -> None:
    registry = start_registry()
    registry.push(f"oci:{layouts['one']}:one", "busybox:1.35")
    with pytest.raises(PullError, match="MANIFEST_UNKNOWN"):
        await pull(store, f"{registry.host}/busybox:nope")
    with pytest.raises(PullError, match="nothing: GET manifests/1: HTTP 404"):
        await pull(store, f"{registry.host}/nothing:1")
    write_layout(tmp_path / "arm", busybox_layer(tmp_path / "one"), "arm", archs=("arm64", "s390x"))
    registry.push(f"oci:{tmp_path}/arm:arm", "arm:1", "--all")
    with pytest.raises(PullError, match="no linux/amd64 image in the index"):
        await pull(store, f"{registry.host}/arm:1")

    # Cancelled as the first bytes arrive, as when the agent stops mid-pull.
    pulling = asyncio.create_task(pull(store, f"{registry.host}/busybox:1.35",
                                             progress=lambda digest, done, total: pulling.cancel()))
    with pytest.raises(asyncio.CancelledError):
        await pulling
    assert store.list_images() == [] and list(store.content.tmp.iterdir()) == []

    # Corrupt the layers in the registry's storage: the digest check must refuse it.
    for blob in registry.storage.rglob("blobs/sha256/*/*/data"):
        if blob.stat().st_size > 100_000:
            blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(PullError, match="digest mismatch"):
        await pull(store, f"{registry.host}/busybox:1.35")
    assert store.list_images() == [] and list(store.content.tmp.iterdir()) == [] and list(store.layers.root.iterdir()) == []
