"""--cluster-dns-upstreams: where cluster DNS forwards names outside the cluster domain. Left out,
the host's resolv.conf nameservers (CoreDNS's `forward . /etc/resolv.conf`); empty, none; a bad
entry is refused naming it; a child `podbay` process gets the setting back."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from podbay.agent.upstreams import Upstream, host_resolvers
from podbay.cli.settings import Settings, add_global_flags, settings_from


def settings(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_global_flags(parser)
    return settings_from(parser.parse_args(["--state-root", "/srv/pb", *argv]))


def test_unset_means_the_hosts_resolvers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODBAY_CLUSTER_DNS_UPSTREAMS", raising=False)
    assert settings().cluster_dns_upstreams is None


def test_empty_means_none_and_survives_as_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODBAY_CLUSTER_DNS_UPSTREAMS", raising=False)
    s = settings("--cluster-dns-upstreams", "")
    assert s.cluster_dns_upstreams == ()
    assert settings(*s.as_args()).cluster_dns_upstreams == ()


def test_addresses_with_ports_survive_as_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODBAY_CLUSTER_DNS_UPSTREAMS", raising=False)
    s = settings("--cluster-dns-upstreams", "127.0.0.53, 127.0.0.1:5353")
    assert s.cluster_dns_upstreams == (Upstream("127.0.0.53"), Upstream("127.0.0.1", 5353))
    assert settings(*s.as_args()) == s


def test_the_environment_sets_it_even_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODBAY_CLUSTER_DNS_UPSTREAMS", "")
    assert settings().cluster_dns_upstreams == ()
    monkeypatch.setenv("PODBAY_CLUSTER_DNS_UPSTREAMS", "127.0.0.2")
    assert settings().cluster_dns_upstreams == (Upstream("127.0.0.2"),)


@pytest.mark.parametrize("bad", ["example.com", "127.0.0.1:0", "127.0.0.1:x", "::1", ",".join(["127.0.0.1"] * 16)])
def test_a_bad_entry_is_refused_naming_it(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        settings("--cluster-dns-upstreams", bad)
    assert "--cluster-dns-upstreams" in capsys.readouterr().err


def test_host_resolvers_read_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 10.0.0.2\nnameserver fd00::1\nnameserver 10.0.0.3\noptions x\n")
    assert host_resolvers(conf) == (Upstream("10.0.0.2"), Upstream("10.0.0.3"))
    assert host_resolvers(tmp_path / "missing") == ()
