"""zstd-compressed layers (plain, zstd:chunked, non-distributable) import and run like gzip ones."""
from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard
from images_layouts import busybox_layer, write_layout

from podbay.runtime.images import ImageStore, import_archive

pytestmark = pytest.mark.e2e

NAME = "docker.io/library/busybox:1.35"


def skopeo_copy(source: Path, dest: Path, compression: str) -> None:
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--dest-compress-format", compression,
                    f"oci:{source}:{NAME}", f"oci:{dest}:{NAME}"], check=True, capture_output=True)


def unpadded(tar: bytes) -> bytes:
    """The tar as Go writes it: the end-of-archive blocks and no record padding. zstd:chunked
    rewrites a layer that way, so only such a tar keeps its diff id through skopeo's conversion."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.getmembers()
        end = archive.offset
    return tar[:end + 1024]


def assert_runs(store: ImageStore, ref: str) -> None:
    [layer] = store.mount_layers(ref)
    out = subprocess.run(["chroot", str(layer), "/bin/sh", "-c", "echo $((6*7))"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "42\n"


def test_zstd_layers_import_and_run(store: ImageStore, tmp_path: Path) -> None:
    tar = unpadded(gzip.decompress(busybox_layer(tmp_path)[0]))
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    write_layout(tmp_path / "gzip", (gzip.compress(tar, mtime=0), diff_id), NAME)
    for compression in ("zstd", "zstd:chunked"):
        layout = tmp_path / compression.replace(":", "-")
        skopeo_copy(tmp_path / "gzip", layout, compression)
        [image] = import_archive(store, layout)
        assert image.repo_tags == [NAME]
        assert_runs(store, NAME)
        store.remove_image(NAME)
    # Two frames, as a streaming compressor may write them, under the non-distributable type.
    frames = b"".join(zstandard.ZstdCompressor().compress(part) for part in (tar[:4096], tar[4096:]))
    write_layout(tmp_path / "nondist", (frames, diff_id), "localhost/nondist:1",
                 layer_type="application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
    assert import_archive(store, tmp_path / "nondist")[0].repo_tags == ["localhost/nondist:1"]
    assert_runs(store, "localhost/nondist:1")


def test_an_encrypted_layer_is_refused_by_its_media_type(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "enc", busybox_layer(tmp_path), "localhost/enc:1",
                 layer_type="application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
    with pytest.raises(ValueError, match=r"layers\[0\]: unsupported media type "
                                         r"'application/vnd.oci.image.layer.v1.tar\+gzip\+encrypted'"):
        import_archive(store, tmp_path / "enc")
    assert store.list_images() == []
