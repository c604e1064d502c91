"""The image store (containerd's image metadata, in small), over the content store of
blobs (`content.py`) and the unpacked layers (`layers.py`):

    <root>/images.json            images by id (config digest): tags, repo digests, manifest, layers

An image becomes visible only once its blobs and layers are in place (the index is
written last, atomically, under the store's lock).

The root and every directory in it are 0700: layers keep their setuid bits (they must
work inside containers), so no other user may reach them from the host.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Set
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from podbay.runtime.files import ParsedFile
from podbay.runtime.images.content import ContentStore
from podbay.runtime.images.digests import digest_hex
from podbay.runtime.images.layers import ImageLimits, LayerStore
from podbay.runtime.images.manifests import (OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST, PLATFORM_ARCH,
                                             PLATFORM_OS, unsupported_layers)
from podbay.runtime.images.reference import parse_reference
from podbay.runtime.images.unpack import Device



def _is_digest(text: str) -> bool:
    try:
        digest_hex(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ImageConfig:
    """The run defaults of an image config's `config` object."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    stop_signal: str | None = None

    @classmethod
    def from_oci(cls, config: dict[str, Any]) -> "ImageConfig":
        c = config.get("config") or {}
        return cls(entrypoint=list(c.get("Entrypoint") or []), cmd=list(c.get("Cmd") or []),
                   env=list(c.get("Env") or []), working_dir=c.get("WorkingDir") or "", user=c.get("User") or "",
                   stop_signal=c.get("StopSignal") or None)

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Env": self.env, "Cmd": self.cmd}
        if self.entrypoint:
            out["Entrypoint"] = self.entrypoint
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.user:
            out["User"] = self.user
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out


@dataclass(frozen=True)
class Image:
    id: str  # "sha256:<config digest>"
    repo_tags: list[str]
    repo_digests: list[str]
    size: int  # unpacked: the sum of its layers' uncompressed sizes
    config: ImageConfig


class ImageNotFound(KeyError):
    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref

    def __str__(self) -> str:
        return f'image "{self.ref}" not found'


class ImageStore:
    def __init__(self, root: Path, limits: ImageLimits = ImageLimits()) -> None:
        self.root = Path(root)
        self.limits = limits
        self.content = ContentStore(self.root)
        self.layers = LayerStore(self.content, limits)
        self._index_file = ParsedFile(self.root / "images.json", lambda _: self._read_index())
        self._record_unpacked_sizes()

    # -- the index -------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The image index, held under an exclusive lock and written back atomically."""
        with self.content.lock():
            index = self._read_index()
            yield index
            tmp = self.root / "images.json.tmp"
            tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
            tmp.replace(self.root / "images.json")

    def _read_index(self) -> dict[str, Any]:
        try:
            index: dict[str, Any] = json.loads((self.root / "images.json").read_text())
            return index
        except FileNotFoundError:
            return {"images": {}}

    def _current_index(self) -> dict[str, Any]:
        """The index to read, not change: every write replaces the file (here or in another podbay
        process), so it is parsed again only then, not several times per container on the event loop."""
        index = self._index_file.read()
        return {"images": {}} if index is None else index

    @staticmethod
    def _find(index: dict[str, Any], ref: str) -> tuple[str, dict[str, Any]] | None:
        """By image id (`sha256:...`, or a prefix of its hex of 12+ digits), tag or repo digest."""
        images = index["images"]
        if ref in images:
            return ref, images[ref]
        bare = ref.removeprefix("sha256:")
        if len(bare) >= 12 and all(c in "0123456789abcdef" for c in bare):
            hits = [i for i in images if i.removeprefix("sha256:").startswith(bare)]
            if len(hits) == 1:
                return hits[0], images[hits[0]]
        try:
            parsed = parse_reference(ref)
        except ValueError:
            return None
        for image_id, entry in images.items():
            if parsed.digest:
                if f"{parsed.name}@{parsed.digest}" in entry["repo_digests"]:
                    return image_id, entry
            elif str(parsed) in entry["repo_tags"]:
                return image_id, entry
        return None

    @staticmethod
    def _image(image_id: str, entry: dict[str, Any]) -> Image:
        config: dict[str, Any] = {k: list(v) if isinstance(v, list) else v for k, v in entry["config"].items()}
        return Image(image_id, list(entry["repo_tags"]), list(entry["repo_digests"]), entry["unpacked_size"],
                     ImageConfig(**config))

    def _record_unpacked_sizes(self) -> None:
        """Images added before sizes were unpacked sizes get theirs from their layers."""
        if all("unpacked_size" in e for e in self._read_index()["images"].values()):
            return
        with self._locked() as index:
            for entry in index["images"].values():
                if "unpacked_size" not in entry:
                    entry["unpacked_size"] = sum(self.layers.layer_info(d).size for d in entry["layers"])

    def image_status(self, ref: str) -> Image | None:
        found = self._find(self._current_index(), ref)
        return self._image(*found) if found else None

    def list_images(self) -> list[Image]:
        return [self._image(i, e) for i, e in sorted(self._read_index()["images"].items())]

    def config(self, ref: str) -> ImageConfig:
        image = self.image_status(ref)
        if image is None:
            raise ImageNotFound(ref)
        return image.config

    def mount_layers(self, ref: str) -> list[Path]:
        """The image's unpacked layers, top first, as overlayfs' lowerdir wants them."""
        return [self.layers.path(d) for d in self._layer_ids(ref)]

    def layer_devices(self, ref: str) -> list[list[Device]]:
        """Each layer's device nodes, in `mount_layers`' order."""
        return [self.layers.layer_info(d).devices for d in self._layer_ids(ref)]

    def _layer_ids(self, ref: str) -> list[str]:
        found = self._find(self._current_index(), ref)
        if found is None:
            raise ImageNotFound(ref)
        return list(reversed(found[1]["layers"]))

    # -- add -------------------------------------------------------------------

    def add_image(self, manifest_digest: str, *, tags: Sequence[str] = (), repo_digests: Sequence[str] = (),
                  index_digest: str | None = None) -> Image:
        """Records the image of a manifest whose blobs are all in the store, unpacking
        its layers first. `repo_digests` are `name@digest` strings."""
        manifest = json.loads(self.content.read_blob(manifest_digest))
        config_digest = manifest["config"]["digest"]
        config = json.loads(self.content.read_blob(config_digest))
        blobs, diff_ids = _checked_layers(manifest_digest, manifest, config_digest, config)
        used = self._unpack_layers(blobs, diff_ids, tags[0] if tags else manifest_digest)
        names = [str(parse_reference(t)) for t in tags]
        with self._locked() as index:
            missing = [d for d in diff_ids if not self.layers.has(d)]
            if missing:
                raise RuntimeError(f"layers {missing} were removed while the image was being added; retry")
            for entry in index["images"].values():
                entry["repo_tags"] = [t for t in entry["repo_tags"] if t not in names]
            entry = index["images"].setdefault(config_digest, {"repo_tags": [], "repo_digests": []})
            replaced = {entry.get("manifest"), entry.get("index"), *entry.get("blobs", [])}
            entry.update(manifest=manifest_digest, blobs=blobs, layers=diff_ids,
                         size=sum(self.content.blob_path(b).stat().st_size for b in blobs), unpacked_size=used,
                         config=asdict(ImageConfig.from_oci(config)))
            if index_digest:
                entry["index"] = index_digest
            entry["repo_tags"] = sorted(set(entry["repo_tags"]) | set(names))
            entry["repo_digests"] = sorted(set(entry["repo_digests"]) | set(repo_digests))
            self._drop_blobs(index, replaced)
            return self._image(config_digest, entry)

    def _unpack_layers(self, blobs: list[str], diff_ids: list[str], name: str) -> int:
        """Unpacks the image's layers within the per-image limit and returns their unpacked
        size; on failure, removes those it unpacked that no image uses."""
        absent = [d for d in diff_ids if not self.layers.has(d)]
        used = 0
        try:
            for blob, diff_id in zip(blobs, diff_ids):
                left = self.limits.max_image_bytes - used
                limit = (f"{self.limits.max_image_flag}: {self.limits.max_image_bytes} bytes per image, "
                         f"{used} of them used by its layers below")
                self.layers.ensure_layer(blob, diff_id, what=f"image {name}: ", budget=self.layers.budget(left, limit))
                used += self.layers.layer_info(diff_id).size
        except BaseException:
            self._drop_layers(absent)
            raise
        return used

    # -- build and tag ---------------------------------------------------------

    def build(self, source: Path, *, tag: str, config: ImageConfig) -> Image:
        """A single-layer image from a directory or a rootfs tarball (plain or gzip)."""
        source = Path(source)
        if source.is_dir():
            with self.content.blob_writer() as w:
                # The ignore: typeshed's stream-mode overloads want a narrower fileobj type than the blob writer.
                with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    for path in sorted(source.rglob("*")):
                        tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
                layer_digest = w.commit()
        elif source.is_file():
            layer_digest = self.content.put_blob_file(source)
        else:
            raise FileNotFoundError(f"build source {source} is neither a directory nor a file")
        diff_id = self.layers.ensure_layer(layer_digest)
        oci_config = {"architecture": PLATFORM_ARCH, "os": PLATFORM_OS, "config": config.to_oci(),
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
        config_blob = json.dumps(oci_config, sort_keys=True).encode()
        layer_type = OCI_LAYER_GZIP if diff_id != layer_digest else OCI_LAYER
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": self.content.put_blob(config_blob),
                               "size": len(config_blob)},
                    "layers": [{"mediaType": layer_type, "digest": layer_digest,
                                "size": self.content.blob_path(layer_digest).stat().st_size}]}
        manifest_digest = self.content.put_blob(json.dumps(manifest, sort_keys=True).encode())
        return self.add_image(manifest_digest, tags=[tag])

    def tag(self, ref: str, tag: str) -> Image:
        """Points `tag` at the image `ref`, moving it off any other image."""
        name = str(parse_reference(tag))
        with self._locked() as index:
            found = self._find(index, ref)
            if found is None:
                raise ImageNotFound(ref)
            for entry in index["images"].values():
                entry["repo_tags"] = [t for t in entry["repo_tags"] if t != name]
            found[1]["repo_tags"] = sorted(set(found[1]["repo_tags"]) | {name})
            return self._image(*found)

    # -- remove ----------------------------------------------------------------

    def remove_image(self, ref: str) -> None:
        """Removes a tag when the image has others (as `docker rmi` does), else the image;
        its layers and blobs go only when no other image uses them."""
        with self._locked() as index:
            found = self._find(index, ref)
            if found is None:
                raise ImageNotFound(ref)
            image_id, entry = found
            try:
                name = str(parse_reference(ref))
            except ValueError:
                name = ""
            if name in entry["repo_tags"] and len(entry["repo_tags"]) > 1:
                entry["repo_tags"].remove(name)
                return
            del index["images"][image_id]
            rest = index["images"].values()
            used_layers = {d for e in rest for d in e["layers"]}
            doomed = Path(tempfile.mkdtemp(dir=self.content.tmp, prefix="remove-"))
            for diff_id in set(entry["layers"]) - used_layers:
                self.layers.move_out(diff_id, doomed)
            self._drop_blobs(index, {image_id, entry["manifest"], entry.get("index"), *entry["blobs"]})
        shutil.rmtree(doomed, ignore_errors=True)

    def _drop_layers(self, diff_ids: list[str]) -> None:
        """Removes those of the layers no image uses: what a failed add unpacked."""
        with self.content.lock():
            used = {d for e in self._read_index()["images"].values() for d in e["layers"]}
            for diff_id in set(diff_ids) - used:
                self.layers.remove(diff_id)

    def drop_unused_blobs(self, digests: Set[str | None]) -> None:
        """Deletes those of `digests` no image refers to: what a failed import or pull
        brought in. Digests that are not sha256 (a malformed manifest's) name no blob."""
        valid = {d for d in digests if d and _is_digest(d)}
        with self.content.lock():
            self._drop_blobs(self._read_index(), valid)

    def _drop_blobs(self, index: dict[str, Any], digests: Set[str | None]) -> None:
        """Deletes those of `digests` no image in `index` refers to."""
        used = {d for i, e in index["images"].items() for d in (i, e["manifest"], e.get("index"), *e["blobs"])}
        for digest in digests - used:
            if digest:
                self.content.blob_path(digest).unlink(missing_ok=True)


def _checked_layers(manifest_digest: str, manifest: dict[str, Any], config_digest: str,
                    config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The manifest's layer blobs and the config's diff ids, refused unless they pair up,
    are of supported media types, and are for this node's platform."""
    refused = unsupported_layers(manifest)
    if refused:
        raise ValueError(f"image manifest {manifest_digest}: {'; '.join(refused)} (layers must be tar, "
                         "tar+gzip or tar+zstd)")
    blobs = [layer["digest"] for layer in manifest.get("layers") or []]
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(blobs):
        raise ValueError(f"image config {config_digest}: {len(diff_ids)} diff_ids for {len(blobs)} layers")
    platform = f"{config.get('os') or PLATFORM_OS}/{config.get('architecture') or PLATFORM_ARCH}"
    if platform != f"{PLATFORM_OS}/{PLATFORM_ARCH}":
        raise ValueError(f"image {config_digest} is for {platform}; this node runs {PLATFORM_OS}/{PLATFORM_ARCH}")
    return blobs, diff_ids
