"""OCI images on this node: a content-addressed store, unpacked shared layers, import, pull."""
from podbay.runtime.images.busybox import ensure_busybox_image
from podbay.runtime.images.reference import normalize_reference
from podbay.runtime.images.store import Image, ImageConfig, ImageNotFound, ImageStore

__all__ = ["Image", "ImageConfig", "ImageNotFound", "ImageStore", "ensure_busybox_image", "normalize_reference"]
