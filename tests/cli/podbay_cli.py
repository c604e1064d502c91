"""The podbay command run as a user runs it, one process per call, on a test's roots."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import HostEnv
from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def podbay_cli(env: HostEnv):
    # A port of its own rather than the default 6443, which tests running side by side would share.
    flags = ["--state-root", str(env.state_root), "--run-root", str(env.run_root), "--cgroup-parent",
             env.cgroup_parent, "--network", env.network_name, "--bridge", env.bridge, "--subnet", env.subnet,
             "--node-name", f"node-{env.prefix}", "--api-port", str(free_port()),
             # The service proxy's chains are named for the test, so side-by-side tests keep apart.
             "--proxy-chain-prefix", env.network_name,
             # Cluster DNS forwards nothing off the machine (non-cluster names: SERVFAIL).
             "--cluster-dns-upstreams", ""]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "podbay", *flags, *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"podbay {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc
    run.flags = flags  # type: ignore[attr-defined]  # for a test that starts a long-running verb itself
    return run


def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.2)


def crun_containers(env: HostEnv) -> dict[str, dict]:
    """What crun itself knows, by container id: the host's view, independent of podbay."""
    crun_root = env.run_root / "crun"
    out = subprocess.run(["crun", f"--root={crun_root}", "list", "--format=json"], capture_output=True,
                         text=True, check=True).stdout
    return {c["id"]: c for c in json.loads(out or "[]")}
