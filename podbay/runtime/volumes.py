"""Pod volumes on this node, kept under <state_root>/pods/<uid>/volumes/<name>.

They belong to the pod, not to a sandbox: they survive a sandbox being torn
down (HyperContainer's stop) and go only when the pod is removed.
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from podbay.runtime.syscalls import MS_NODEV, MS_NOSUID, mount, umount


class VolumeError(Exception):
    """A volume that cannot be set up; the message names the volume and why."""


@dataclass(frozen=True)
class EmptyDir:
    medium: str = ""  # "" (disk) or "Memory" (tmpfs)
    size_limit: int | None = None  # bytes


@dataclass(frozen=True)
class HostPath:
    path: str
    type: str = ""


@dataclass(frozen=True)
class Files:
    """configMap, secret and downwardAPI volumes: files written by the agent."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # relative path -> (content, mode)
    medium: str = ""  # secrets live in memory, as the kubelet keeps them


VolumeSource = EmptyDir | HostPath | Files


def pod_volumes_dir(pods_root: Path, pod_uid: str) -> Path:
    return pods_root / pod_uid / "volumes"


def setup_volume(pods_root: Path, pod_uid: str, name: str, source: VolumeSource) -> Path:
    """Makes the volume (idempotent) and returns the host path containers bind-mount."""
    if isinstance(source, HostPath):
        return _host_path(name, source)
    target = pod_volumes_dir(pods_root, pod_uid) / name
    target.mkdir(parents=True, exist_ok=True)
    memory = (isinstance(source, EmptyDir) and source.medium == "Memory") or (
        isinstance(source, Files) and source.medium == "Memory")
    if memory and not os.path.ismount(target):  # its tmpfs, on a device apart from the parent's
        size = f",size={source.size_limit}" if isinstance(source, EmptyDir) and source.size_limit else ""
        mount("tmpfs", str(target), "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0777{size}")
    if isinstance(source, EmptyDir):
        target.chmod(0o777)
    else:
        _write_files(target, source.files)
    return target


def _write_files(target: Path, files: dict[str, tuple[bytes, int]]) -> None:
    for rel, (content, mode) in files.items():
        path = target / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise VolumeError(f"{rel}: must be a relative path without '..'")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        tmp.chmod(mode)
        tmp.replace(path)


_HOST_PATH_CHECKS = {
    "Directory": (stat.S_ISDIR, "is not a directory"),
    "File": (stat.S_ISREG, "is not a file"),
    "Socket": (stat.S_ISSOCK, "is not a socket file"),
    "CharDevice": (stat.S_ISCHR, "is not a character device"),
    "BlockDevice": (stat.S_ISBLK, "is not a block device"),
}


def _host_path(name: str, source: HostPath) -> Path:
    """hostPath with the kubelet's type checks (pkg/volume/hostpath)."""
    path = Path(source.path)
    kind = source.type or ""
    if kind == "DirectoryOrCreate" and not path.exists():
        path.mkdir(mode=0o755, parents=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o644)
    if not kind:
        return path
    check = {"DirectoryOrCreate": "Directory", "FileOrCreate": "File"}.get(kind, kind)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VolumeError(f'hostPath type check failed: {path} is not a {check.lower()}'
                          if check in ("Directory", "File") else f"hostPath type check failed: {path} does not exist") from None
    test, problem = _HOST_PATH_CHECKS[check]
    if not test(mode):
        raise VolumeError(f"volume {name!r}: hostPath type check failed: {path} {problem}")
    return path


def sub_path(volume_path: Path, sub: str) -> Path:
    """A subPath inside the volume, created as a directory when missing; never outside it."""
    candidate = (volume_path / sub).resolve()
    if not candidate.is_relative_to(volume_path.resolve()):
        raise VolumeError(f"subPath {sub!r} leads outside the volume")
    if not candidate.exists():
        candidate.mkdir(parents=True, mode=0o777)
    return candidate


def remove_pod_volumes(pods_root: Path, pod_uid: str) -> None:
    directory = pods_root / pod_uid
    volumes = pod_volumes_dir(pods_root, pod_uid)
    if volumes.is_dir():
        for child in volumes.iterdir():
            umount(str(child))
    shutil.rmtree(directory, ignore_errors=True)
