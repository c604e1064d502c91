"""The content-addressed image store (containerd's content store and snapshotter, in small).

    <root>/blobs/sha256/<hex>     manifests, indexes, configs and layer blobs, by digest
    <root>/layers/<diffid hex>/   each layer unpacked once, shared by every image using it
    <root>/layerinfo/<hex>.json   a layer's unpacked size and device nodes (made only in containers)
    <root>/images.json            images by id (config digest): tags, repo digests, manifest, layers
    <root>/tmp/                   blobs and layers being written; nothing here is visible

A blob becomes visible only after its digest is verified (written to a temp file,
hashed, renamed); a layer directory only once fully unpacked (renamed into place);
an image only once its blobs and layers are in place (the index is written last,
atomically, under a lock).

The root and every directory in it are 0700: layers keep their setuid bits (they must
work inside containers), so no other user may reach them from the host. Unpacking is
bounded (`ImageLimits`): per image, and by the image filesystem's free space.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Set
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from podbay.runtime.images.digests import digest_hex, digest_of
from podbay.runtime.images.manifests import (OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST, PLATFORM_ARCH,
                                             PLATFORM_OS, unsupported_layers)
from podbay.runtime.images.reference import parse_reference
from podbay.runtime.images.unpack import Budget, Device, LayerStream, open_layer, unpack_layer

GiB = 1 << 30


def _is_digest(text: str) -> bool:
    try:
        digest_hex(text)
    except ValueError:
        return False
    return True


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


class DigestMismatch(ValueError):
    pass


class BlobWriter:
    """Streams a blob into the store's tmp dir; `commit` verifies its digest and only
    then renames it into `blobs/`. Dropped unfinished, it leaves nothing behind."""

    def __init__(self, store: "ImageStore") -> None:
        self.store = store
        fd, name = store._claim(lambda: tempfile.mkstemp(dir=store.tmp, prefix="blob-"))
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.file.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def commit(self, expected: str | None = None) -> str:
        self.file.flush()
        digest = "sha256:" + self.hash.hexdigest()
        if expected is not None and digest != expected:
            self.abort()
            raise DigestMismatch(f"blob digest mismatch: expected {expected}, got {digest}")
        # Renamed while still open, so the file's lock covers it until it is in place.
        os.replace(self.path, self.store.blob_path(digest))
        self.file.close()
        return digest

    def abort(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.file.closed or self.path.exists():
            self.abort()


class ImageStore:
    def __init__(self, root: Path, limits: ImageLimits = ImageLimits()) -> None:
        self.root = Path(root)
        self.limits = limits
        for d in (self.root, self.blobs.parent, self.blobs, self.layers, self.layer_info_dir, self.tmp):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(d, 0o700)  # also on stores made before they were private
        self._sweep_tmp()
        self._record_unpacked_sizes()

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def layer_info_dir(self) -> Path:
        return self.root / "layerinfo"

    # -- scratch space in tmp/ ----------------------------------------------------
    # Every entry in tmp/ is flock-ed by the process writing it; whatever no one holds
    # was left by a process that died, and is swept when a store is opened.

    def _claim(self, make: Callable[[], tuple[int, str]]) -> tuple[int, str]:
        with self._lock():
            fd, name = make()
            fcntl.flock(fd, fcntl.LOCK_EX)
        return fd, name

    @contextlib.contextmanager
    def scratch_dir(self, prefix: str) -> Iterator[Path]:
        """A private directory under tmp/, removed afterwards unless renamed away."""
        def make() -> tuple[int, str]:
            name = tempfile.mkdtemp(dir=self.tmp, prefix=prefix)
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), name

        fd, name = self._claim(make)
        try:
            yield Path(name)
        finally:
            shutil.rmtree(name, ignore_errors=True)
            os.close(fd)

    def _sweep_tmp(self) -> None:
        with self._lock():
            for entry in self.tmp.iterdir():
                try:
                    fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer's
                finally:
                    os.close(fd)
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    # -- the index -------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / "images.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The image index, held under an exclusive lock and written back atomically."""
        with self._lock():
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
        return Image(image_id, list(entry["repo_tags"]), list(entry["repo_digests"]), entry["unpacked_size"],
                     ImageConfig(**entry["config"]))

    def _record_unpacked_sizes(self) -> None:
        """Images added before sizes were unpacked sizes get theirs from their layers."""
        if all("unpacked_size" in e for e in self._read_index()["images"].values()):
            return
        with self._locked() as index:
            for entry in index["images"].values():
                if "unpacked_size" not in entry:
                    entry["unpacked_size"] = sum(self.layer_info(d).size for d in entry["layers"])

    def image_status(self, ref: str) -> Image | None:
        found = self._find(self._read_index(), ref)
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
        return [self.layers / digest_hex(d) for d in self._layer_ids(ref)]

    def layer_devices(self, ref: str) -> list[list[Device]]:
        """Each layer's device nodes, in `mount_layers`' order."""
        return [self.layer_info(d).devices for d in self._layer_ids(ref)]

    def _layer_ids(self, ref: str) -> list[str]:
        found = self._find(self._read_index(), ref)
        if found is None:
            raise ImageNotFound(ref)
        return list(reversed(found[1]["layers"]))

    def layer_info(self, diff_id: str) -> LayerInfo:
        path = self.layer_info_dir / f"{digest_hex(diff_id)}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            # Unpacked before layer info was kept (and before devices were kept out of layers).
            layer = self.layers / digest_hex(diff_id)
            size = sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(layer) for f in files)
            return LayerInfo(size, [])
        return LayerInfo(data["size"], [Device(**d) for d in data["devices"]])

    def _write_layer_info(self, diff_id: str, info: LayerInfo) -> None:
        path = self.layer_info_dir / f"{digest_hex(diff_id)}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(info)))
        os.replace(tmp, path)

    def _remove_layer_info(self, diff_id: str) -> None:
        (self.layer_info_dir / f"{digest_hex(diff_id)}.json").unlink(missing_ok=True)

    # -- blobs and layers ------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        digest = digest_of(data)
        if expected is not None and digest != expected:
            raise DigestMismatch(f"blob digest mismatch: expected {expected}, got {digest}")
        if not self.has_blob(digest):
            with self.blob_writer() as w:
                w.write(data)
                w.commit(digest)
        return digest

    def put_blob_file(self, path: Path, expected: str | None = None) -> str:
        """Copies a file into the store, verified against `expected` when given."""
        if expected is not None and self.has_blob(expected):
            return expected
        with self.blob_writer() as w, open(path, "rb") as f:
            shutil.copyfileobj(f, w, 1 << 20)
            return w.commit(expected)

    def budget(self, max_bytes: int, limit_name: str) -> Budget:
        return Budget(max_bytes, self.root, self.limits.min_available, limit_name)

    def ensure_layer(self, blob_digest: str, diff_id: str | None = None, *, what: str = "",
                     budget: Budget | None = None) -> str:
        """Unpacks a layer blob once and returns its diff id, the digest of the
        uncompressed tar, which is checked against `diff_id` when given. Unpacking stops
        (and leaves nothing) past `budget`, by default the per-image limit."""
        if diff_id is not None and (self.layers / digest_hex(diff_id)).is_dir():
            return diff_id
        what = f"{what}layer {blob_digest}"
        if budget is None:
            budget = self.budget(self.limits.max_image_bytes, f"{self.limits.max_image_flag} per image")
        with self.scratch_dir("layer-") as work:
            with open_layer(self.blob_path(blob_digest)) as raw:
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
                os.rename(work, self.layers / digest_hex(actual))
            except OSError:
                if not (self.layers / digest_hex(actual)).is_dir():
                    raise
        return actual

    def add_image(self, manifest_digest: str, *, tags: Sequence[str] = (), repo_digests: Sequence[str] = (),
                  index_digest: str | None = None) -> Image:
        """Records the image of a manifest whose blobs are all in the store, unpacking
        its layers first. `repo_digests` are `name@digest` strings."""
        manifest = json.loads(self.read_blob(manifest_digest))
        config_digest = manifest["config"]["digest"]
        config = json.loads(self.read_blob(config_digest))
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
        absent = [d for d in diff_ids if not (self.layers / digest_hex(d)).is_dir()]
        name = tags[0] if tags else manifest_digest
        used = 0
        try:
            for blob, diff_id in zip(blobs, diff_ids):
                left = self.limits.max_image_bytes - used
                limit = (f"{self.limits.max_image_flag}: {self.limits.max_image_bytes} bytes per image, "
                         f"{used} of them used by its layers below")
                self.ensure_layer(blob, diff_id, what=f"image {name}: ", budget=self.budget(left, limit))
                used += self.layer_info(diff_id).size
        except BaseException:
            self._drop_layers(absent)
            raise
        names = [str(parse_reference(t)) for t in tags]
        with self._locked() as index:
            missing = [d for d in diff_ids if not (self.layers / digest_hex(d)).is_dir()]
            if missing:
                raise RuntimeError(f"layers {missing} were removed while the image was being added; retry")
            for entry in index["images"].values():
                entry["repo_tags"] = [t for t in entry["repo_tags"] if t not in names]
            entry = index["images"].setdefault(config_digest, {"repo_tags": [], "repo_digests": []})
            replaced = {entry.get("manifest"), entry.get("index"), *entry.get("blobs", [])}
            entry.update(manifest=manifest_digest, blobs=blobs, layers=diff_ids,
                         size=sum(self.blob_path(b).stat().st_size for b in blobs), unpacked_size=used,
                         config=asdict(ImageConfig.from_oci(config)))
            if index_digest:
                entry["index"] = index_digest
            entry["repo_tags"] = sorted(set(entry["repo_tags"]) | set(names))
            entry["repo_digests"] = sorted(set(entry["repo_digests"]) | set(repo_digests))
            self._drop_blobs(index, replaced)
            return self._image(config_digest, entry)

    # -- build and tag ---------------------------------------------------------

    def build(self, source: Path, *, tag: str, config: ImageConfig) -> Image:
        """A single-layer image from a directory or a rootfs tarball (plain or gzip)."""
        source = Path(source)
        if source.is_dir():
            with self.blob_writer() as w:
                # The ignore: typeshed's stream-mode overloads want a narrower fileobj type than the blob writer.
                with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    for path in sorted(source.rglob("*")):
                        tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
                layer_digest = w.commit()
        elif source.is_file():
            layer_digest = self.put_blob_file(source)
        else:
            raise FileNotFoundError(f"build source {source} is neither a directory nor a file")
        diff_id = self.ensure_layer(layer_digest)
        oci_config = {"architecture": PLATFORM_ARCH, "os": PLATFORM_OS, "config": config.to_oci(),
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
        config_blob = json.dumps(oci_config, sort_keys=True).encode()
        layer_type = OCI_LAYER_GZIP if diff_id != layer_digest else OCI_LAYER
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": self.put_blob(config_blob),
                               "size": len(config_blob)},
                    "layers": [{"mediaType": layer_type, "digest": layer_digest,
                                "size": self.blob_path(layer_digest).stat().st_size}]}
        manifest_digest = self.put_blob(json.dumps(manifest, sort_keys=True).encode())
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
            # Renamed away under the lock so a concurrent add_image never sees half a layer.
            doomed = Path(tempfile.mkdtemp(dir=self.tmp, prefix="remove-"))
            for diff_id in set(entry["layers"]) - used_layers:
                layer = self.layers / digest_hex(diff_id)
                if layer.exists():
                    os.rename(layer, doomed / digest_hex(diff_id))
                self._remove_layer_info(diff_id)
            self._drop_blobs(index, {image_id, entry["manifest"], entry.get("index"), *entry["blobs"]})
        shutil.rmtree(doomed, ignore_errors=True)

    def _drop_layers(self, diff_ids: list[str]) -> None:
        """Removes those of the layers no image uses: what a failed add unpacked."""
        with self._lock():
            used = {d for e in self._read_index()["images"].values() for d in e["layers"]}
            for diff_id in set(diff_ids) - used:
                shutil.rmtree(self.layers / digest_hex(diff_id), ignore_errors=True)
                self._remove_layer_info(diff_id)

    def drop_unused_blobs(self, digests: Set[str | None]) -> None:
        """Deletes those of `digests` no image refers to: what a failed import or pull
        brought in. Digests that are not sha256 (a malformed manifest's) name no blob."""
        valid = {d for d in digests if d and _is_digest(d)}
        with self._lock():
            self._drop_blobs(self._read_index(), valid)

    def _drop_blobs(self, index: dict[str, Any], digests: Set[str | None]) -> None:
        """Deletes those of `digests` no image in `index` refers to."""
        used = {d for i, e in index["images"].items() for d in (i, e["manifest"], e.get("index"), *e["blobs"])}
        for digest in digests - used:
            if digest:
                self.blob_path(digest).unlink(missing_ok=True)
