"""Where the runtime keeps its state and which host resources it may use."""
from __future__ import annotations

import array
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path


RUNSC_NETWORKS = ("sandbox", "host")  # gVisor's netstack, or the pod's network namespace through the host kernel

# linux/fs.h: the inode flags ioctls, and the flag chattr calls T
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


@dataclass(frozen=True)
class RuntimeConfig:
    state_root: Path = Path("/var/lib/podbay")  # images, layers, writable layers, volumes
    run_root: Path = Path("/run/podbay")  # bundles, namespace files, conmon pid and exit files
    cgroup_parent: str = "podbay"
    oci_runtime: str = "crun"
    runsc: str | None = "runsc"  # gVisor's runtime for the "runsc" handler; None or not installed: no such handler
    runsc_platform: str = "ptrace"
    runsc_network: str = "sandbox"  # RUNSC_NETWORKS; "sandbox" falls back to "host" where runsc refuses it
    conmon: str = "conmon"
    network_name: str = "podbay"
    bridge: str = "podbay0"
    subnet: str = "10.244.0.0/24"
    cluster_cidr: str | None = None  # pods' traffic to it is not masqueraded (NetworkConfig.cluster_cidr)
    cni_conf_dir: Path | None = None  # default: <state_root>/cni/net.d
    cni_bin_dirs: tuple[Path, ...] = field(default=(Path("/usr/lib/cni"), Path("/opt/cni/bin")))
    warm_sandboxes: int = 1  # sandboxes kept ready (namespaces and network) for the next pods
    # gVisor sandboxes kept booted (a warm sandbox with its kernel running) for the next runsc pods
    warm_gvisor_sandboxes: int = 0
    max_image_size: int = 20 << 30  # unpacked bytes per image (ImageLimits says why 20 GiB)
    imagefs_min_available: float = 0.15  # unpacking stops short of the imagefs.available hard eviction threshold

    @property
    def images_root(self) -> Path:
        return self.state_root / "images"

    @property
    def containers_root(self) -> Path:
        return self.state_root / "containers"

    @property
    def sandboxes_root(self) -> Path:
        return self.state_root / "sandboxes"

    @property
    def pods_root(self) -> Path:
        return self.state_root / "pods"

    @property
    def bundles_root(self) -> Path:
        return self.run_root / "bundles"

    @property
    def netns_root(self) -> Path:
        return self.run_root / "ns"

    @property
    def exits_root(self) -> Path:
        return self.run_root / "exits"

    @property
    def crun_root(self) -> Path:
        return self.run_root / "crun"

    @property
    def cni_dir(self) -> Path:
        return self.cni_conf_dir or self.state_root / "cni" / "net.d"


def prepare_roots(config: RuntimeConfig) -> None:
    """The state and run roots and the directories under them that lead to layers, rootfs
    views, volumes and records, all 0700 (as containerd's root and state): images keep
    their setuid binaries and containers write what they like, none of which another
    user of the host may reach. Installs made before are tightened here too."""
    # The directories holding one tree per container, sandbox or pod.
    per_object = (config.containers_root, config.pods_root, config.bundles_root, config.crun_root,
                  config.run_root / "sandboxes", config.state_root / "logs")
    for d in (config.state_root, config.run_root, config.images_root, config.sandboxes_root,
              config.netns_root, config.exits_root, *per_object):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    for d in per_object:
        spread_subdirectories(d)


def spread_subdirectories(directory: Path) -> None:
    """Marks `directory` as the top of separate trees (`chattr +T`): ext4 then places each new
    subdirectory (one per container, sandbox or pod here) in a lightly used block group, as it does
    for home directories, instead of beside its parent.

    Left beside each other, every pod's files are allocated in one group, which its deleted pods'
    inodes fill: ext4 without a journal skips an inode freed in the last minutes one by one, a
    buffer lookup each, so each new file there costs up to hundreds of microseconds (an eighth to
    a quarter of the machine's CPU in a 100-pod burst here, by perf). Other filesystems refuse or
    ignore the flag; it only guides placement, so a refusal changes nothing."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        if not flags[0] & _FS_TOPDIR_FL:
            flags[0] |= _FS_TOPDIR_FL
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags, True)
    except OSError:
        pass  # no inode flags here (ENOTTY, EOPNOTSUPP, EINVAL): nothing to guide
    finally:
        os.close(fd)
