"""Layer tarballs unpacked into a directory in the form overlayfs expects, refusing
hostile archives: nothing is ever written outside the layer's directory.

OCI whiteouts become overlayfs' own: `.wh.NAME` a 0/0 character device named NAME,
`.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.

Device nodes are never made in a layer (layers are shared and live on the host): each
becomes an empty mode-0000 placeholder file, so it still hides what lower layers have at
that path, and is returned as a `Device` to be made in each container's own rootfs view.

The tar stream is read through a `LayerStream`, which refuses what is not a tar before
anything is written and counts decompressed bytes as they come, so a small compressed
blob cannot fill the disk (a decompression bomb).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import zstandard

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
AUFS_META = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UnsafeLayer(ValueError):
    """An archive entry that would write outside the layer or through a planted link."""


class NotATar(ValueError):
    """A stream whose (decompressed) start is not a tar header."""


class TooLarge(ValueError):
    """A stream that decompresses to more than it may."""


class ImageFsLow(OSError):
    """Unpacking would take the image filesystem below its hard eviction threshold."""


@dataclass(frozen=True)
class Device:
    """A device node of a layer, made only inside containers' rootfs views."""

    path: str  # inside the layer, no leading slash
    block: bool
    major: int
    minor: int
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True)
class Budget:
    """What one unpack may use: `max_bytes` of decompressed stream, and the filesystem
    holding `fs_path` must keep `min_available` (a fraction) of its size free."""

    max_bytes: int
    fs_path: Path
    min_available: float
    limit_name: str  # how the user sets max_bytes, for the error


# statvfs is cheap, but not free: looked at once per this many decompressed bytes.
FS_CHECK_EVERY = 1 << 20
TAR_BLOCK = 512


def falls_below_threshold(available: int, capacity: int, incoming: int, min_available: float) -> bool:
    """Whether writing `incoming` more bytes leaves less than `min_available` of the
    filesystem free (the kubelet's imagefs.available hard eviction signal)."""
    return available - incoming < min_available * capacity


def check_tar_header(block: bytes, what: str) -> None:
    """Refuses a stream whose first block is not a tar header (an all-zero block is the
    end of an empty archive, which empty layers are)."""
    if len(block) < TAR_BLOCK and block.strip(b"\0"):
        raise NotATar(f"{what}: not a tar archive (only {len(block)} bytes)")
    if not block.strip(b"\0"):
        return
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        raise NotATar(f"{what}: not a tar archive (nor a gzip or zstd compressed one)") from None


def mib(n: int) -> str:
    """Exact bytes, and MiB to read them by (limits are set in either)."""
    return f"{n} bytes ({n / (1 << 20):.1f} MiB)"


class LayerStream:
    """The decompressed tar stream of a layer (or archive), read once: its start checked
    to be a tar header before any of it is unpacked, every byte hashed (the diff id) and
    counted against the budget as it decompresses; the declared sizes are never trusted."""

    def __init__(self, inner: BinaryIO, what: str, budget: Budget) -> None:
        self.inner = inner
        self.what = what
        self.budget = budget
        self.hash = hashlib.sha256()
        self.count = 0
        self._next_check = 0
        head = b""
        while len(head) < TAR_BLOCK:
            chunk = inner.read(TAR_BLOCK - len(head))
            if not chunk:
                break
            head += chunk
        check_tar_header(head, what)
        self._head = head

    def read(self, size: int = -1) -> bytes:
        # Never "all of it" at once: that could be a bomb's gigabytes in memory. Returning
        # less than asked is allowed; tarfile and drain() read again.
        size = FS_CHECK_EVERY if size < 0 else min(size, FS_CHECK_EVERY)
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
        else:
            data = self.inner.read(size)
        self.hash.update(data)
        self.count += len(data)
        if self.count > self.budget.max_bytes:
            raise TooLarge(f"{self.what}: unpacks to more than {mib(self.budget.max_bytes)}, "
                           f"the limit set by {self.budget.limit_name}")
        if self.count >= self._next_check:
            self._check_fs(len(data))
            self._next_check = self.count + FS_CHECK_EVERY
        return data

    def _check_fs(self, incoming: int) -> None:
        st = os.statvfs(self.budget.fs_path)
        available, capacity = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        if falls_below_threshold(available, capacity, max(incoming, FS_CHECK_EVERY), self.budget.min_available):
            raise ImageFsLow(f"{self.what}: refused after {self.count} unpacked bytes: the image filesystem "
                             f"({self.budget.fs_path}) has {mib(available)} of {mib(capacity)} free "
                             f"and must keep {self.budget.min_available:.0%} free (imagefs.available hard "
                             "eviction threshold)")

    def drain(self) -> str:
        """Reads what the tar reader left (end-of-archive padding) and returns the digest."""
        while self.read():
            pass
        return "sha256:" + self.hash.hexdigest()


def open_layer(path: Path) -> BinaryIO:
    """The layer blob's uncompressed tar stream: gzip, zstd or plain, told by magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        # The ignore: a GzipFile reads bytes, but typeshed does not declare it a BinaryIO.
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if magic == ZSTD_MAGIC:
        # zstd:chunked layers are many frames (and skippable ones holding their table of contents).
        return zstandard.ZstdDecompressor().stream_reader(
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


def unpack_layer(stream: BinaryIO | LayerStream, dest: Path,
                 check_name: Callable[[tuple[str, ...], str], None] | None = None) -> list[Device]:
    """Unpacks one uncompressed layer tar stream into `dest` (an existing, empty directory);
    returns the layer's device nodes, of which only placeholders are in `dest`.
    `check_name` may refuse an entry (by raising) before anything of it is written."""
    layer = _Layer(Path(dest))
    # The ignore: typeshed's stream-mode overloads want a narrower fileobj type than LayerStream.
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            parts = clean_name(member.name)
            if not parts:
                continue
            if check_name is not None:
                check_name(parts, member.name)
            if any(p.startswith(AUFS_META) for p in parts) and parts[-1] != OPAQUE:
                continue  # aufs' own bookkeeping (.wh..wh.plnk/...): nothing to overlay
            layer.add(tar, member, parts)
    for path, mtime in reversed(layer.dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return list(layer.devices.values())


class _Layer:
    """The layer being unpacked: one method per kind of tar entry, as overlayfs wants it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir_times: list[tuple[Path, int]] = []
        self.devices: dict[str, Device] = {}

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        parent = _walk_parent(self.root, parts, member.name, create=True)
        base = parts[-1]
        if base == OPAQUE:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
        elif base.startswith(WHITEOUT):
            self._whiteout(member, parts, parent)
        elif member.isdir():
            self._directory(member, parts, parent / base)
            _set_metadata(member, parent / base)
        elif member.islnk():
            self._hard_link(member, parts, parent / base)
        else:
            self._forget("/".join(parts))
            _remove(parent / base)
            self._make(tar, member, parts, parent / base)
            if member.ischr() or member.isblk():
                os.utime(parent / base, (member.mtime, member.mtime))  # the placeholder stays root's, mode 0000
            else:
                _set_metadata(member, parent / base)

    def _forget(self, path: str) -> None:
        for key in [k for k in self.devices if k == path or k.startswith(path + "/")]:
            del self.devices[key]

    def _whiteout(self, member: tarfile.TarInfo, parts: tuple[str, ...], parent: Path) -> None:
        name = parts[-1][len(WHITEOUT):]
        if name in ("", ".", ".."):
            raise UnsafeLayer(f"{member.name!r}: a whiteout must name an entry of its directory")
        hidden = parent / name
        self._forget("/".join((*parts[:-1], name)))
        _remove(hidden)
        os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0))

    def _directory(self, member: tarfile.TarInfo, parts: tuple[str, ...], target: Path) -> None:
        st = os.lstat(target) if os.path.lexists(target) else None
        if st is None or not stat.S_ISDIR(st.st_mode):
            self._forget("/".join(parts))
            _remove(target)
            os.mkdir(target, 0o700)
        self.dir_times.append((target, int(member.mtime)))

    def _hard_link(self, member: tarfile.TarInfo, parts: tuple[str, ...], target: Path) -> None:
        self._forget("/".join(parts))
        _remove(target)
        link_parts = clean_name(member.linkname)
        if not link_parts:
            raise UnsafeLayer(f"{member.name!r}: hard link to the layer's root")
        source = _walk_parent(self.root, link_parts, member.name, create=False) / link_parts[-1]
        if not os.path.lexists(source):
            raise UnsafeLayer(f"{member.name!r}: hard link target {member.linkname!r} is not in the layer")
        if stat.S_ISDIR(os.lstat(source).st_mode):
            raise UnsafeLayer(f"{member.name!r}: hard link to the directory {member.linkname!r}")
        os.link(source, target, follow_symlinks=False)
        linked = self.devices.get("/".join(link_parts))
        if linked is not None:  # a link to a device's placeholder is that device too
            self.devices["/".join(parts)] = dataclasses.replace(linked, path="/".join(parts))

    def _make(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: tuple[str, ...], target: Path) -> None:
        """A symlink, file, fifo or a device's placeholder, at a path now free."""
        if member.issym():
            os.symlink(member.linkname, target)
        elif member.isfile():
            _write_file(tar, member, target)
        elif member.ischr() or member.isblk():
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0))
            self.devices["/".join(parts)] = Device("/".join(parts), member.isblk(), member.devmajor,
                                                   member.devminor, member.mode & 0o7777, member.uid, member.gid)
        elif member.isfifo():
            os.mkfifo(target, 0o600)
        else:
            raise UnsafeLayer(f"{member.name!r}: unsupported tar entry type {member.type!r}")


def _set_metadata(member: tarfile.TarInfo, target: Path) -> None:
    """Owner, mode, xattrs and (but for directories, set last) mtime of an entry."""
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
