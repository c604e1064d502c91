"""--etcd-servers and --etcd-prefix (kube-apiserver's names) select the etcd store, from flags
or PODBAY_ETCD_*; a child `podbay up` process gets them back."""
from __future__ import annotations

import argparse

import pytest

from podbay.cli.settings import Settings, add_global_flags, settings_from


def settings(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_global_flags(parser)
    return settings_from(parser.parse_args(["--state-root", "/srv/pb", *argv]))


def test_sqlite_is_the_default() -> None:
    assert settings().etcd_servers == ()


def test_the_flags_name_servers_prefix_and_compaction_and_survive_as_args() -> None:
    s = settings("--etcd-servers", "http://127.0.0.1:2379, http://127.0.0.2:2379", "--etcd-prefix", "/podbay",
                 "--etcd-compaction-interval", "60")
    assert s.etcd_servers == ("http://127.0.0.1:2379", "http://127.0.0.2:2379")
    assert (s.etcd_prefix, s.etcd_compaction_interval) == ("/podbay", 60.0)
    assert settings(*s.as_args()) == s


def test_the_environment_names_them_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODBAY_ETCD_SERVERS", "http://127.0.0.1:2379")
    monkeypatch.setenv("PODBAY_ETCD_PREFIX", "/other")
    s = settings()
    assert (s.etcd_servers, s.etcd_prefix) == (("http://127.0.0.1:2379",), "/other")
