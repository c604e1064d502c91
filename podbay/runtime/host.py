"""Checks and one-time fixes of the host, before the runtime makes anything."""
from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

from podbay.runtime.syscalls import mount

UNIFIED = Path("/sys/fs/cgroup/unified")


class HostError(RuntimeError):
    """The host cannot run containers; the message says what to do."""


def check_host(oci_runtime: str, conmon: str) -> None:
    if os.geteuid() != 0:
        raise HostError("podbay's runtime needs root (namespaces, cgroups, mounts): run it as root")
    for tool, package in ((oci_runtime, "crun"), (conmon, "conmon")):
        if shutil.which(tool) is None:
            raise HostError(f"{tool} not found: install the Debian package {package!r} (scripts/setup.sh does)")
    fix_hybrid_hugetlb()


def fix_hybrid_hugetlb() -> None:
    """crun refuses every container on a hybrid cgroup host while hugetlb is left to
    the unified hierarchy ("cgroups in hybrid mode not supported"); giving hugetlb
    its own v1 hierarchy, as the other controllers have, takes it out of there."""
    controllers = UNIFIED / "cgroup.controllers"
    if not controllers.exists() or "hugetlb" not in controllers.read_text().split():
        return
    target = Path("/sys/fs/cgroup/hugetlb")
    try:
        target.mkdir(exist_ok=True)
        mount("cgroup", str(target), "cgroup", 0, "hugetlb")
    except OSError as exc:
        raise HostError(
            "crun cannot run on this hybrid cgroup host while hugetlb sits in the unified hierarchy, "
            f"and mounting a v1 hugetlb hierarchy failed ({exc}); run: mkdir -p {target} && "
            f"mount -t cgroup -o hugetlb cgroup {target}") from exc


def nofile_hard_limit() -> int:
    """OCI rlimits above the hard limit make crun fail, so specs are clamped to it."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]
