"""Image references as Docker and Kubernetes normalise them."""
from __future__ import annotations

DEFAULT_REGISTRY = "docker.io"


def normalize_reference(ref: str) -> str:
    """`busybox:1.35` -> `docker.io/library/busybox:1.35`; no tag means `:latest`;
    digests and registry hosts (a first part with `.` or `:`, or `localhost`) are kept."""
    ref = ref.strip()
    name, digest = (ref.split("@", 1) + [""])[:2] if "@" in ref else (ref, "")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, name
    if registry == DEFAULT_REGISTRY and "/" not in path.split(":")[0]:
        path = f"library/{path}"
    last = path.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        path += ":latest"
    out = f"{registry}/{path}"
    return f"{out}@{digest}" if digest else out


def split_reference(ref: str) -> tuple[str, str, str]:
    """(registry, repository, tag-or-digest) of a normalised reference."""
    ref = normalize_reference(ref)
    registry, _, rest = ref.partition("/")
    if "@" in rest:
        repo, _, digest = rest.partition("@")
        return registry, repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo, digest
    repo, _, tag = rest.rpartition(":")
    return registry, repo, tag
