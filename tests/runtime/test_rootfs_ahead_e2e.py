"""A container's rootfs made ahead of its create (while its pod's sandbox is made): the container
created on it runs from it; one of another image, or one no create takes, is removed, mount and
directories; an image not present makes none."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from podbay.runtime.service import RuntimeService
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, ContainerRuntimeError, ContainerState, PodSandboxConfig, PodSandboxMetadata,
)

pytestmark = pytest.mark.e2e
BUSYBOX = "busybox:1.35"


def overlay_mounts(root: Path) -> list[str]:
    """The overlay mounts under `root`, as the host's mount table lists them."""
    with open("/proc/self/mounts") as mounts:
        return [fields[1] for fields in (line.split() for line in mounts)
                if fields[2] == "overlay" and fields[1].startswith(str(root))]


def sandbox_config(name: str) -> PodSandboxConfig:
    return PodSandboxConfig(metadata=PodSandboxMetadata(name, "default", f"uid-{name}"), hostname=name)


async def test_a_container_created_on_a_rootfs_made_ahead_runs_from_it(runtime: RuntimeService) -> None:
    sid, ahead = await asyncio.gather(runtime.run_pod_sandbox(sandbox_config("p")),
                                      runtime.make_rootfs_ahead(BUSYBOX))
    assert overlay_mounts(runtime.config.bundles_root) == [str(runtime.config.bundles_root / ahead / "rootfs")]
    cfg = ContainerConfig(ContainerMetadata("c"), BUSYBOX, ["/bin/sh", "-c", "echo made > /made; cat /made"])
    cid = await runtime.create_container(sid, cfg, ahead)
    assert cid == ahead
    await runtime.start_container(cid)
    status = await runtime.wait_container(cid)
    assert (status.state, status.exit_code) == (ContainerState.EXITED, 0)
    log = Path(await runtime.container_log_path(cid)).read_text()
    assert log.rstrip().endswith("stdout F made")
    # The same id again is no rootfs made ahead: the next create makes its own.
    other = await runtime.create_container(sid, ContainerConfig(ContainerMetadata("d"), BUSYBOX, ["true"]), ahead)
    assert other != ahead


async def test_a_rootfs_made_ahead_and_not_taken_is_removed(runtime: RuntimeService) -> None:
    bundles, containers = runtime.config.bundles_root, runtime.config.containers_root
    ahead = await runtime.make_rootfs_ahead(BUSYBOX)
    await runtime.release_rootfs(ahead)
    assert overlay_mounts(bundles) == []
    assert not (bundles / ahead).exists() and not (containers / ahead).exists()
    # One handed to the create of a container of another image is removed, and the create makes
    # the container's own.
    sid = await runtime.run_pod_sandbox(sandbox_config("q"))
    ahead = await runtime.make_rootfs_ahead(BUSYBOX)
    runtime.containers.ahead._held[ahead] = "sha256:" + "0" * 64  # as if the tag had moved since
    cid = await runtime.create_container(sid, ContainerConfig(ContainerMetadata("c"), BUSYBOX, ["/bin/sleep", "60"]), ahead)
    assert cid != ahead
    assert overlay_mounts(bundles) == [str(bundles / cid / "rootfs")]
    assert not (bundles / ahead).exists() and not (containers / ahead).exists()
    # One left at shutdown goes with it (the leftovers check sees no mount after the test).
    await runtime.make_rootfs_ahead(BUSYBOX)


async def test_no_rootfs_ahead_of_an_image_not_present(runtime: RuntimeService) -> None:
    with pytest.raises(ContainerRuntimeError, match='image "example.invalid/none:1" not present'):
        await runtime.make_rootfs_ahead("example.invalid/none:1")
    assert overlay_mounts(runtime.config.bundles_root) == []
