"""Layer unpacking: overlayfs whiteouts, file metadata, and hostile archives refused."""
from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Callable

import pytest

from podbay.runtime.images import UnsafeLayer
from podbay.runtime.images.devices import make_devices
from podbay.runtime.images.unpack import Device, unpack_layer
from podbay.runtime.syscalls import mount, umount
from tests.conftest import require_root

pytestmark = pytest.mark.e2e

Entry = Callable[[tarfile.TarFile], None]


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object) -> Entry:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        for key, value in attrs.items():
            setattr(info, key, value)
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return add


def layer(*entries: Entry) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for add in entries:
            add(tar)
    buf.seek(0)
    return buf


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    require_root()
    d = tmp_path / "layer"
    d.mkdir()
    return d


def test_whiteouts_become_overlayfs_whiteouts(dest: Path) -> None:
    unpack_layer(layer(entry("etc", tarfile.DIRTYPE), entry("etc/.wh.motd"), entry("var/cache/.wh..wh..opq"),
                       entry("var/cache/new", data=b"n")), dest)
    st = os.lstat(dest / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not (dest / "etc/.wh.motd").exists()
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (dest / "var/cache/new").read_bytes() == b"n"
    assert not os.path.lexists(dest / "var/cache/.wh..wh..opq")


def test_metadata_and_links_are_kept_devices_only_recorded(dest: Path) -> None:
    devices = unpack_layer(layer(
        entry("bin", tarfile.DIRTYPE, mode=0o750, uid=12, gid=34, mtime=1000),
        entry("bin/su", data=b"su", mode=0o4755, uid=0, gid=0),
        entry("bin/gs", data=b"gs", mode=0o2711, uid=5, gid=6),
        entry("bin/sh", tarfile.SYMTYPE, linkname="busybox", uid=7, gid=8),
        entry("bin/su2", tarfile.LNKTYPE, linkname="bin/su"),
        entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        entry("dev/fifo", tarfile.FIFOTYPE, mode=0o600),
        entry("link-with-xattr", tarfile.SYMTYPE, linkname="cap", pax_headers={"SCHILY.xattr.user.x": "y"}),
        entry("cap", data=b"c", pax_headers={"SCHILY.xattr.user.note": "hello",
                                             "SCHILY.xattr.trusted.overlay.redirect": "/etc"}),
    ), dest)
    bin_st = os.lstat(dest / "bin")
    assert (stat.S_IMODE(bin_st.st_mode), bin_st.st_uid, bin_st.st_gid, bin_st.st_mtime) == (0o750, 12, 34, 1000)
    assert stat.S_IMODE(os.lstat(dest / "bin/su").st_mode) == 0o4755
    gs = os.lstat(dest / "bin/gs")
    assert (stat.S_IMODE(gs.st_mode), gs.st_uid, gs.st_gid) == (0o2711, 5, 6)
    assert os.readlink(dest / "bin/sh") == "busybox" and os.lstat(dest / "bin/sh").st_uid == 7
    assert os.lstat(dest / "bin/su2").st_ino == os.lstat(dest / "bin/su").st_ino
    # Layers live on the host: a device node there would be the host's device. Only an
    # unreadable placeholder holds its path; the node is made in each container's rootfs.
    null = os.lstat(dest / "dev/null")
    assert stat.S_ISREG(null.st_mode) and stat.S_IMODE(null.st_mode) == 0 and null.st_size == 0
    assert devices == [Device("dev/null", False, 1, 3, 0o666, 0, 0)]
    assert stat.S_ISFIFO(os.lstat(dest / "dev/fifo").st_mode)
    assert os.getxattr(dest / "cap", "user.note") == b"hello"
    # A layer may not plant overlayfs' own metadata.
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "cap")


def test_aufs_bookkeeping_entries_are_skipped(dest: Path) -> None:
    unpack_layer(layer(entry(".wh..wh.plnk", tarfile.DIRTYPE), entry(".wh..wh.plnk/123.4", data=b"x"),
                       entry("kept", data=b"k")), dest)
    assert sorted(os.listdir(dest)) == ["kept"]


def test_dot_slash_names_and_inner_dotdot_are_normalised(dest: Path) -> None:
    unpack_layer(layer(entry("./a/b/../c", data=b"1"), entry("./", tarfile.DIRTYPE)), dest)
    assert (dest / "a/c").read_bytes() == b"1"


def test_a_later_entry_replaces_an_earlier_symlink_rather_than_following_it(dest: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep")
    unpack_layer(layer(entry("f", tarfile.SYMTYPE, linkname=str(outside)), entry("f", data=b"new")), dest)
    assert outside.read_text() == "keep"
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"new"


@pytest.mark.parametrize("entries, why", [
    ([entry("/etc/passwd", data=b"x")], "absolute path"),
    ([entry("../escape", data=b"x")], "escapes the layer"),
    ([entry("a/../../escape", data=b"x")], "escapes the layer"),
    ([entry("d", tarfile.SYMTYPE, linkname="/"), entry("d/escape", data=b"x")], "passes through the symlink d"),
    ([entry("d", tarfile.SYMTYPE, linkname=".."), entry("d/x/y", data=b"x")], "passes through the symlink d"),
    ([entry("h", tarfile.LNKTYPE, linkname="../outside")], "escapes the layer"),
    ([entry("h", tarfile.LNKTYPE, linkname="/etc/passwd")], "absolute path"),
    ([entry("d", tarfile.SYMTYPE, linkname="/etc"), entry("h", tarfile.LNKTYPE, linkname="d/passwd")],
     "passes through the symlink d"),
    ([entry("h", tarfile.LNKTYPE, linkname="missing")], "not in the layer"),
    ([entry("d", tarfile.SYMTYPE, linkname="/tmp"), entry("d/.wh.x")], "passes through the symlink d"),
    ([entry("d", tarfile.SYMTYPE, linkname="/tmp"), entry("d/.wh..wh..opq")], "passes through the symlink d"),
    ([entry(".wh...")], "a whiteout must name an entry"),
    ([entry("a/.wh..")], "a whiteout must name an entry"),
    ([entry("a/.wh.")], "a whiteout must name an entry"),
])
def test_hostile_archives_are_refused_and_write_nothing_outside(dest: Path, tmp_path: Path,
                                                                 entries: list[Entry], why: str) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnsafeLayer, match=why):
        unpack_layer(layer(*entries), dest)
    assert outside.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_devices_are_made_in_the_mounted_rootfs_only_where_still_visible(tmp_path: Path) -> None:
    require_root()
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir(), upper.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    bottom = unpack_layer(layer(
        entry("opt", tarfile.DIRTYPE),
        *(entry(f"opt/{n}", tarfile.CHRTYPE, devmajor=1, devminor=m, mode=0o666) for n, m in
          (("gone", 3), ("replaced", 5), ("kept", 7))),
        entry("opt/kept-link", tarfile.LNKTYPE, linkname="opt/kept"),
        entry("redirected", tarfile.DIRTYPE),
        entry("redirected/zero", tarfile.CHRTYPE, devmajor=1, devminor=5, mode=0o666)), lower)
    top = unpack_layer(layer(
        entry("opt/.wh.gone"), entry("opt/replaced", data=b"file"),
        entry("redirected", tarfile.SYMTYPE, linkname=str(outside))), upper)
    assert top == []
    rootfs, work, rw = tmp_path / "rootfs", tmp_path / "work", tmp_path / "rw"
    for d in (rootfs, work, rw):
        d.mkdir()
    mount("overlay", str(rootfs), "overlay", 0, f"lowerdir={upper}:{lower},upperdir={rw},workdir={work}")
    try:
        make_devices(rootfs, [upper, lower], [top, bottom])
        assert not os.path.lexists(rootfs / "opt/gone")
        assert (rootfs / "opt/replaced").read_bytes() == b"file"
        for name in ("kept", "kept-link"):
            st = os.lstat(rootfs / "opt" / name)
            assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 7) and stat.S_IMODE(st.st_mode) == 0o666
        assert list(outside.iterdir()) == []  # not made through the top layer's symlink
    finally:
        umount(str(rootfs))
    # The layers themselves hold no device but overlayfs' whiteout.
    nodes = [p for p in tmp_path.rglob("*") if stat.S_ISCHR(os.lstat(p).st_mode) and p.is_relative_to(lower)]
    assert nodes == []
