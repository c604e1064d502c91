"""`podbay image pull` as a user runs it, against a real registry on 127.0.0.1: with stderr not
a terminal, one plain line per blob as it finishes, and the image id on stdout."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from images_layouts import busybox_layer, write_layout
from images_registry import RegistryFactory

from tests.cli.podbay_cli import podbay_cli
from tests.conftest import HostEnv, require_root

pytestmark = pytest.mark.e2e


def test_pull_reports_each_blob_once(host_env: HostEnv, start_registry: RegistryFactory, tmp_path: Path) -> None:
    require_root()
    write_layout(tmp_path / "one", busybox_layer(tmp_path), "one")
    registry = start_registry()
    registry.push(f"oci:{tmp_path / 'one'}:one", "busybox:1.35")
    [manifest_ref] = json.loads((tmp_path / "one" / "index.json").read_text())["manifests"]
    manifest = json.loads((tmp_path / "one" / "blobs" / "sha256" / manifest_ref["digest"][7:]).read_text())
    short = [d["digest"][7:19] for d in (manifest["config"], *manifest["layers"])]
    podbay = podbay_cli(host_env)

    first = podbay("image", "pull", f"{registry.host}/busybox:1.35")
    assert sorted(first.stderr.splitlines()) == sorted(f"{s}: Pull complete" for s in short)
    assert first.stdout.strip() == "sha256:" + manifest["config"]["digest"][7:]

    again = podbay("image", "pull", f"{registry.host}/busybox:1.35")
    assert sorted(again.stderr.splitlines()) == sorted(f"{s}: Already exists" for s in short)
    assert again.stdout == first.stdout
