"""The --leader-elect* flags as kube-scheduler reads them."""
from __future__ import annotations

import pytest

from podbay.cli.main import build_parser
from podbay.cli.server import leader_election_from


def test_defaults_are_kube_schedulers() -> None:
    config = leader_election_from(build_parser().parse_args(["scheduler"]))
    assert config is not None
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (15.0, 10.0, 2.0)
    assert (config.namespace, config.name) == ("kube-system", "")  # "": the component's own lease


def test_durations_and_switching_off() -> None:
    args = build_parser().parse_args(["controllers", "--leader-elect-lease-duration", "2s",
                                      "--leader-elect-renew-deadline", "1500ms", "--leader-elect-retry-period",
                                      "0.25s", "--leader-elect-resource-name", "mine"])
    config = leader_election_from(args)
    assert config is not None and (config.lease_duration, config.renew_deadline, config.retry_period,
                                   config.name) == (2.0, 1.5, 0.25, "mine")
    assert leader_election_from(build_parser().parse_args(["scheduler", "--leader-elect=false"])) is None
    assert leader_election_from(build_parser().parse_args(["scheduler", "--leader-elect"])) is not None


def test_inconsistent_timings_are_refused_with_client_gos_reason() -> None:
    args = build_parser().parse_args(["scheduler", "--leader-elect-renew-deadline", "20s"])
    with pytest.raises(SystemExit, match="leaseDuration must be greater than renewDeadline"):
        leader_election_from(args)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["scheduler", "--leader-elect-retry-period", "soon"])
