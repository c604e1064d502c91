"""Importing OCI layouts and docker save archives written by skopeo."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from images_layouts import busybox_layer, tar_layer, write_layout

from podbay.runtime.images import ImageStore, UnsafeLayer, import_archive
from podbay.runtime.images.archive import BadArchive
from tests.conftest import HostEnv

pytestmark = pytest.mark.e2e

NAME = "docker.io/library/busybox:1.35"


def skopeo(*args: str) -> None:
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", *args], check=True, capture_output=True)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    path = tmp_path / "layout"
    write_layout(path, busybox_layer(tmp_path), NAME)
    return path


def assert_runnable_busybox(store: ImageStore, ref: str) -> None:
    [layer] = store.mount_layers(ref)
    assert (layer / "bin/sh").is_symlink() and (layer / "bin/busybox").is_file()
    out = subprocess.run(["chroot", str(layer), "/bin/sh", "-c", "echo $((6*7))"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "42\n"


def test_import_an_oci_layout_directory(store: ImageStore, layout: Path) -> None:
    [image] = import_archive(store, layout)
    assert image.repo_tags == [NAME]
    assert image.config.cmd == ["sh"] and image.config.working_dir == "/tmp"
    assert store.image_status("busybox:1.35") == image
    assert_runnable_busybox(store, "busybox:1.35")
    assert import_archive(store, layout) == [image]  # importing again changes nothing


def test_import_skopeo_oci_and_docker_archives(store: ImageStore, layout: Path, tmp_path: Path) -> None:
    skopeo(f"oci:{layout}:{NAME}", f"oci-archive:{tmp_path}/oci.tar:localhost/oci:v1")
    skopeo(f"oci:{layout}:{NAME}", f"docker-archive:{tmp_path}/docker.tar:localhost/docker:v1")
    [from_oci] = import_archive(store, tmp_path / "oci.tar")
    [from_docker] = import_archive(store, tmp_path / "docker.tar")
    assert from_oci.repo_tags == ["localhost/oci:v1"]
    # The same config is the same image: the docker archive only adds its tag.
    assert from_docker.id == from_oci.id and from_docker.repo_tags == ["localhost/docker:v1", "localhost/oci:v1"]
    assert len(list(store.content.blobs.iterdir())) == 3  # config, layer, and the one manifest kept
    assert_runnable_busybox(store, "localhost/docker:v1")
    assert list(store.content.tmp.iterdir()) == []


def test_an_index_imports_the_linux_amd64_image(store: ImageStore, tmp_path: Path) -> None:
    digests = write_layout(tmp_path / "multi", busybox_layer(tmp_path), "localhost/multi:v1",
                           archs=("arm64", "amd64"))
    [image] = import_archive(store, tmp_path / "multi")
    assert "ARCH=amd64" in image.config.env and image.repo_tags == ["localhost/multi:v1"]
    write_layout(tmp_path / "arm", busybox_layer(tmp_path / "multi"), "localhost/arm:v1", archs=("arm64", "s390x"))
    with pytest.raises(LookupError, match="no linux/amd64 image in the index .*linux/arm64, linux/s390x"):
        import_archive(store, tmp_path / "arm")
    assert digests["amd64"] != digests["arm64"]
    write_layout(tmp_path / "arm-only", busybox_layer(tmp_path / "arm"), "localhost/arm:v2", archs=("arm64",))
    with pytest.raises(ValueError, match="is for linux/arm64; this node runs linux/amd64"):
        import_archive(store, tmp_path / "arm-only")
    assert [i.repo_tags for i in store.list_images()] == [["localhost/multi:v1"]]


def test_hostile_archives_are_refused(store: ImageStore, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        manifest = json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["layer.tar"]}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for name, target in (("c.json", "/etc/hostname"), ("layer.tar", "../../../../etc/passwd")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            tar.addfile(link)
    with pytest.raises(BadArchive, match="Config 'c.json' points outside the archive"):
        import_archive(store, evil)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken/oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "broken/index.json").write_text('{"manifests": [{"mediaType": "x"}]}')
    with pytest.raises(BadArchive, match=r"manifests\[0\]: a descriptor lacks 'digest'"):
        import_archive(store, tmp_path / "broken")
    (tmp_path / "broken/index.json").write_text('{"manifests": [{"digest": "sha256:../../etc/passwd"}]}')
    with pytest.raises(ValueError, match="unsupported digest"):
        import_archive(store, tmp_path / "broken")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadArchive, match="neither an OCI image layout"):
        import_archive(store, tmp_path / "empty")
    assert store.list_images() == [] and list(store.content.tmp.iterdir()) == []


def test_layers_stack_under_overlayfs_with_whiteouts(store: ImageStore, tmp_path: Path, host_env: HostEnv) -> None:
    bottom, top = tmp_path / "bottom", tmp_path / "top"
    for d in ("etc", "var/cache", "keep"):
        (bottom / d).mkdir(parents=True)
    (bottom / "etc/motd").write_text("old")
    (bottom / "var/cache/a").write_text("a")
    (bottom / "keep/k").write_text("k")
    (top / "var/cache").mkdir(parents=True)
    (top / "etc").mkdir()
    (top / "etc/.wh.motd").write_text("")
    (top / "var/cache/.wh..wh..opq").write_text("")
    (top / "var/cache/b").write_text("b")
    write_layout(tmp_path / "layout", [tar_layer(bottom), tar_layer(top)], "localhost/stack:1")
    import_archive(store, tmp_path / "layout")
    lower = store.mount_layers("localhost/stack:1")
    assert len(lower) == 2 and (lower[0] / "var/cache/b").exists()  # top first

    merged = host_env.state_root / "merged"
    merged.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(map(str, lower)), str(merged)],
                   check=True)
    try:
        assert not (merged / "etc/motd").exists() and (merged / "etc").is_dir()
        assert sorted(p.name for p in (merged / "var/cache").iterdir()) == ["b"]
        assert (merged / "keep/k").read_text() == "k"
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_a_bare_ref_name_imports_the_image_untagged(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "bare", busybox_layer(tmp_path), "1.35")
    [image] = import_archive(store, tmp_path / "bare")
    assert image.repo_tags == [] and store.tag(image.id, "localhost/named:1.35").repo_tags == ["localhost/named:1.35"]


def test_a_hostile_upper_layer_leaves_no_lower_layer_behind(store: ImageStore, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "f").write_text("f")
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("../escape"))
    evil_layer = (evil.getvalue(), "sha256:" + hashlib.sha256(evil.getvalue()).hexdigest())
    write_layout(tmp_path / "layout", [tar_layer(good), evil_layer], "localhost/evil:1")
    with pytest.raises(UnsafeLayer, match="escapes the layer"):
        import_archive(store, tmp_path / "layout")
    assert store.list_images() == [] and list(store.layers.root.iterdir()) == [] and list(store.content.tmp.iterdir()) == []
