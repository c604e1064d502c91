"""--runsc-network, --runsc-platform and --warm-gvisor-sandboxes reach the runtime's gVisor
handler, survive as a child `podbay up`'s arguments, and a network mode runsc has not is refused
by the flag's name."""
from __future__ import annotations

import argparse

import pytest

from podbay.cli.settings import Settings, add_global_flags, settings_from


def settings(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_global_flags(parser)
    return settings_from(parser.parse_args(["--state-root", "/srv/pb", *argv]))


def test_netstack_and_ptrace_by_default() -> None:
    config = settings().runtime_config()
    assert (config.runsc_network, config.runsc_platform) == ("sandbox", "ptrace")


def test_the_flags_reach_the_runtime_and_survive_as_args() -> None:
    s = settings("--runsc-network", "host", "--runsc-platform", "systrap")
    assert (s.runtime_config().runsc_network, s.runtime_config().runsc_platform) == ("host", "systrap")
    assert settings(*s.as_args()) == s


def test_an_unknown_network_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        settings("--runsc-network", "bridge")
    assert "--runsc-network: invalid choice: 'bridge'" in capsys.readouterr().err


def test_one_booted_gvisor_sandbox_is_kept_warm_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODBAY_WARM_GVISOR_SANDBOXES")  # the test suite's own setting
    assert settings().runtime_config().warm_gvisor_sandboxes == 1
    s = settings("--warm-gvisor-sandboxes", "3")
    assert s.runtime_config().warm_gvisor_sandboxes == 3
    assert settings(*s.as_args()) == s
