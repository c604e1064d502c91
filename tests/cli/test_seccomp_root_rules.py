"""--seccomp-profile-root reaches the node agent, and a child process gets it back."""
from __future__ import annotations

import argparse
from pathlib import Path

from podbay.cli.allinone import _agent_config
from podbay.cli.settings import add_global_flags, settings_from


def settings(*argv: str):
    parser = argparse.ArgumentParser()
    add_global_flags(parser)
    return settings_from(parser.parse_args(["--state-root", "/srv/pb", *argv]))


def test_the_profile_root_defaults_under_the_state_root_and_can_be_moved() -> None:
    assert _agent_config(settings()).seccomp_root == Path("/srv/pb/seccomp")
    moved = settings("--seccomp-profile-root", "/etc/podbay/seccomp")
    assert _agent_config(moved).seccomp_root == Path("/etc/podbay/seccomp")
    assert settings(*moved.as_args()) == moved
