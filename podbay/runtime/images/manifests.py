"""Manifest and index documents of the OCI image spec and Docker's schema 2."""
from __future__ import annotations

from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# Layers are unpacked as tar, gzip or zstd told by their first bytes; these are the types that promise one.
LAYER_TYPES = frozenset({
    OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_NONDISTRIBUTABLE, f"{OCI_NONDISTRIBUTABLE}+gzip",
    f"{OCI_NONDISTRIBUTABLE}+zstd", DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_FOREIGN_LAYER,
})

PLATFORM_OS = "linux"
PLATFORM_ARCH = "amd64"


def media_type(doc: dict[str, Any], declared: str | None = None) -> str:
    """The document's media type: its own field, else what its descriptor or the
    registry said, else told apart by shape (an index lists manifests)."""
    found = doc.get("mediaType") or declared or ""
    if found in INDEX_TYPES or found in MANIFEST_TYPES:
        return found
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc and "config" in doc:
        return OCI_MANIFEST
    raise ValueError(f"unsupported manifest type {found or '(none)'!r}"
                     + (" (Docker schema 1 is not supported)" if doc.get("schemaVersion") == 1 else ""))


def is_index(doc: dict[str, Any], declared: str | None = None) -> bool:
    return media_type(doc, declared) in INDEX_TYPES


def select_platform(index: dict[str, Any], *, os: str = PLATFORM_OS, arch: str = PLATFORM_ARCH) -> dict[str, Any]:
    """The descriptor in an index for this node's platform (linux/amd64)."""
    candidates = [m for m in index.get("manifests") or []
                  if (m.get("platform") or {}).get("os") == os
                  and (m.get("platform") or {}).get("architecture") == arch]
    if not candidates:
        offered = sorted({"{os}/{architecture}".format(os=(m.get("platform") or {}).get("os", "?"),
                                                       architecture=(m.get("platform") or {}).get("architecture", "?"))
                          for m in index.get("manifests") or []})
        raise LookupError(f"no {os}/{arch} image in the index (it offers {', '.join(offered) or 'nothing'})")
    # A variant-less entry is the baseline build; prefer it over e.g. amd64/v3.
    return min(candidates, key=lambda m: bool((m.get("platform") or {}).get("variant")))


def unsupported_layers(manifest: dict[str, Any]) -> list[str]:
    """The manifest's layers this node cannot unpack (encrypted ones, other compressions), by place."""
    return [f"layers[{i}]: unsupported media type {layer['mediaType']!r}"
            for i, layer in enumerate(manifest.get("layers") or [])
            if layer.get("mediaType") and layer["mediaType"] not in LAYER_TYPES]
