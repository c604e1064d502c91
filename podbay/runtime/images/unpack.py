"""Layer tarballs unpacked into a directory in the form overlayfs expects, refusing
hostile archives: nothing is ever written outside the layer's directory."""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class UnsafeLayer(ValueError):
    """An archive entry that would write outside the layer or through a planted link."""


def _clean(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute():
        path = PurePosixPath(*path.parts[1:])
    if any(part == ".." for part in path.parts):
        raise UnsafeLayer(f"{name}: path escapes the layer ('..')")
    return PurePosixPath(*[p for p in path.parts if p not in (".", "")])


def _safe_parent(root: Path, rel: PurePosixPath) -> Path:
    """The entry's parent directory, created as needed; no component may be a symlink,
    so an earlier entry cannot redirect a later one outside the layer."""
    current = root
    for part in rel.parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeLayer(f"{rel}: passes through the symlink {current.relative_to(root)}")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeLayer(f"{rel}: {current.relative_to(root)} is not a directory")
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


def unpack_layer(archive: Path, dest: Path) -> None:
    """Unpacks one layer (gzip or plain tar) into `dest` (which must exist and be empty)."""
    root = dest
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            rel = _clean(member.name)
            if not rel.parts:
                continue
            parent = _safe_parent(root, rel)
            target = parent / rel.name
            base = rel.name
            if base == OPAQUE:
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
                continue
            if base.startswith(WHITEOUT):
                gone = parent / base[len(WHITEOUT):]
                _remove(gone)
                os.mknod(gone, stat.S_IFCHR | 0o000, os.makedev(0, 0))
                continue
            if member.isdir():
                if not target.is_dir() or target.is_symlink():
                    _remove(target)
                    os.mkdir(target, 0o755)
            else:
                _remove(target)
                if member.issym():
                    os.symlink(member.linkname, target)
                elif member.islnk():
                    # The target is cleaned like any path and reached through no symlink,
                    # so a hard link cannot reach outside the layer.
                    link_rel = _clean(member.linkname)
                    _safe_parent(root, link_rel)
                    os.link(root.joinpath(*link_rel.parts), target, follow_symlinks=False)
                    continue
                elif member.isfile():
                    with tar.extractfile(member) as src, open(target, "wb") as out:  # type: ignore[union-attr]
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                elif member.ischr() or member.isblk():
                    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                    os.mknod(target, kind | (member.mode & 0o7777), os.makedev(member.devmajor, member.devminor))
                elif member.isfifo():
                    os.mkfifo(target, member.mode & 0o7777)
                else:
                    continue
            os.lchown(target, member.uid, member.gid)
            if not member.issym():
                os.chmod(target, member.mode & 0o7777)
                for key, value in (member.pax_headers or {}).items():
                    if key.startswith("SCHILY.xattr."):
                        os.setxattr(target, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"),
                                    follow_symlinks=False)
                os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
