"""Images imported from archives: an OCI image layout (directory or tar, as written by
`skopeo copy ... oci:` / `oci-archive:` or `podman save --format oci-archive`) and
Docker's save format (`docker save`, `podman save`, `skopeo copy ... docker-archive:`)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podbay.runtime.images.manifests import (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
                                             is_index, select_platform)
from podbay.runtime.images.reference import parse_reference
from podbay.runtime.images.unpack import LayerStream, open_layer, unpack_layer

if TYPE_CHECKING:
    from podbay.runtime.images.store import Image, ImageStore

NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


class BadArchive(ValueError):
    pass


def import_archive(store: "ImageStore", path: Path) -> list["Image"]:
    """Adds every image in the archive to the store, tagged as the archive names it."""
    path = Path(path)
    # The blobs this import copied in; if it fails, those no image uses go again.
    added: set[str] = set()
    try:
        return _import(store, path, added)
    except BaseException:
        store.drop_unused_blobs(added)
        raise


def _import(store: "ImageStore", path: Path, added: set[str]) -> list["Image"]:
    if path.is_dir():
        return _import_dir(store, path, added)
    if not path.is_file():
        raise FileNotFoundError(f"image archive {path} does not exist")
    # Extracted with the layer unpacker, so a hostile archive cannot write outside, and
    # bounded as an image is: its blobs are (mostly compressed) image content.
    limit = f"{store.limits.max_image_flag} (an image archive may hold as much as one image may unpack to)"
    with store.content.scratch_dir("archive-") as tmp:
        with open_layer(path) as raw:
            stream = LayerStream(raw, f"image archive {path}", store.layers.budget(store.limits.max_image_bytes, limit))
            unpack_layer(stream, tmp, check_name=_archive_entry)
        return _import_dir(store, tmp, added)


_HEX = "[0-9a-f]{64}"
# What OCI image layouts and docker save archives (old and new, docker, podman, skopeo)
# hold; docker save's manifest.json may name its files freely, but flat, as *.json, *.tar.
_ARCHIVE_ENTRY = re.compile(rf"""(oci-layout|repositories|[^/]+\.(json|tar(\.gz|\.zst)?)
    |blobs(/[a-z0-9]+(/[0-9a-f]+)?)?
    |{_HEX}(/(layer\.tar|json|VERSION))?)""", re.X)


def _archive_entry(parts: tuple[str, ...], name: str) -> None:
    """Refuses, at its first stray entry, a tar that is not an image archive (a rootfs
    tarball, say) before more of it is unpacked."""
    if not _ARCHIVE_ENTRY.fullmatch("/".join(parts)):
        raise BadArchive(f"{name!r}: not an entry of an OCI image layout (oci-layout, index.json, blobs/) "
                         "or a docker save archive (manifest.json, <id>.tar, <id>/layer.tar)")


def _import_dir(store: "ImageStore", root: Path, added: set[str]) -> list["Image"]:
    if (root / "oci-layout").is_file() and (root / "index.json").is_file():
        ids = _import_oci_layout(store, root, added)
    elif (root / "manifest.json").is_file():
        ids = _import_docker_save(store, root, added)
    else:
        raise BadArchive(f"{root}: neither an OCI image layout (oci-layout, index.json) "
                         "nor a docker save archive (manifest.json)")
    images = []
    for image_id in dict.fromkeys(ids):
        image = store.image_status(image_id)
        assert image is not None
        images.append(image)
    return images


def _file(root: Path, rel: str, what: str) -> Path:
    """A regular file of the archive; links may be followed only within it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(root / rel)
    if not real.startswith(real_root + os.sep):
        raise BadArchive(f"{what} {rel!r} points outside the archive")
    if not os.path.isfile(real):
        raise BadArchive(f"{what} {rel!r} is missing from the archive")
    return Path(real)


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except ValueError as e:
        raise BadArchive(f"{what}: not valid JSON: {e}") from None


def _copy_blob(store: "ImageStore", root: Path, digest: str, added: set[str]) -> Path:
    algorithm, _, hexpart = digest.partition(":")
    if not store.content.has_blob(digest):
        store.content.put_blob_file(_file(root, f"blobs/{algorithm}/{hexpart}", "blob"), digest)
        added.add(digest)
    return store.content.blob_path(digest)


def _tag_of(name: str | None) -> list[str]:
    """A full reference names the image; a bare ref name ("1.35") says no repository."""
    if not name or ("/" not in name and ":" not in name):
        return []
    return [str(parse_reference(name))]


def _import_oci_layout(store: "ImageStore", root: Path, added: set[str]) -> list[str]:
    index = _load_json(root / "index.json", "index.json")
    ids = []
    for i, desc in enumerate(index.get("manifests") or []):
        annotations = desc.get("annotations") or {}
        name = next((annotations[k] for k in NAME_ANNOTATIONS if annotations.get(k)), None)
        try:
            tags = _tag_of(name)
        except ValueError as e:
            raise BadArchive(f"index.json: manifests[{i}].annotations: {e}") from None
        try:
            top = desc["digest"]
            manifest_digest = top
            doc = _load_json(_copy_blob(store, root, top, added), f"blob {top}")
            while is_index(doc, desc.get("mediaType")):
                desc = select_platform(doc)
                manifest_digest = desc["digest"]
                doc = _load_json(_copy_blob(store, root, manifest_digest, added), f"blob {manifest_digest}")
            for blob in [doc["config"], *(doc.get("layers") or [])]:
                _copy_blob(store, root, blob["digest"], added)
        except KeyError as e:
            raise BadArchive(f"index.json: manifests[{i}]: a descriptor lacks {e}") from None
        image = store.add_image(manifest_digest, tags=tags,
                                index_digest=top if top != manifest_digest else None)
        ids.append(image.id)
    return ids


def _import_docker_save(store: "ImageStore", root: Path, added: set[str]) -> list[str]:
    entries = _load_json(root / "manifest.json", "manifest.json")
    if not isinstance(entries, list):
        raise BadArchive("manifest.json: want a list of images")
    ids = []
    for i, entry in enumerate(entries):
        try:
            tags = [str(parse_reference(t)) for t in entry.get("RepoTags") or []]
        except ValueError as e:
            raise BadArchive(f"manifest.json[{i}].RepoTags: {e}") from None
        if "Config" not in entry:
            raise BadArchive(f"manifest.json[{i}]: missing Config")
        config_digest = store.content.put_blob_file(_file(root, entry["Config"], f"manifest.json[{i}].Config"))
        added.add(config_digest)
        layers = []
        for j, rel in enumerate(entry.get("Layers") or []):
            layer_digest = store.content.put_blob_file(_file(root, rel, f"manifest.json[{i}].Layers[{j}]"))
            added.add(layer_digest)
            blob = store.content.blob_path(layer_digest)
            with open(blob, "rb") as f:
                gzipped = f.read(2) == b"\x1f\x8b"
            layers.append({"mediaType": DOCKER_LAYER_GZIP if gzipped else DOCKER_LAYER,
                           "size": blob.stat().st_size, "digest": "sha256:" + blob.name})
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest,
                               "size": store.content.blob_path(config_digest).stat().st_size},
                    "layers": layers}
        manifest_digest = store.content.put_blob(json.dumps(manifest, sort_keys=True).encode())
        added.add(manifest_digest)
        ids.append(store.add_image(manifest_digest, tags=tags).id)
    return ids
