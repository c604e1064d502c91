"""Container root filesystems made before their CreateContainer: the agent has a pod's main
containers' rootfs made while the pod's sandbox is made, which a rootfs does not depend on.
Each is held under its future container id with the image it is of, until `create` claims it or
the agent releases it. Nothing is recorded for one, so after a crash `remove_unrecorded` removes
it with any other unrecorded container directory."""
from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Callable

from podbay.runtime.bundles import make_rootfs
from podbay.runtime.images import ImageStore
from podbay.runtime.syscalls import finished_before_cancel
from podbay.runtime.types import ContainerRuntimeError


class RootfsAhead:
    def __init__(self, images: ImageStore, container_dir: Callable[[str], Path], bundle: Callable[[str], Path],
                 remove_files: Callable[[str], None]) -> None:
        self._images = images
        self._container_dir = container_dir
        self._bundle = bundle
        self._remove_files = remove_files  # the rootfs mount, bundle and container directory
        self._held: dict[str, str] = {}  # future container id -> the image id its rootfs is of

    async def make(self, image_ref: str) -> str:
        """A future container's id, its directories made and the image's layers mounted."""
        image = self._images.image_status(image_ref)
        if image is None:
            raise ContainerRuntimeError(f'image "{image_ref}" not present')
        container_id = secrets.token_hex(32)
        try:
            await finished_before_cancel(asyncio.to_thread(
                make_rootfs, self._container_dir(container_id), self._bundle(container_id) / "rootfs",
                self._images.mount_layers(image_ref), self._images.layer_devices(image_ref)))
        except BaseException:
            self._remove_files(container_id)
            raise
        self._held[container_id] = image.id
        return container_id

    def claim(self, container_id: str | None, image_id: str) -> str | None:
        """`container_id`, now a create's, if it is a held rootfs of `image_id`. One of another
        image (the tag moved since it was made) is removed, and the create makes its own."""
        if container_id is None or container_id not in self._held:
            return None
        if self._held.pop(container_id) != image_id:
            self._remove_files(container_id)
            return None
        return container_id

    def release(self, container_id: str | None) -> None:
        """A held rootfs no create took (its pod's sync ended, or the create failed first)."""
        if container_id is not None and self._held.pop(container_id, None) is not None:
            self._remove_files(container_id)

    def release_all(self) -> None:
        for container_id in list(self._held):
            self.release(container_id)
