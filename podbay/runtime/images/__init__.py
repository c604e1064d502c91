"""OCI images on this node: a content-addressed store, unpacked shared layers, import, pull.

`pull(store, ref)` and `import_archive(store, path)` fill an `ImageStore`; the store itself
knows nothing of registries or archive formats."""
from podbay.runtime.images.archive import BadArchive, import_archive
from podbay.runtime.images.busybox import ensure_busybox_image
from podbay.runtime.images.reference import InvalidReference, Reference, normalize_reference, parse_reference
from podbay.runtime.images.registry import PullError, pull
from podbay.runtime.images.content import DigestMismatch
from podbay.runtime.images.layers import ImageLimits
from podbay.runtime.images.store import Image, ImageConfig, ImageNotFound, ImageStore
from podbay.runtime.images.unpack import ImageFsLow, NotATar, TooLarge, UnsafeLayer

__all__ = ["BadArchive", "DigestMismatch", "Image", "ImageConfig", "ImageFsLow", "ImageLimits", "ImageNotFound",
           "ImageStore", "InvalidReference", "NotATar", "PullError", "Reference", "TooLarge", "UnsafeLayer",
           "ensure_busybox_image", "import_archive", "normalize_reference", "parse_reference", "pull"]
