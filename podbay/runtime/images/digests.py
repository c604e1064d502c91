"""Content digests, as the OCI spec writes them (`sha256:<64 hex>`)."""
from __future__ import annotations

import hashlib
from typing import Callable

Progress = Callable[[str, int, int], None]  # (digest, bytes done, bytes total)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    """The hex part of a sha256 digest; anything else is refused (it names files)."""
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"unsupported digest {digest!r}: want sha256:<64 lowercase hex digits>")
    return hexpart
