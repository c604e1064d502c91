"""kubectl's printing flags for `podbay get`: `-o jsonpath=…`, `-o custom-columns=…`,
`--no-headers`, `--show-labels` and `--sort-by`, over the objects as the API serves them."""
from __future__ import annotations

import argparse
from typing import Any

from podbay.api import jsonpath
from podbay.cli.common import CLIError

FIXED_OUTPUTS = ("wide", "yaml", "json", "name")
_TEMPLATE_OUTPUTS = ("jsonpath=", "custom-columns=")


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=output_format,
                        help="wide|yaml|json|name|jsonpath=TEMPLATE|custom-columns=NAME:PATH[,...]")
    parser.add_argument("--no-headers", action="store_true", help="tables without their header row")
    parser.add_argument("--show-labels", action="store_true", help="a last LABELS column")
    parser.add_argument("--sort-by", help="a JSONPath whose value orders the list, e.g. .metadata.name")


def output_format(value: str) -> str:
    """The -o value, refused as kubectl refuses an unknown format or a template it cannot parse."""
    if value in FIXED_OUTPUTS:
        return value
    if value.startswith("jsonpath="):
        try:
            jsonpath.parse(value[len("jsonpath="):])
        except jsonpath.JSONPathError as exc:
            raise argparse.ArgumentTypeError(f"error parsing jsonpath {value[len('jsonpath='):]}, {exc}") from None
        return value
    if value.startswith("custom-columns="):
        custom_columns(value[len("custom-columns="):])
        return value
    raise argparse.ArgumentTypeError(
        f"unable to match a printer suitable for the output format \"{value}\", allowed formats are: "
        f"{','.join(FIXED_OUTPUTS)},jsonpath=,custom-columns=")


def custom_columns(spec: str) -> list[tuple[str, str]]:
    """NAME:PATH pairs; kubectl's error for a column without a path."""
    columns = []
    for part in spec.split(","):
        name, sep, path = part.partition(":")
        if not sep or not name or not path:
            raise argparse.ArgumentTypeError(
                f'unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>')
        try:
            jsonpath.parse("{" + path.strip().strip("{}") + "}")
        except jsonpath.JSONPathError as exc:
            raise argparse.ArgumentTypeError(f"error parsing jsonpath {path}, {exc}") from None
        columns.append((name, path))
    return columns


def sort_key(obj: dict[str, Any], expr: str) -> tuple[int, Any]:
    """Orders as kubectl's --sort-by: numbers numerically, before strings; a missing field first."""
    try:
        found = jsonpath.find(obj, expr)
    except jsonpath.JSONPathError as exc:
        raise CLIError(f"couldn't find any field with path {expr!r} in the list of objects: {exc}") from None
    if not found or found[0] is None:
        return (0, "")
    value = found[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    return (2, jsonpath.format_value(value))


def labels_cell(obj: dict[str, Any]) -> str:
    labels = obj.get("metadata", {}).get("labels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def custom_column_rows(objs: list[dict[str, Any]], spec: str) -> list[list[str]]:
    columns = custom_columns(spec)
    rows = [[name for name, _ in columns]]
    for obj in objs:
        cells = []
        for _, path in columns:
            found = [v for v in jsonpath.find(obj, path) if v is not None]
            cells.append(",".join(jsonpath.format_value(v) for v in found) if found else "<none>")
        rows.append(cells)
    return rows


def jsonpath_output(template: str, data: dict[str, Any]) -> str:
    return jsonpath.render(template, data)
