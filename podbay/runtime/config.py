"""Where the runtime keeps its state and which host resources it may use."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RuntimeConfig:
    state_root: Path = Path("/var/lib/podbay")  # images, layers, writable layers, volumes
    run_root: Path = Path("/run/podbay")  # bundles, namespace files, conmon pid and exit files
    cgroup_parent: str = "podbay"
    oci_runtime: str = "crun"
    conmon: str = "conmon"
    network_name: str = "podbay"
    bridge: str = "podbay0"
    subnet: str = "10.244.0.0/24"
    cluster_cidr: str | None = None  # pods' traffic to it is not masqueraded (NetworkConfig.cluster_cidr)
    cni_conf_dir: Path | None = None  # default: <state_root>/cni/net.d
    cni_bin_dirs: tuple[Path, ...] = field(default=(Path("/usr/lib/cni"), Path("/opt/cni/bin")))
    warm_sandboxes: int = 1  # sandboxes kept ready (namespaces and network) for the next pods

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
