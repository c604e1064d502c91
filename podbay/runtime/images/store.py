"""The content-addressed image store (containerd's content store and snapshotter, in small).

    <root>/blobs/sha256/<hex>     manifests, configs and layer tarballs, by digest
    <root>/layers/<diffid hex>/   each layer unpacked once, shared by every image using it
    <root>/images.json            images: id (config digest), tags, digests, layers, config

A blob becomes visible only after its digest is verified (written to a temp
file, hashed, renamed); a layer directory only once fully unpacked.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from podbay.runtime.images.reference import normalize_reference, split_reference
from podbay.runtime.images.unpack import unpack_layer


@dataclass(frozen=True)
class ImageConfig:
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
    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    config: ImageConfig


class ImageNotFound(LookupError):
    def __init__(self, ref: str) -> None:
        super().__init__(f'image "{ref}" not found')


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for d in (self.blobs, self.layers, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    # -- the index -------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The image index, held under an exclusive lock and written back atomically."""
        with open(self.root / "images.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = self._read_index()
            yield index
            tmp = self.root / "images.json.tmp"
            tmp.write_text(json.dumps(index))
            tmp.replace(self.root / "images.json")

    def _read_index(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "images.json").read_text())
        except FileNotFoundError:
            return {"images": {}}

    def _find(self, index: dict[str, Any], ref: str) -> tuple[str, dict[str, Any]] | None:
        images = index["images"]
        if ref in images:
            return ref, images[ref]
        if ref.startswith("sha256:") or (len(ref) >= 12 and all(c in "0123456789abcdef" for c in ref)):
            for image_id, entry in images.items():
                if image_id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:")):
                    return image_id, entry
        name = normalize_reference(ref)
        for image_id, entry in images.items():
            if name in entry["repo_tags"] or name in entry["repo_digests"]:
                return image_id, entry
        return None

    @staticmethod
    def _image(image_id: str, entry: dict[str, Any]) -> Image:
        return Image(image_id, list(entry["repo_tags"]), list(entry["repo_digests"]), entry["size"],
                     ImageConfig(**entry["config"]))

    def image_status(self, ref: str) -> Image | None:
        found = self._find(self._read_index(), ref)
        return self._image(*found) if found else None

    def list_images(self) -> list[Image]:
        return [self._image(i, e) for i, e in self._read_index()["images"].items()]

    def config(self, ref: str) -> ImageConfig:
        image = self.image_status(ref)
        if image is None:
            raise ImageNotFound(ref)
        return image.config

    def mount_layers(self, ref: str) -> list[Path]:
        """The image's unpacked layers, top first, as overlayfs' lowerdir wants them."""
        found = self._find(self._read_index(), ref)
        if found is None:
            raise ImageNotFound(ref)
        return [self.layers / d.removeprefix("sha256:") for d in reversed(found[1]["layers"])]

    # -- blobs and layers ------------------------------------------------------

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected and expected != digest:
            raise ValueError(f"digest mismatch: expected {expected}, got {digest}")
        path = self.blobs / digest.removeprefix("sha256:")
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return digest

    def commit_blob_file(self, tmp: Path, expected: str) -> str:
        """Makes a downloaded file a blob once its digest matches; removes it otherwise."""
        digest = sha256_file(tmp)
        if digest != expected:
            tmp.unlink(missing_ok=True)
            raise ValueError(f"digest mismatch: expected {expected}, got {digest}")
        os.replace(tmp, self.blobs / digest.removeprefix("sha256:"))
        return digest

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest.removeprefix("sha256:")

    def ensure_layer(self, blob_digest: str, diff_id: str | None = None) -> str:
        """Unpacks a layer blob once; returns its diff id (the digest of the uncompressed tar)."""
        blob = self.blob_path(blob_digest)
        if diff_id is None:
            diff_id = _diff_id(blob)
        target = self.layers / diff_id.removeprefix("sha256:")
        if target.exists():
            return diff_id
        work = Path(tempfile.mkdtemp(dir=self.tmp, prefix="layer-"))
        try:
            unpack_layer(blob, work)
            os.chmod(work, 0o755)
            os.rename(work, target)
        except OSError:
            if not target.exists():
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return diff_id

    def register(self, *, config_blob: bytes, manifest_blob: bytes, layer_digests: list[str],
                 diff_ids: list[str], tags: list[str], repo_digest_names: list[str]) -> Image:
        """Records an image whose blobs and layers are in place, under its tags."""
        config = json.loads(config_blob)
        image_id = self.put_blob(config_blob)
        manifest_digest = self.put_blob(manifest_blob)
        size = sum(self.blob_path(d).stat().st_size for d in layer_digests)
        names = [normalize_reference(t) for t in tags]
        digests = ["{0}/{1}@{2}".format(*split_reference(n)[:2], manifest_digest) for n in repo_digest_names]
        with self._locked() as index:
            for entry in index["images"].values():
                entry["repo_tags"] = [t for t in entry["repo_tags"] if t not in names]
            entry = index["images"].setdefault(image_id, {"repo_tags": [], "repo_digests": []})
            entry.update(layers=diff_ids, size=size, manifest=manifest_digest,
                         config=ImageConfig.from_oci(config).__dict__)
            entry["repo_tags"] = sorted(set(entry["repo_tags"]) | set(names))
            entry["repo_digests"] = sorted(set(entry["repo_digests"]) | set(digests))
            index["images"] = {i: e for i, e in index["images"].items() if e["repo_tags"] or e["repo_digests"]
                               or i == image_id}
        return self.image_status(image_id)  # type: ignore[return-value]

    # -- build -----------------------------------------------------------------

    def build(self, source: Path, *, tag: str, config: ImageConfig) -> Image:
        """A single-layer image from a directory or a rootfs tarball."""
        source = Path(source)
        if source.is_dir():
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for path in sorted(source.rglob("*")):
                    tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
            layer = buf.getvalue()
        else:
            layer = source.read_bytes()
            if layer[:2] == b"\x1f\x8b":
                layer = gzip.decompress(layer)
        layer_digest = self.put_blob(layer)
        diff_id = self.ensure_layer(layer_digest, layer_digest)
        oci_config = {"architecture": "amd64", "os": "linux", "config": config.to_oci(),
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
        config_blob = json.dumps(oci_config, sort_keys=True).encode()
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": "sha256:" + hashlib.sha256(config_blob).hexdigest(),
                               "size": len(config_blob)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                                "size": len(layer)}]}
        return self.register(config_blob=config_blob, manifest_blob=json.dumps(manifest, sort_keys=True).encode(),
                             layer_digests=[layer_digest], diff_ids=[diff_id], tags=[tag], repo_digest_names=[])

    def tag(self, ref: str, tag: str) -> None:
        name = normalize_reference(tag)
        with self._locked() as index:
            found = self._find(index, ref)
            if found is None:
                raise ImageNotFound(ref)
            for entry in index["images"].values():
                entry["repo_tags"] = [t for t in entry["repo_tags"] if t != name]
            found[1]["repo_tags"] = sorted(set(found[1]["repo_tags"]) | {name})

    # -- remove ----------------------------------------------------------------

    def remove_image(self, ref: str) -> None:
        """Removes the image; its layers and blobs go only when no other image uses them."""
        with self._locked() as index:
            found = self._find(index, ref)
            if found is None:
                raise ImageNotFound(ref)
            image_id, entry = found
            del index["images"][image_id]
            used_layers = {d for e in index["images"].values() for d in e["layers"]}
            used_blobs = {e.get("manifest") for e in index["images"].values()} | set(index["images"])
        for diff_id in entry["layers"]:
            if diff_id not in used_layers:
                shutil.rmtree(self.layers / diff_id.removeprefix("sha256:"), ignore_errors=True)
        for digest in (image_id, entry.get("manifest")):
            if digest and digest not in used_blobs:
                self.blob_path(digest).unlink(missing_ok=True)


def _diff_id(blob: Path) -> str:
    h = hashlib.sha256()
    with open(blob, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(blob, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
