"""The node agent's image garbage collector against a real runtime: unused images go, images
used by a container (even an exited one) and pinned images stay."""
from __future__ import annotations

import shutil
from pathlib import Path

from podbay.agent.imagegc import ImageGC, ImageGCPolicy
from podbay.runtime.images import ImageConfig
from podbay.runtime.service import RuntimeService
from podbay.runtime.types import ContainerConfig, ContainerMetadata, PodSandboxConfig, PodSandboxMetadata


def build(runtime: RuntimeService, tmp_path: Path, tag: str) -> str:
    root = tmp_path / tag.replace(":", "-")
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin/sh")
    (root / "tag").write_text(tag)  # a layer of its own, so a distinct image
    return runtime.images.build(root, tag=tag, config=ImageConfig(cmd=["/bin/sh"])).id


async def test_unused_images_go_used_and_pinned_stay(runtime: RuntimeService, tmp_path: Path) -> None:
    unused, used = build(runtime, tmp_path, "unused:1"), build(runtime, tmp_path, "used:1")
    sid = await runtime.run_pod_sandbox(PodSandboxConfig(PodSandboxMetadata("gc", "default", "uid-gc"), "gc"))
    cid = await runtime.create_container(sid, ContainerConfig(ContainerMetadata("c"), "used:1", ["/bin/sh", "-c", "true"]))
    await runtime.start_container(cid)
    await runtime.wait_container(cid)
    gc = ImageGC(runtime, ImageGCPolicy(high_threshold_percent=0, low_threshold_percent=0, minimum_age=0,
                                        pinned=frozenset({"docker.io/library/busybox:1.35"})))
    assert await gc.collect() == [unused]
    left = {i.id for i in await runtime.list_images()}
    assert used in left and unused not in left
    assert await runtime.image_status("busybox:1.35") is not None
    await runtime.remove_container(cid)
    await runtime.remove_pod_sandbox(sid)
    assert await gc.collect() == [used]
