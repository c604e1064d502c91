"""Which specs get a compiled filter in crun's annotation, and from which container's state."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from podbay.runtime.seccompbpf import BPF_ANNOTATION, MAX_FILTERS, CompiledFilters


def spec(seccomp: dict[str, Any] | None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    linux: dict[str, Any] = {} if seccomp is None else {"seccomp": seccomp}
    return {"linux": linux, "annotations": dict(annotations or {})}


def created(tmp_path: Path, container_id: str, config: dict[str, Any], bpf: bytes | None) -> Path:
    """A bundle with `config` and, as crun leaves it after a create, the filter in its state."""
    bundle = tmp_path / "bundles" / container_id
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(config))
    if bpf is not None:
        (tmp_path / "crun" / container_id).mkdir(parents=True)
        (tmp_path / "crun" / container_id / "seccomp.bpf").write_bytes(bpf)
    return bundle


DEFAULT = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
OTHER = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def test_the_second_container_of_a_profile_gets_the_filter_crun_compiled_for_the_first(tmp_path: Path) -> None:
    filters = CompiledFilters(tmp_path / "crun")
    first = filters.annotate(spec(DEFAULT, {"io.kubernetes.pod.name": "web"}))
    assert BPF_ANNOTATION not in first["annotations"]
    filters.learn("c1", created(tmp_path, "c1", first, b"\x06\x00\x00\x00"))
    second = filters.annotate(spec(DEFAULT, {"io.kubernetes.pod.name": "web"}))
    assert second["annotations"] == {"io.kubernetes.pod.name": "web",
                                     BPF_ANNOTATION: base64.b64encode(b"\x06\x00\x00\x00").decode()}
    assert second["linux"]["seccomp"] == DEFAULT  # crun takes the flags and listener from it still
    assert BPF_ANNOTATION not in filters.annotate(spec(OTHER))["annotations"]
    assert filters.annotate({"linux": {}}) == {"linux": {}}


def test_nothing_is_learned_from_a_container_without_a_compiled_filter(tmp_path: Path) -> None:
    filters = CompiledFilters(tmp_path / "crun")
    filters.annotate(spec(DEFAULT))
    filters.learn("gone", created(tmp_path, "gone", spec(DEFAULT), None))  # no state: nothing kept
    filters.learn("empty", created(tmp_path, "empty", spec(DEFAULT), b""))
    filters.learn("other", created(tmp_path, "other", spec(OTHER), b"\x01"))  # a profile never asked for
    assert BPF_ANNOTATION not in filters.annotate(spec(DEFAULT))["annotations"]
    assert BPF_ANNOTATION not in filters.annotate(spec(OTHER))["annotations"]


def test_the_filters_kept_are_bounded(tmp_path: Path) -> None:
    filters = CompiledFilters(tmp_path / "crun")
    profiles = [{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [f"n{i}"], "action": "SCMP_ACT_ERRNO"}]}
                for i in range(MAX_FILTERS + 1)]
    for i, profile in enumerate(profiles):
        filters.annotate(spec(profile))
        filters.learn(f"c{i}", created(tmp_path, f"c{i}", spec(profile), b"\x01"))
    assert BPF_ANNOTATION not in filters.annotate(spec(profiles[0]))["annotations"]  # the oldest went
    assert BPF_ANNOTATION in filters.annotate(spec(profiles[-1]))["annotations"]
