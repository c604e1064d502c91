"""The unpacked layers (containerd's snapshotter, in small): each layer unpacked once,
by diff id, and shared by every image using it.

    <root>/layers/<diffid hex>/   a layer's files, in the form overlayfs expects
    <root>/layerinfo/<hex>.json   its unpacked size and device nodes (made only in containers)

A layer directory becomes visible only once fully unpacked (renamed into place from the
content store's tmp/). Unpacking is bounded (`ImageLimits`): per image, and by the image
filesystem's free space.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from podbay.runtime.images.content import ContentStore, DigestMismatch, private_dir
from podbay.runtime.images.digests import digest_hex
from podbay.runtime.images.unpack import Budget, Device, LayerStream, open_layer, unpack_layer

GiB = 1 << 30


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on what unpacking may write. 20 GiB per image is far above real images (the
    largest common ones, CUDA and ML stacks, unpack to 10-15 GiB) yet stops a bomb long
    before most disks fill; 15 % is the kubelet's default imagefs.available hard eviction
    threshold, below which it would start evicting pods anyway."""

    max_image_bytes: int = 20 * GiB
    min_available: float = 0.15
    # How the user sets them, named in the errors.
    max_image_flag: str = "--max-image-size (PODBAY_MAX_IMAGE_SIZE)"


@dataclass(frozen=True)
class LayerInfo:
    size: int  # bytes of its uncompressed tar stream
    devices: list[Device]


class LayerStore:
    def __init__(self, content: ContentStore, limits: ImageLimits) -> None:
        self.content = content
        self.limits = limits
        self.root = content.root / "layers"
        self.info_dir = content.root / "layerinfo"
        for d in (self.root, self.info_dir):
            private_dir(d)

    def path(self, diff_id: str) -> Path:
        return self.root / digest_hex(diff_id)

    def has(self, diff_id: str) -> bool:
        return self.path(diff_id).is_dir()

    def layer_info(self, diff_id: str) -> LayerInfo:
        try:
            data = json.loads(self._info_path(diff_id).read_text())
        except FileNotFoundError:
            # Unpacked before layer info was kept (and before devices were kept out of layers).
            layer = self.path(diff_id)
            size = sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(layer) for f in files)
            return LayerInfo(size, [])
        return LayerInfo(data["size"], [Device(**d) for d in data["devices"]])

    def _info_path(self, diff_id: str) -> Path:
        return self.info_dir / f"{digest_hex(diff_id)}.json"

    def _write_layer_info(self, diff_id: str, info: LayerInfo) -> None:
        path = self._info_path(diff_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(info)))
        os.replace(tmp, path)

    def budget(self, max_bytes: int, limit_name: str) -> Budget:
        return Budget(max_bytes, self.content.root, self.limits.min_available, limit_name)

    def ensure_layer(self, blob_digest: str, diff_id: str | None = None, *, what: str = "",
                     budget: Budget | None = None) -> str:
        """Unpacks a layer blob once and returns its diff id, the digest of the
        uncompressed tar, which is checked against `diff_id` when given. Unpacking stops
        (and leaves nothing) past `budget`, by default the per-image limit."""
        if diff_id is not None and self.has(diff_id):
            return diff_id
        what = f"{what}layer {blob_digest}"
        if budget is None:
            budget = self.budget(self.limits.max_image_bytes, f"{self.limits.max_image_flag} per image")
        with self.content.scratch_dir("layer-") as work:
            with open_layer(self.content.blob_path(blob_digest)) as raw:
                stream = LayerStream(raw, what, budget)
                devices = unpack_layer(stream, work)
                actual = stream.drain()
            if diff_id is not None and actual != diff_id:
                raise DigestMismatch(f"layer {blob_digest}: diff id mismatch: config says {diff_id}, "
                                     f"the layer is {actual}")
            # The layer's root is the rootfs' "/" (its mode shows in containers); the
            # store's 0700 directories above keep it from other users on the host.
            os.chmod(work, 0o755)
            self._write_layer_info(actual, LayerInfo(stream.count, devices))
            try:
                os.rename(work, self.path(actual))
            except OSError:
                if not self.has(actual):
                    raise
        return actual

    def remove(self, diff_id: str) -> None:
        shutil.rmtree(self.path(diff_id), ignore_errors=True)
        self._info_path(diff_id).unlink(missing_ok=True)

    def move_out(self, diff_id: str, doomed: Path) -> None:
        """Renames the layer into `doomed` (to be deleted later, outside the lock), so a
        concurrent add never sees half a layer."""
        layer = self.path(diff_id)
        if layer.exists():
            os.rename(layer, doomed / digest_hex(diff_id))
        self._info_path(diff_id).unlink(missing_ok=True)
