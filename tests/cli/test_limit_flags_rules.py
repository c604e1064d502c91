"""The limit flags: defaults, environment, a child's argv, and a bad threshold refused."""
from __future__ import annotations

import argparse

import pytest

from podbay.cli.settings import add_global_flags, settings_from


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_global_flags(parser)
    return parser.parse_args(argv)


def test_defaults_environment_and_child_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(parse([]))
    assert settings.pod_pids_limit == 4096 and settings.housekeeping_interval == 10.0
    assert settings.eviction_hard.startswith("memory.available<100Mi,nodefs.available<10%")
    assert settings_from(parse(settings.as_args())) == settings
    monkeypatch.setenv("PODBAY_POD_PIDS_LIMIT", "-1")
    monkeypatch.setenv("PODBAY_EVICTION_HARD", "pid.available<10%")
    settings = settings_from(parse([]))
    assert (settings.pod_pids_limit, settings.eviction_hard) == (-1, "pid.available<10%")


def test_a_bad_threshold_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--eviction-hard", "memory.available>1Gi"])
    assert "argument --eviction-hard: invalid eviction threshold" in capsys.readouterr().err


def test_max_pods_defaults_to_the_kubelets_110_and_must_be_positive(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert settings_from(parse([])).max_pods == 110
    settings = settings_from(parse(["--max-pods", "250"]))
    assert settings.max_pods == 250 and settings_from(parse(settings.as_args())) == settings
    monkeypatch.setenv("PODBAY_MAX_PODS", "7")
    assert settings_from(parse([])).max_pods == 7
    for bad in ("0", "-3", "many"):
        with pytest.raises(SystemExit):
            parse(["--max-pods", bad])
        assert f"argument --max-pods: {bad!r}: not a positive integer" in capsys.readouterr().err
