"""Image garbage collection, as the kubelet's image manager does it: when the image filesystem
is fuller than the high threshold, unused images go, least recently used first, until usage is
below the low threshold. An image is in use while any container (running or exited) refers to
it; images seen for less than the minimum age and pinned images stay."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable

from podbay.agent.cri import ContainerRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageGCPolicy:
    high_threshold_percent: int = 85  # the kubelet's imageGCHighThresholdPercent
    low_threshold_percent: int = 80
    minimum_age: float = 120.0  # seconds an image must have been known before it may go
    period: float = 300.0  # the kubelet checks every 5 minutes
    pinned: frozenset[str] = frozenset()  # image references never collected


@dataclass
class ImageRecord:
    id: str
    size: int
    first_detected: float
    last_used: float


def images_to_free(images: list[ImageRecord], in_use: set[str], used_bytes: int, capacity_bytes: int,
                   policy: ImageGCPolicy, now: float) -> list[str]:
    """The image IDs to remove, oldest use first, to bring usage under the low threshold;
    nothing while usage is under the high threshold."""
    if capacity_bytes <= 0 or used_bytes * 100 < policy.high_threshold_percent * capacity_bytes:
        return []
    to_free = used_bytes - capacity_bytes * policy.low_threshold_percent // 100
    chosen: list[str] = []
    candidates = sorted((i for i in images if i.id not in in_use and now - i.first_detected >= policy.minimum_age),
                        key=lambda i: i.last_used)
    for image in candidates:
        if to_free <= 0:
            break
        chosen.append(image.id)
        to_free -= image.size
    return chosen


@dataclass
class ImageGC:
    runtime: ContainerRuntime
    policy: ImageGCPolicy = field(default_factory=ImageGCPolicy)
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    records: dict[str, ImageRecord] = field(default_factory=dict)

    async def detect(self) -> set[str]:
        """Refreshes what is known of each image and returns the IDs in use (or pinned)."""
        now = self.clock()
        images = await self.runtime.list_images()
        in_use = {c.image_ref for c in await self.runtime.list_containers()}
        in_use |= {i.id for i in images if self.policy.pinned & set(i.repo_tags)}
        for image in images:
            record = self.records.setdefault(image.id, ImageRecord(image.id, image.size, now, now))
            record.size = image.size
            if image.id in in_use:
                record.last_used = now
        for gone in set(self.records) - {i.id for i in images}:
            del self.records[gone]
        return in_use

    async def collect(self) -> list[str]:
        """One pass: the IDs of the images removed."""
        in_use = await self.detect()
        used, capacity = await self.runtime.image_fs_info()
        removed = []
        for image_id in images_to_free(list(self.records.values()), in_use, used, capacity, self.policy, self.clock()):
            try:
                await self.runtime.remove_image(image_id)
            except Exception as exc:  # one image that cannot go must not stop the others
                log.warning("image garbage collection: %s not removed: %s", image_id, exc)
                continue
            self.records.pop(image_id, None)
            removed.append(image_id)
        if removed:
            log.info("image garbage collection removed %d image(s): %s", len(removed), ", ".join(removed))
        return removed

    async def run(self) -> None:
        while True:
            try:
                await self.collect()
            except Exception:
                log.exception("image garbage collection failed")
            await asyncio.sleep(self.policy.period)
