"""The runtime's roots on real filesystems: the directories that hold one tree per container,
sandbox or pod are marked as tops of separate trees where the filesystem has the flag, and roots
on a filesystem without it are made all the same."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from podbay.runtime.config import RuntimeConfig, prepare_roots
from tests.conftest import HostEnv, require_root
from tests.runtime.conftest import runtime_config

pytestmark = pytest.mark.e2e


def lsattr(directory: Path) -> str | None:
    """`lsattr -d`'s flags for the directory; None where the filesystem has no inode flags."""
    proc = subprocess.run(["lsattr", "-d", str(directory)], capture_output=True, text=True)
    return proc.stdout.split()[0] if proc.returncode == 0 else None


def test_each_containers_sandboxes_and_pods_trees_are_placed_apart(host_env: HostEnv) -> None:
    require_root()
    config = runtime_config(host_env)
    prepare_roots(config)
    if lsattr(config.containers_root) is None:
        pytest.skip("the test roots' filesystem has no inode flags")
    spread = (config.containers_root, config.pods_root, config.bundles_root, config.crun_root,
              config.run_root / "sandboxes", config.state_root / "logs")
    assert {d: "T" in (lsattr(d) or "") for d in spread} == {d: True for d in spread}
    # A directory of shared content (layers, images) stays where ext4 puts it.
    assert "T" not in (lsattr(config.images_root) or "")
    prepare_roots(config)  # again, as every start does: already marked
    assert "T" in (lsattr(config.containers_root) or "")


def test_roots_on_a_filesystem_without_inode_flags_are_made_private() -> None:
    require_root()
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm")
    base = Path(tempfile.mkdtemp(prefix="podbay-roots-", dir="/dev/shm"))
    try:
        config = RuntimeConfig(state_root=base / "lib", run_root=base / "run")
        prepare_roots(config)
        dirs = (config.containers_root, config.crun_root, config.run_root / "sandboxes")
        assert {d: stat.S_IMODE(os.stat(d).st_mode) for d in dirs} == {d: 0o700 for d in dirs}
    finally:
        shutil.rmtree(base)
