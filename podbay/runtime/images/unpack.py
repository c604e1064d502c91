"""Layer tarballs unpacked into a directory in the form overlayfs expects, refusing
hostile archives: nothing is ever written outside the layer's directory.

OCI whiteouts become overlayfs' own: `.wh.NAME` a 0/0 character device named NAME,
`.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

import zstandard

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
AUFS_META = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UnsafeLayer(ValueError):
    """An archive entry that would write outside the layer or through a planted link."""


class HashingReader:
    """A file object that hashes everything read through it (the layer's diff id)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> str:
        """Reads what the tar reader left (end-of-archive padding) and returns the digest."""
        while self.read(1 << 20):
            pass
        return "sha256:" + self.hash.hexdigest()


def open_layer(path: Path) -> BinaryIO:
    """The layer blob's uncompressed tar stream: gzip, zstd or plain, told by magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if magic == ZSTD_MAGIC:
        # zstd:chunked layers are many frames (and skippable ones holding their table of contents).
        return zstandard.ZstdDecompressor().stream_reader(  # type: ignore[return-value]
            open(path, "rb"), closefd=True, read_across_frames=True)
    return open(path, "rb")


def clean_name(name: str) -> tuple[str, ...]:
    """The entry's path components inside the layer; absolute paths and paths that
    climb out of the layer are refused."""
    if name.startswith("/"):
        raise UnsafeLayer(f"{name!r}: absolute path in a layer")
    path = posixpath.normpath(name)
    if path == ".":
        return ()
    parts = tuple(path.split("/"))
    if parts[0] == "..":
        raise UnsafeLayer(f"{name!r}: path escapes the layer ('..')")
    return parts


def _walk_parent(root: Path, parts: tuple[str, ...], entry: str, create: bool) -> Path:
    """The directory holding `parts[-1]`; no component may be a symlink, so an earlier
    entry cannot redirect a later one outside the layer."""
    current = root
    for part in parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if not create:
                raise UnsafeLayer(f"{entry!r}: {'/'.join(parts)} does not exist in the layer") from None
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeLayer(f"{entry!r}: passes through the symlink {current.relative_to(root)} "
                              "planted by an earlier entry")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeLayer(f"{entry!r}: {current.relative_to(root)} is not a directory")
    return current


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in (member.pax_headers or {}).items():
        if not key.startswith(_XATTR_PAX):
            continue
        name = key[len(_XATTR_PAX):]
        # overlayfs' own xattrs steer lookups (opaque, redirect); only whiteout entries may set them.
        if name.startswith("trusted.overlay."):
            continue
        out[name] = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return out


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        src = tar.extractfile(member)
        assert src is not None
        shutil.copyfileobj(src, out, 1 << 20)


def unpack_layer(stream: BinaryIO, dest: Path) -> None:
    """Unpacks one uncompressed layer tar stream into `dest` (an existing, empty directory)."""
    root = Path(dest)
    dir_times: list[tuple[Path, int]] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            parts = clean_name(member.name)
            if not parts:
                continue
            if any(p.startswith(AUFS_META) for p in parts) and parts[-1] != OPAQUE:
                continue  # aufs' own bookkeeping (.wh..wh.plnk/...): nothing to overlay
            parent = _walk_parent(root, parts, member.name, create=True)
            base = parts[-1]
            target = parent / base
            if base == OPAQUE:
                os.setxattr(parent, OPAQUE_XATTR, b"y")
                continue
            if base.startswith(WHITEOUT):
                name = base[len(WHITEOUT):]
                if name in ("", ".", ".."):
                    raise UnsafeLayer(f"{member.name!r}: a whiteout must name an entry of its directory")
                hidden = parent / name
                _remove(hidden)
                os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0))
                continue
            if member.isdir():
                st = os.lstat(target) if os.path.lexists(target) else None
                if st is None or not stat.S_ISDIR(st.st_mode):
                    _remove(target)
                    os.mkdir(target, 0o700)
                dir_times.append((target, int(member.mtime)))
            elif member.islnk():
                _remove(target)
                link_parts = clean_name(member.linkname)
                if not link_parts:
                    raise UnsafeLayer(f"{member.name!r}: hard link to the layer's root")
                source = _walk_parent(root, link_parts, member.name, create=False) / link_parts[-1]
                if not os.path.lexists(source):
                    raise UnsafeLayer(f"{member.name!r}: hard link target {member.linkname!r} is not in the layer")
                if stat.S_ISDIR(os.lstat(source).st_mode):
                    raise UnsafeLayer(f"{member.name!r}: hard link to the directory {member.linkname!r}")
                os.link(source, target, follow_symlinks=False)
                continue
            else:
                _remove(target)
                if member.issym():
                    os.symlink(member.linkname, target)
                elif member.isfile():
                    _write_file(tar, member, target)
                elif member.ischr() or member.isblk():
                    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                    os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
                elif member.isfifo():
                    os.mkfifo(target, 0o600)
                else:
                    raise UnsafeLayer(f"{member.name!r}: unsupported tar entry type {member.type!r}")
            os.lchown(target, member.uid, member.gid)
            if not member.issym():
                # After chown, which clears setuid/setgid bits.
                os.chmod(target, member.mode & 0o7777)
            for key, value in _xattrs(member).items():
                try:
                    os.setxattr(target, key, value, follow_symlinks=False)
                except PermissionError:
                    if not member.issym():
                        raise  # the kernel refuses user.* xattrs on symlinks; those are dropped
            if not member.isdir():
                os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
