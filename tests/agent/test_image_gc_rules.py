"""Which images the image garbage collector frees, as the kubelet's image manager decides."""
from __future__ import annotations

from podbay.agent.imagegc import ImageGCPolicy, ImageRecord, images_to_free

POLICY = ImageGCPolicy(high_threshold_percent=85, low_threshold_percent=80, minimum_age=120)
IMAGES = [ImageRecord("old", 30, first_detected=0, last_used=10), ImageRecord("newer", 30, 0, 50),
          ImageRecord("busy", 30, 0, 0), ImageRecord("young", 30, first_detected=950, last_used=950)]


def test_nothing_goes_under_the_high_threshold() -> None:
    assert images_to_free(IMAGES, set(), used_bytes=84, capacity_bytes=100, policy=POLICY, now=1000) == []


def test_least_recently_used_go_first_until_under_the_low_threshold() -> None:
    # 90 used of 100: 10 bytes must go to reach 80; the oldest unused image suffices.
    assert images_to_free(IMAGES, {"busy"}, 90, 100, POLICY, now=1000) == ["old"]
    # 95 used: 15 bytes; still one image of 30.
    assert images_to_free(IMAGES, {"busy"}, 95, 100, POLICY, now=1000) == ["old"]
    # 100 used of 100 with a bigger need: images in use and younger than the minimum age stay.
    assert images_to_free(IMAGES, {"busy"}, 100, 60, POLICY, now=1000) == ["old", "newer"]


def test_images_in_use_or_too_young_are_never_chosen() -> None:
    chosen = images_to_free(IMAGES, {"busy", "old", "newer"}, 100, 100, POLICY, now=1000)
    assert chosen == []
