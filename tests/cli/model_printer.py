"""The test's reference for the lean read path: `get` as it was printed from the models over the
async Client before every `get` ran on podbay.client.rest and the server's Tables (the columns
from podbay.api.tables, the objects from podbay.api.serialize). Nothing in podbay uses it."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

import yaml

from podbay.api import Event, Namespace, Node
from podbay.api.serialize import to_dict
from podbay.api.tables import table_of
from podbay.cli import printflags
from podbay.cli.common import CLIError, table
from podbay.cli.kubectl import KINDS
from podbay.client import Client


def _rows(objs: list[Any], kind: type, wide: bool, all_ns: bool, show_labels: bool = False) -> list[list[str]]:
    """kubectl's table: the kind's columns (with `-o wide` the priority-1 ones too, with
    --show-labels a last LABELS), events oldest first."""
    columns, cells = table_of(kind)
    shown = [i for i, c in enumerate(columns) if wide or c.priority == 0]
    rows = [(["NAMESPACE"] if all_ns else []) + [columns[i].name.upper() for i in shown]
            + (["LABELS"] if show_labels else [])]
    if kind is Event:
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        objs = sorted(objs, key=lambda e: (e.last_timestamp or e.event_time or epoch,
                                           int(e.metadata.resource_version or 0)))
    now = datetime.now(timezone.utc)
    for o in objs:
        row = cells(o, now)
        rows.append(([o.metadata.namespace or ""] if all_ns else []) + [str(row[i]) for i in shown]
                    + ([printflags.labels_cell(to_dict(o))] if show_labels else []))
    return rows


def _output_data(objs: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """What -o json/yaml/jsonpath print: the object when one was named, else a List, as kubectl's."""
    if len(objs) == 1 and args.names:
        return to_dict(objs[0])
    return {"apiVersion": "v1", "kind": "List", "items": [to_dict(o) for o in objs], "metadata": {"resourceVersion": ""}}


def _print_objects(objs: list[Any], kind: type, args: argparse.Namespace) -> None:
    out = args.output or ""
    header = not args.no_headers
    if out.startswith("jsonpath="):
        print(printflags.jsonpath_output(out[len("jsonpath="):], _output_data(objs, args)), end="")
        return
    if out.startswith("custom-columns="):
        rows = printflags.custom_column_rows([to_dict(o) for o in objs], out[len("custom-columns="):])
        print(table(rows if header else rows[1:]))
        return
    if out == "name":
        for o in objs:
            print(f"{kind.__name__.lower()}/{o.metadata.name}")
        return
    if out in ("yaml", "json"):
        data = _output_data(objs, args)
        print(json.dumps(data, indent=4) if out == "json" else yaml.safe_dump(data, sort_keys=False), end="" if out == "yaml" else "\n")
        return
    rows = _rows(objs, kind, out == "wide", getattr(args, "all_namespaces", False), args.show_labels)
    if not header:
        rows = rows[1:]
    if len(rows) > (1 if header else 0):
        print(table(rows))


async def get_with_models(client: Client, args: argparse.Namespace) -> int:
    kind = KINDS.get(args.kind.split("/")[0])
    if kind is None:
        raise CLIError(f'the server doesn\'t have a resource type "{args.kind}"')
    names = list(args.names) + ([args.kind.split("/", 1)[1]] if "/" in args.kind else [])
    args.names = names
    namespaced = kind not in (Node, Namespace)
    ns = None if args.all_namespaces or not namespaced else (args.namespace or "default")
    if names:
        objs = [await client.get(kind, n, ns) for n in names]
    else:
        objs, _ = await client.list(kind, ns, label_selector=args.selector)
        objs.sort(key=lambda o: (o.metadata.namespace or "", o.metadata.name or ""))
    if args.sort_by:
        objs.sort(key=lambda o: printflags.sort_key(to_dict(o), args.sort_by))
    if not objs:
        where = f" in {ns} namespace" if ns else ""
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    _print_objects(objs, kind, args)
    return 0
