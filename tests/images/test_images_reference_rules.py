from __future__ import annotations

import pytest

from podbay.runtime.images import normalize_reference
from podbay.runtime.images.reference import InvalidReference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref, expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.35", "docker.io/library/busybox:1.35"),
    ("library/busybox:1.35", "docker.io/library/busybox:1.35"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("bitnami/nginx", "docker.io/bitnami/nginx:latest"),
    ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
    ("localhost/x", "localhost/x:latest"),
    ("localhost:5000/x", "localhost:5000/x:latest"),
    ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1.35@{DIGEST}", f"docker.io/library/busybox:1.35@{DIGEST}"),
    ("docker.io/library/busybox:1.35", "docker.io/library/busybox:1.35"),
])
def test_normalize_reference(ref: str, expected: str) -> None:
    assert normalize_reference(ref) == expected
    assert normalize_reference(expected) == expected


def test_parse_reference_parts() -> None:
    ref = parse_reference(f"localhost:5000/team/app:v1@{DIGEST}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == ("localhost:5000", "team/app", "v1", DIGEST)
    assert ref.selector == DIGEST
    assert parse_reference("busybox").selector == "latest"


@pytest.mark.parametrize("ref, why", [
    ("", "empty"),
    ("Busybox", "bad repository name"),
    ("busybox:", "bad tag"),
    ("busybox@sha256:xyz", "bad digest"),
    ("bad_host:x:y/z", "bad"),
])
def test_invalid_references_are_refused_with_the_reason(ref: str, why: str) -> None:
    with pytest.raises(InvalidReference, match=why):
        normalize_reference(ref)
