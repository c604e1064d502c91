"""Device nodes of image layers, made in a container's own rootfs view.

Layers are shared and live on the host, so the unpacker leaves only a placeholder (an
empty mode-0000 file) where a layer has a device node. Once a container's overlay is
mounted, each device that is still visible in it (no higher layer replaced or whited out
its path) is made there: the node lands in the container's upper directory, under the
0700 state root, as containerd makes them in its 0700 snapshot directories.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from podbay.runtime.images.unpack import Device


def make_devices(rootfs: Path, layers: list[Path], devices: list[list[Device]]) -> None:
    """`layers` (top first, as overlayfs' lowerdir) and each one's `devices`."""
    for i, layer_devices in enumerate(devices):
        for device in layer_devices:
            if any(os.path.lexists(upper / device.path) for upper in layers[:i]):
                continue  # a higher layer has its own entry (or whiteout) there
            parent, name = _open_parent(rootfs, device.path)
            if parent is None:
                continue  # a higher layer removed or replaced a directory above it
            try:
                try:
                    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                os.unlink(name, dir_fd=parent)
                kind = stat.S_IFBLK if device.block else stat.S_IFCHR
                os.mknod(name, kind | 0o600, os.makedev(device.major, device.minor), dir_fd=parent)
                os.chown(name, device.uid, device.gid, dir_fd=parent, follow_symlinks=False)
                os.chmod(name, device.mode, dir_fd=parent)
            finally:
                os.close(parent)


def _open_parent(rootfs: Path, path: str) -> tuple[int | None, str]:
    """The directory holding `path` in the rootfs, reached without following any symlink
    (the image's, which could point anywhere on the host); None when it is not there."""
    parts = path.split("/")
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for part in parts[:-1]:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None, parts[-1]
        os.close(fd)
        fd = child
    return fd, parts[-1]
