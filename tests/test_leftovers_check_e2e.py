"""The leftovers check of tests/conftest.py's `host_env` itself."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.podbay_cli import ROOT
from tests.conftest import HostEnv, require_root

pytestmark = pytest.mark.e2e


def test_an_agent_with_the_default_proxy_prefix_fails_the_check(host_env: HostEnv) -> None:
    """The rules of kube-proxy's KUBE prefix name no test, so the check looks for any that appear:
    a killed agent's, in a network namespace of the probe's own (`unshare --net`)."""
    require_root()
    probe = subprocess.run(["unshare", "--net", "--", sys.executable, "-m", "tests.default_prefix_probe"],
                           capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert probe.returncode == 0, f"the check passed, or the probe failed: {probe.stdout}{probe.stderr}"
    assert "test left things behind on the host" in probe.stdout
    reported = probe.stdout.split("default_proxy_rules=", 1)[1].split(", cgroups=", 1)[0]
    for rule in ("nat :KUBE-SERVICES", "nat -A OUTPUT -m comment --comment \"kubernetes service portals\" "
                 "-j KUBE-SERVICES", "filter :KUBE-EXTERNAL-SERVICES"):
        assert rule in reported, f"{rule!r} not reported: {probe.stdout}"
    # Only the rules: the agent's runtime state was purged before the check.
    assert "mounts=frozenset(), links=frozenset(), netns=frozenset(), iptables=frozenset()" in probe.stdout
    assert probe.stdout.rstrip().endswith("cgroups=frozenset(), processes=frozenset())")
