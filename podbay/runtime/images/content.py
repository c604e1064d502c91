"""The content store (containerd's, in small): blobs by digest, and the scratch space
they are written in before they are visible.

    <root>/blobs/sha256/<hex>   manifests, indexes, configs and layer blobs, by digest
    <root>/tmp/                 blobs and layers being written; nothing here is visible
    <root>/images.lock          the one lock of the whole image store

A blob becomes visible only after its digest is verified (written to a temp file,
hashed, renamed). Every entry in tmp/ is flock-ed by the process writing it; whatever no
one holds was left by a process that died, and is swept when a store is opened.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from podbay.runtime.images.digests import digest_hex, digest_of


class DigestMismatch(ValueError):
    pass


def private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # also on stores made before they were private


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for d in (self.root, self.blobs.parent, self.blobs, self.tmp):
            private_dir(d)
        self._sweep_tmp()

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The image store's one lock: held over the index, tmp/ claims and sweeps."""
        with open(self.root / "images.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # -- scratch space in tmp/ ----------------------------------------------------

    def claim(self, make: Callable[[], tuple[int, str]]) -> tuple[int, str]:
        with self.lock():
            fd, name = make()
            fcntl.flock(fd, fcntl.LOCK_EX)
        return fd, name

    @contextlib.contextmanager
    def scratch_dir(self, prefix: str) -> Iterator[Path]:
        """A private directory under tmp/, removed afterwards unless renamed away."""
        def make() -> tuple[int, str]:
            name = tempfile.mkdtemp(dir=self.tmp, prefix=prefix)
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), name

        fd, name = self.claim(make)
        try:
            yield Path(name)
        finally:
            shutil.rmtree(name, ignore_errors=True)
            os.close(fd)

    def _sweep_tmp(self) -> None:
        with self.lock():
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

    # -- blobs -------------------------------------------------------------------

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


class BlobWriter:
    """Streams a blob into the store's tmp dir; `commit` verifies its digest and only
    then renames it into `blobs/`. Dropped unfinished, it leaves nothing behind."""

    def __init__(self, content: ContentStore) -> None:
        self.content = content
        fd, name = content.claim(lambda: tempfile.mkstemp(dir=content.tmp, prefix="blob-"))
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
        os.replace(self.path, self.content.blob_path(digest))
        self.file.close()
        return digest

    def abort(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.file.closed or self.path.exists():
            self.abort()
