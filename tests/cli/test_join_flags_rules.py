"""`podbay join` and `podbay up --embedded-etcd` refuse what cannot work before starting anything."""
from __future__ import annotations

from pathlib import Path

import pytest

from podbay.cli.main import main
from podbay.cli.server import missing_node_tools
from podbay.cli.settings import Settings


def flags(tmp_path: Path) -> list[str]:
    return ["--state-root", str(tmp_path / "state"), "--run-root", str(tmp_path / "run")]


def test_join_needs_a_server_and_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODBAY_TOKEN", raising=False)
    monkeypatch.delenv("PODBAY_SERVER", raising=False)
    assert main([*flags(tmp_path), "join", "--token", "K10abc::secret"]) == 2
    assert "join needs --server" in capsys.readouterr().err
    assert main([*flags(tmp_path), "join", "--server", "https://10.0.0.1:6443"]) == 2
    assert "--token" in capsys.readouterr().err
    assert not (tmp_path / "run" / "podbay.pid").exists()


def test_embedded_etcd_and_etcd_servers_are_one_store_too_many(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*flags(tmp_path), "--etcd-servers", "http://127.0.0.1:2379", "up", "--embedded-etcd"]) == 2
    assert "--embedded-etcd and --etcd-servers" in capsys.readouterr().err


def test_a_node_missing_its_tools_names_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no crun, conmon, iptables, ...
    settings = Settings(state_root=tmp_path, run_root=tmp_path, cgroup_parent="p", network_name="n", bridge="b",
                        subnet=None, node_name="n", api_port=0, server=None)
    missing = missing_node_tools(settings)
    assert {"crun", "conmon", "iptables", "ip", "nsenter"} <= set(missing)
