"""Image references as Docker and Kubernetes normalise them (distribution/reference)."""
from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
_LEGACY_REGISTRIES = {"index.docker.io", "registry-1.docker.io"}

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_HOST = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                   r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")


class InvalidReference(ValueError):
    def __init__(self, ref: str, why: str) -> None:
        super().__init__(f'invalid image reference "{ref}": {why}')


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str  # "" when only a digest was given
    digest: str  # "" unless pinned

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def selector(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(ref: str) -> Reference:
    """Splits and normalises `ref`: Docker Hub names gain `docker.io/` (and `library/` for
    official images), a reference with neither tag nor digest means `:latest`."""
    text = ref.strip()
    if not text:
        raise InvalidReference(ref, "empty")
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise InvalidReference(ref, f"bad digest {digest!r}")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, path = first, remainder
        if not _HOST.fullmatch(registry):
            raise InvalidReference(ref, f"bad registry host {registry!r}")
    else:
        registry, path = DEFAULT_REGISTRY, rest
    if registry in _LEGACY_REGISTRIES:
        registry = DEFAULT_REGISTRY
    repository, colon, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    if colon and not _TAG.fullmatch(tag):
        raise InvalidReference(ref, f"bad tag {tag!r}")
    if not _REPOSITORY.fullmatch(repository):
        raise InvalidReference(ref, f"bad repository name {repository!r} (lowercase letters, digits, . _ - and /)")
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if not tag and not digest:
        tag = "latest"
    return Reference(registry, repository, tag, digest)


def normalize_reference(ref: str) -> str:
    """`busybox:1.35` -> `docker.io/library/busybox:1.35`; `busybox` -> `...:latest`;
    digests and registry hosts (`localhost:5000/x`) are kept."""
    return str(parse_reference(ref))
