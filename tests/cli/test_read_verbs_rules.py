"""The read-only verbs' own command line (podbay.cli.main's fast path) and what it loads."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from podbay.api.kinds import ALL_RESOURCES
from podbay.cli.main import build_parser, parse_args, verb_of
from podbay.api.resourcenames import RESOURCE_NAMES
from podbay.cli.restmapper import resource_for

ROOT = Path(__file__).resolve().parents[2]


def test_the_restmapper_names_every_stored_resource() -> None:
    assert {r.name for r in RESOURCE_NAMES} == set(ALL_RESOURCES)
    assert resource_for("deploy") is resource_for("deployments") is resource_for("deployment")
    assert resource_for("po").path("ns1", "web", "log") == "/api/v1/namespaces/ns1/pods/web/log"  # type: ignore[union-attr]
    assert resource_for("runtimeclass").path("ns1") == "/apis/node.k8s.io/v1/runtimeclasses"  # type: ignore[union-attr]


def test_every_global_flag_takes_one_value_so_the_verb_is_found_without_parsing() -> None:
    parser = build_parser([])
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            assert action.nargs is None and action.const is None, action.option_strings


@pytest.mark.parametrize("argv,verb", [
    (["get", "pods"], "get"),
    (["--run-root", "/r", "--pod-pids-limit", "-1", "logs", "web"], "logs"),
    (["--state-root=/s", "describe", "pod", "x"], "describe"),
    (["-h", "get"], None),
    (["--server", "https://h:1"], None),
])
def test_verb_of(argv: list[str], verb: str | None) -> None:
    assert verb_of(argv) == verb


@pytest.mark.parametrize("argv", [
    ["--run-root", "/r", "get", "pods", "-o", "wide", "-A", "-l", "app=web", "--show-labels"],
    ["get", "pod/web", "-o", "jsonpath={.metadata.name}", "--sort-by", ".metadata.name", "--no-headers"],
    ["--server", "https://127.0.0.1:6443", "--kubeconfig", "/k", "describe", "pod", "web", "-n", "ns"],
    ["logs", "web", "-c", "c", "--tail", "3", "--timestamps", "-p"],
])
def test_the_read_only_command_line_parses_as_the_whole_one(argv: list[str]) -> None:
    _, lean = parse_args(argv)
    full = build_parser().parse_args(argv)
    assert {k: v for k, v in vars(lean).items() if k != "func"} == {k: v for k, v in vars(full).items() if k != "func"}


def test_what_it_cannot_parse_the_whole_command_line_reports() -> None:
    proc = subprocess.run([sys.executable, "-m", "podbay", "get", "pods", "--bogus"], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2 and "podbay: error: unrecognized arguments: --bogus" in proc.stderr
    assert "{up," in proc.stderr or "VERB" in proc.stderr


def test_get_loads_neither_aiohttp_nor_the_models(tmp_path: Path) -> None:
    """Against a socket that is not there: everything up to the request, as a user's start."""
    code = ("import sys; from podbay.cli.main import main; "
            f"rc = main(['--run-root', '{tmp_path}', 'get', 'pods', '-o', 'wide']); "
            "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'pydantic', 'yaml') "
            "or m in ('podbay.api.models', 'podbay.client.client', 'podbay.runtime.service')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip() == "1 []", proc.stderr
    assert "podbay is not running" in proc.stderr


def test_metadata_prints_in_the_order_the_models_write_it() -> None:
    from podbay.api.models import ObjectMeta
    from podbay.cli.listing import OBJECT_META_FIELDS
    assert list(OBJECT_META_FIELDS) == [f.alias or n for n, f in ObjectMeta.model_fields.items()]


def test_libyaml_writes_what_the_python_dumper_wrote() -> None:
    """-o yaml uses libyaml's emitter where PyYAML has it; the text must not change."""
    import yaml
    data = {"apiVersion": "v1", "kind": "List", "items": [{"metadata": {"name": "p", "labels": {"a": "yes"}}, "spec": {
        "long": "x " * 120, "lines": "one\ntwo\n", "unicode": "ünïcödé ✓", "lead": " space", "number": "1.0",
        "empty": "", "none": None, "list": [], "map": {}, "colon": "a: b", "dash": "- x", "hash": "#c", "tab": "\t t",
        "null": "null", "octal": "0o17", "tilde": "~", "int": 3, "bool": True, "float": 0.5}}]}
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    assert yaml.dump(data, Dumper=dumper, sort_keys=False) == yaml.safe_dump(data, sort_keys=False)
