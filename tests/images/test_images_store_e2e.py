"""The store on disk: the busybox image, build, lookups and layers."""
from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from podbay.runtime.images import (DigestMismatch, ImageConfig, ImageNotFound, ImageStore, UnsafeLayer,
                                   ensure_busybox_image)

pytestmark = pytest.mark.e2e


def test_busybox_image_is_a_runnable_rootfs(store: ImageStore) -> None:
    image = ensure_busybox_image(store)
    assert image.id.startswith("sha256:")
    assert image.repo_tags == ["docker.io/library/busybox:1.35", "docker.io/library/busybox:latest"]
    assert image.config.cmd == ["sh"]
    assert image.config.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

    [layer] = store.mount_layers("busybox:1.35")
    assert (layer / "bin/sh").is_symlink() and os.path.realpath(layer / "bin/sh") == str(layer / "bin/busybox")
    out = subprocess.run(["chroot", str(layer), "/bin/sh", "-c", "echo hi; id -u nobody"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "hi\n65534\n"
    assert stat.S_IMODE(os.lstat(layer / "tmp").st_mode) == 0o1777
    for d in ("proc", "sys", "dev", "etc"):
        assert (layer / d).is_dir()
    assert "nobody:x:65534:65534" in (layer / "etc/passwd").read_text()
    assert "nogroup:x:65534:" in (layer / "etc/group").read_text()

    again = ensure_busybox_image(ImageStore(store.root))
    assert again == image
    elsewhere = ensure_busybox_image(ImageStore(store.root.parent / "other-images"))
    assert elsewhere.id == image.id  # reproducible: every node builds the same image


def test_lookup_by_tag_short_name_id_and_prefix(store: ImageStore) -> None:
    image = ensure_busybox_image(store)
    for ref in ("busybox", "busybox:1.35", "docker.io/library/busybox:latest", image.id, image.id[7:19]):
        assert store.image_status(ref) == image, ref
    assert store.image_status("busybox:9.9") is None
    assert store.list_images() == [image]
    assert store.config("busybox") == image.config
    with pytest.raises(ImageNotFound, match='image "nginx" not found'):
        store.config("nginx")
    with pytest.raises(KeyError):
        store.mount_layers("nginx")


def test_build_from_a_directory_and_a_tarball(store: ImageStore, tmp_path: Path) -> None:
    base = ensure_busybox_image(store)
    rootfs = tmp_path / "rootfs"
    (rootfs / "app").mkdir(parents=True)
    (rootfs / "app/run.sh").write_text("#!/bin/sh\necho app\n")
    os.chmod(rootfs / "app/run.sh", 0o4755)
    cfg = ImageConfig(entrypoint=["/app/run.sh"], working_dir="/app", user="65534", stop_signal="SIGINT")
    built = store.build(rootfs, tag="localhost/app:v1", config=cfg)
    assert built.repo_tags == ["localhost/app:v1"] and built.config == cfg
    [layer] = store.mount_layers("localhost/app:v1")
    assert stat.S_IMODE(os.stat(layer / "app/run.sh").st_mode) == 0o4755

    tarball = tmp_path / "rootfs.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(rootfs, arcname=".")
    from_tar = store.build(tarball, tag="localhost/app:v2", config=cfg)
    [layer2] = store.mount_layers(from_tar.id)
    assert (layer2 / "app/run.sh").read_text() == "#!/bin/sh\necho app\n"
    assert {i.id for i in store.list_images()} == {base.id, built.id, from_tar.id}


def test_a_tag_moves_to_the_newest_image(store: ImageStore, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/f").write_text("1")
    first = store.build(tmp_path / "a", tag="localhost/x", config=ImageConfig(cmd=["one"]))
    (tmp_path / "a/f").write_text("2")
    second = store.build(tmp_path / "a", tag="localhost/x:latest", config=ImageConfig(cmd=["two"]))
    assert store.config("localhost/x").cmd == ["two"]
    assert store.image_status(first.id).repo_tags == []  # type: ignore[union-attr]
    assert store.image_status(second.id).repo_tags == ["localhost/x:latest"]  # type: ignore[union-attr]


def test_remove_untags_then_removes_and_keeps_shared_layers(store: ImageStore, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r/f").write_text("x")
    one = store.build(tmp_path / "r", tag="localhost/one", config=ImageConfig(cmd=["1"]))
    two = store.build(tmp_path / "r", tag="localhost/two", config=ImageConfig(cmd=["2"]))
    assert one.id != two.id and store.mount_layers(one.id) == store.mount_layers(two.id)
    [layer] = store.mount_layers(one.id)
    store.tag(one.id, "localhost/one:extra")

    store.remove_image("localhost/one:extra")
    assert store.image_status(one.id).repo_tags == ["localhost/one:latest"]  # type: ignore[union-attr]
    store.remove_image("localhost/one")
    assert store.image_status(one.id) is None
    assert layer.is_dir() and (layer / "f").read_text() == "x"
    with pytest.raises(ImageNotFound):
        store.remove_image("localhost/one")
    store.remove_image(two.id)
    assert store.list_images() == []
    assert list(store.content.blobs.iterdir()) == [] and list(store.layers.root.iterdir()) == []
    assert list(store.content.tmp.iterdir()) == []


def test_a_refused_or_corrupt_layer_leaves_nothing_visible(store: ImageStore, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        tar.addfile(tarfile.TarInfo("../escape"))
    digest = store.content.put_blob_file(evil)
    with pytest.raises(UnsafeLayer, match="escapes the layer"):
        store.layers.ensure_layer(digest)
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tar:
        tar.addfile(tarfile.TarInfo("ok"))
    digest = store.content.put_blob_file(good)
    with pytest.raises(DigestMismatch, match="diff id mismatch"):
        store.layers.ensure_layer(digest, "sha256:" + "0" * 64)
    with pytest.raises(DigestMismatch, match="blob digest mismatch"):
        store.content.put_blob_file(good, "sha256:" + "1" * 64)
    assert list(store.layers.root.iterdir()) == [] and list(store.content.tmp.iterdir()) == []
    assert store.layers.ensure_layer(digest) == digest  # an uncompressed layer's diff id is its digest


def test_opening_a_store_sweeps_what_dead_writers_left_in_tmp(store: ImageStore) -> None:
    (store.content.tmp / "blob-dead").write_bytes(b"half a layer")
    (store.content.tmp / "layer-dead/usr").mkdir(parents=True)
    with store.content.blob_writer() as live, store.content.scratch_dir("layer-") as live_dir:
        live.write(b"in progress")
        ImageStore(store.root)
        assert sorted(store.content.tmp.iterdir()) == sorted([live.path, live_dir])
        digest = live.commit()
    assert store.content.read_blob(digest) == b"in progress" and list(store.content.tmp.iterdir()) == []


def _tag_many(root: Path, image_id: str, worker: int) -> None:
    store = ImageStore(root)
    for n in range(25):
        store.tag(image_id, f"localhost/w{worker}:{n}")


def test_concurrent_writers_in_other_processes_lose_no_update(store: ImageStore) -> None:
    image = ensure_busybox_image(store)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_tag_many, args=(store.root, image.id, w)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    tags = store.image_status(image.id).repo_tags  # type: ignore[union-attr]
    assert len(tags) == 2 + 3 * 25 and "localhost/w2:24" in tags
