"""Unpacking is bounded: decompression bombs, streams that are not tar, and a filling image
filesystem are refused early with errors naming what and why, leaving nothing behind."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Iterator

import pytest
import zstandard
from images_layouts import write_layout
from images_registry import RegistryFactory

from podbay.cli.progress import human_size
from podbay.runtime.images import (BadArchive, ImageFsLow, ImageLimits, ImageStore, NotATar, PullError, TooLarge,
                                   import_archive, pull)
from podbay.runtime.syscalls import umount
from tests.cli.podbay_cli import podbay_cli
from tests.conftest import HostEnv, require_root

pytestmark = pytest.mark.e2e
MiB = 1 << 20


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def layout_of(path: Path, raw_tar: bytes, compressed: bytes, media_type: str) -> Path:
    write_layout(path, (compressed, "sha256:" + hashlib.sha256(raw_tar).hexdigest()), "localhost/bounds:1",
                 layer_type=media_type)
    return path


def bomb_layout(tmp: Path, megabytes: int) -> Path:
    """A layer of one file of zeros: a few KB of gzip that unpack to `megabytes` MiB."""
    raw = tar_of({"zeros": bytes(megabytes * MiB)})
    return layout_of(tmp / "bomb", raw, gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")


def layer_digest(layout: Path) -> str:
    [desc] = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads((layout / "blobs/sha256" / desc["digest"][7:]).read_bytes())
    return manifest["layers"][0]["digest"]


def disk_usage(root: Path) -> int:
    """Bytes allocated under `root`, as du counts them."""
    return sum(os.lstat(os.path.join(d, n)).st_blocks * 512 for d, dirs, files in os.walk(root) for n in dirs + files)


def store_is_empty(store: ImageStore) -> None:
    assert store.list_images() == []
    assert (list(store.layers.root.iterdir()), list(store.layers.info_dir.iterdir()), list(store.content.tmp.iterdir()),
            list(store.content.blobs.iterdir())) == ([], [], [], [])


def test_a_gzip_bomb_is_refused_at_the_per_image_cap(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    store = ImageStore(host_env.state_root / "images", ImageLimits(max_image_bytes=4 * MiB))
    before = disk_usage(host_env.state_root)
    layout = bomb_layout(tmp_path, 40)
    layer = layer_digest(layout)
    with pytest.raises(TooLarge) as refused:
        import_archive(store, layout)
    message = str(refused.value)
    assert f"image localhost/bounds:1: layer {layer}" in message
    assert "more than 4194304 bytes (4.0 MiB)" in message and "--max-image-size" in message
    store_is_empty(store)
    assert disk_usage(host_env.state_root) == before


async def test_a_pulled_bomb_is_refused_and_its_blobs_dropped(host_env: HostEnv, tmp_path: Path,
                                                               start_registry: RegistryFactory) -> None:
    require_root()
    store = ImageStore(host_env.state_root / "images", ImageLimits(max_image_bytes=4 * MiB))
    layout = bomb_layout(tmp_path, 40)
    registry = start_registry()
    registry.push(f"oci:{layout}:localhost/bounds:1", "bomb:1")
    with pytest.raises(PullError, match=r"layer sha256:\w+: unpacks to more than 4194304 bytes"):
        await pull(store, f"{registry.host}/bomb:1")
    store_is_empty(store)


def test_the_cap_counts_the_whole_image_not_each_layer(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    store = ImageStore(host_env.state_root / "images", ImageLimits(max_image_bytes=5 * MiB))
    layers = []
    for name in ("a", "b"):
        raw = tar_of({name: bytes(3 * MiB)})
        layers.append((gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()))
    write_layout(tmp_path / "two", layers, "localhost/two:1")
    with pytest.raises(TooLarge, match="5242880 bytes per image, 3.* of them used by its layers below"):
        import_archive(store, tmp_path / "two")
    store_is_empty(store)


@pytest.mark.parametrize("kind", ["zstd", "gzip"])
def test_a_compressed_stream_that_is_not_tar_is_refused_before_unpacking(
        host_env: HostEnv, tmp_path: Path, kind: str) -> None:
    require_root()
    store = ImageStore(host_env.state_root / "images")
    payload = b"not a tar header " * (16 * MiB // 17)  # ~16 MiB were it written out
    compress = {"zstd": zstandard.ZstdCompressor().compress, "gzip": lambda d: gzip.compress(d, mtime=0)}[kind]
    media = {"zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
             "gzip": "application/vnd.oci.image.layer.v1.tar+gzip"}[kind]
    layout = layout_of(tmp_path / "layout", payload, compress(payload), media)
    before = disk_usage(host_env.state_root)
    with pytest.raises(NotATar, match=r"layer sha256:\w+: not a tar archive"):
        import_archive(store, layout)
    store_is_empty(store)
    assert disk_usage(host_env.state_root) == before
    # The same stream given as the archive itself.
    (tmp_path / f"archive.{kind}").write_bytes(compress(payload))
    with pytest.raises(NotATar, match=rf"image archive {tmp_path}/archive.{kind}: not a tar archive"):
        import_archive(store, tmp_path / f"archive.{kind}")
    store_is_empty(store)


def test_a_random_file_or_a_rootfs_tarball_is_not_an_image_archive(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    store = ImageStore(host_env.state_root / "images")
    (tmp_path / "random").write_bytes(os.urandom(64 * 1024))
    with pytest.raises(NotATar, match="not a tar archive"):
        import_archive(store, tmp_path / "random")
    (tmp_path / "rootfs.tar").write_bytes(tar_of({"etc/passwd": b"root:x:0:0::/:/bin/sh\n",
                                                 **{f"usr/f{i}": bytes(MiB) for i in range(8)}}))
    with pytest.raises(BadArchive, match="'etc/passwd': not an entry of an OCI image layout"):
        import_archive(store, tmp_path / "rootfs.tar")
    store_is_empty(store)


@pytest.fixture
def small_imagefs(host_env: HostEnv) -> Iterator[Path]:
    """The state root on a 32 MiB tmpfs of its own, unmounted afterwards."""
    require_root()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "podbay-test-imagefs",
                    str(host_env.state_root)], check=True)
    try:
        yield host_env.state_root
    finally:
        umount(str(host_env.state_root))


def test_unpacking_stops_at_the_imagefs_eviction_threshold(small_imagefs: Path, tmp_path: Path) -> None:
    # Half of the 32 MiB must stay free; a 20 MiB layer would leave 12.
    store = ImageStore(small_imagefs / "images", ImageLimits(min_available=0.5))
    free_before = os.statvfs(small_imagefs).f_bavail
    with pytest.raises(ImageFsLow) as refused:
        import_archive(store, bomb_layout(tmp_path, 20))
    message = str(refused.value)
    assert "image localhost/bounds:1: layer sha256:" in message
    assert "must keep 50% free (imagefs.available hard eviction threshold)" in message
    store_is_empty(store)
    assert os.statvfs(small_imagefs).f_bavail == free_before


def test_image_ls_shows_the_unpacked_size(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    layout = bomb_layout(tmp_path, 6)
    assert sum(f.stat().st_size for f in (layout / "blobs/sha256").iterdir()) < 100_000
    podbay = podbay_cli(host_env)
    podbay("image", "import", str(layout))
    [header, row] = podbay("image", "ls").stdout.splitlines()
    assert header.split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    unpacked = len(tar_of({"zeros": bytes(6 * MiB)}))
    assert row.split()[0:2] == ["localhost/bounds", "1"] and row.split()[-1] == human_size(unpacked)
    refused = podbay("--max-image-size", "1Mi", "image", "import", str(bomb_layout(tmp_path / "b", 2)), check=False)
    assert refused.returncode == 1
    assert "more than 1048576 bytes (1.0 MiB), the limit set by --max-image-size" in refused.stderr


def test_images_added_before_unpacked_sizes_get_them(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    store = ImageStore(host_env.state_root / "images")
    [image] = import_archive(store, bomb_layout(tmp_path, 3))
    # As an older podbay left the store: the compressed size only, and no layer info.
    index_path = store.root / "images.json"
    index = json.loads(index_path.read_text())
    del index["images"][image.id]["unpacked_size"]
    index_path.write_text(json.dumps(index))
    for info in store.layers.info_dir.iterdir():
        info.unlink()
    os.chmod(store.root, 0o755)
    reopened = ImageStore(store.root)
    assert stat.S_IMODE(os.stat(store.root).st_mode) == 0o700
    # Now the files' bytes, without the tar headers counted when unpacking.
    [again] = reopened.list_images()
    assert again.size == 3 * MiB
