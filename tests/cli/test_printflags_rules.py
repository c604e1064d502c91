"""podbay get's kubectl printing flags: JSONPath templates, custom columns, sort keys, labels."""
from __future__ import annotations

import argparse

import pytest

from podbay.api.jsonpath import JSONPathError, find, parse, render
from podbay.cli.printflags import custom_column_rows, labels_cell, output_format, sort_key

LIST = {"kind": "List", "items": [
    {"metadata": {"name": "b", "labels": {"app": "web", "tier": "x"}},
     "status": {"phase": "Running", "containerStatuses": [{"name": "c1", "ready": True, "restartCount": 2},
                                                          {"name": "c2", "ready": False, "restartCount": 10}]}},
    {"metadata": {"name": "a"}, "status": {"phase": "Pending"}},
]}


def test_fields_lists_and_ranges() -> None:
    assert render("{.items[*].metadata.name}", LIST) == "b a"
    assert render("{.items[0].metadata.name}", LIST) == "b"
    assert render("{.items[-1:].metadata.name}", LIST) == "a"
    assert render('{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}', LIST) == \
        "b\tRunning\na\tPending\n"
    assert render("kind={.kind} {$.kind}", LIST) == "kind=List List"
    assert render("{.items[0].metadata.labels}", LIST) == '{"app":"web","tier":"x"}'
    assert render("{.items[0].status.containerStatuses[0].ready}", LIST) == "true"


def test_missing_keys_print_nothing() -> None:
    assert render("{.items[1].metadata.labels.app}", LIST) == ""
    assert render("{.nope}", LIST) == ""


def test_filters() -> None:
    assert render('{.items[?(@.status.phase=="Pending")].metadata.name}', LIST) == "a"
    assert render("{.items[0].status.containerStatuses[?(@.restartCount>5)].name}", LIST) == "c2"
    assert render("{.items[0].status.containerStatuses[?(@.ready==true)].name}", LIST) == "c1"
    assert render("{.items[?(@.metadata.labels)].metadata.name}", LIST) == "b"
    assert render("{.items[0].metadata['labels']['app']}", LIST) == "web"


@pytest.mark.parametrize("bad", ["{.items[}", "{range .items[*]}{.a}", "{end}", "{.items[x]}", "{.a"])
def test_malformed_templates_are_refused(bad: str) -> None:
    with pytest.raises(JSONPathError):
        parse(bad)


def test_output_formats() -> None:
    assert output_format("jsonpath={.metadata.name}") == "jsonpath={.metadata.name}"
    for bad in ("yml", "jsonpath={.a", "custom-columns=NAME"):
        with pytest.raises(argparse.ArgumentTypeError):
            output_format(bad)


def test_custom_columns_and_labels() -> None:
    rows = custom_column_rows(LIST["items"], "NAME:.metadata.name,APP:.metadata.labels.app,"
                                             "RESTARTS:.status.containerStatuses[*].restartCount")
    assert rows == [["NAME", "APP", "RESTARTS"], ["b", "web", "2,10"], ["a", "<none>", "<none>"]]
    assert labels_cell(LIST["items"][0]) == "app=web,tier=x"
    assert labels_cell(LIST["items"][1]) == "<none>"


def test_sort_keys() -> None:
    items = LIST["items"]
    assert sorted(items, key=lambda o: sort_key(o, ".metadata.name"))[0]["metadata"]["name"] == "a"
    assert sorted(items, key=lambda o: sort_key(o, "{.metadata.labels.app}"))[0]["metadata"]["name"] == "a"
    counts = [{"n": 10}, {"n": 9}, {}]
    assert [o.get("n") for o in sorted(counts, key=lambda o: sort_key(o, ".n"))] == [None, 9, 10]
    assert find(items[0], ".status.phase") == ["Running"]
