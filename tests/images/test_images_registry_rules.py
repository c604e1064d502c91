from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from podbay.runtime.images.manifests import media_type, select_platform
from podbay.runtime.images.reference import parse_reference
from podbay.runtime.images.registry import credentials, parse_challenge, registry_url


def test_registry_url_is_https_except_on_this_machine() -> None:
    assert registry_url("docker.io") == "https://registry-1.docker.io"
    assert registry_url("quay.io") == "https://quay.io"
    assert registry_url("localhost:5000") == "http://localhost:5000"
    assert registry_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_url("127.0.0.1.example.com") == "https://127.0.0.1.example.com"


def test_parse_challenge() -> None:
    assert parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                           'scope="repository:library/busybox:pull"') == (
        "bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                   "scope": "repository:library/busybox:pull"})
    assert parse_challenge('Basic realm="r"') == ("basic", {"realm": "r"})


def test_credentials_pick_the_longest_matching_key(tmp_path: Path) -> None:
    def auth(user: str) -> dict[str, str]:
        return {"auth": base64.b64encode(f"{user}:pw".encode()).decode()}
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": auth("hub"), "quay.io": auth("quay"), "quay.io/team": auth("team"),
        "http://localhost:5000": {"username": "local", "password": "p"}}}))
    assert credentials(path, parse_reference("busybox")) == ("hub", "pw")
    assert credentials(path, parse_reference("quay.io/other/x")) == ("quay", "pw")
    assert credentials(path, parse_reference("quay.io/team/x")) == ("team", "pw")
    assert credentials(path, parse_reference("quay.io/teamx/x")) == ("quay", "pw")
    assert credentials(path, parse_reference("localhost:5000/x")) == ("local", "p")
    assert credentials(path, parse_reference("ghcr.io/x")) is None
    assert credentials(None, parse_reference("busybox")) is None


def test_select_platform_prefers_the_baseline_amd64() -> None:
    index = {"manifests": [{"digest": "a", "platform": {"os": "linux", "architecture": "arm64"}},
                           {"digest": "v3", "platform": {"os": "linux", "architecture": "amd64", "variant": "v3"}},
                           {"digest": "b", "platform": {"os": "linux", "architecture": "amd64"}},
                           {"digest": "w", "platform": {"os": "windows", "architecture": "amd64"}}]}
    assert select_platform(index)["digest"] == "b"
    with pytest.raises(LookupError, match="no linux/amd64 image in the index .*linux/arm64"):
        select_platform({"manifests": index["manifests"][:1]})


def test_media_type_refuses_schema_1() -> None:
    assert media_type({"manifests": []}) == "application/vnd.oci.image.index.v1+json"
    with pytest.raises(ValueError, match="schema 1 is not supported"):
        media_type({"schemaVersion": 1, "fsLayers": []})
