"""`get -w` and `get --watch-only` over podbay.client.rest: the objects as `get` prints them, then a
watch from the list's resourceVersion, each change one row printed by the same functions (kubectl
prints no header again). A dropped watch is resumed from the last resourceVersion seen; one the
server no longer has (410) is followed by a relist whose differences are printed, as client-go's
reflector does."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from podbay.api.errors import Gone
from podbay.api.resourcenames import Resource
from podbay.cli import listing, printflags
from podbay.cli.common import table
from podbay.client.rest import RESTClient, Unreachable

_RETRY_MIN, _RETRY_MAX = 0.1, 5.0


@dataclass
class Row:
    """One object as printed: the Table row (cells and object) or, for the other outputs, the object."""
    row: dict[str, Any]

    @property
    def obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.row.get("object") or {}
        return obj

    @property
    def key(self) -> tuple[str, str]:
        meta = self.obj.get("metadata") or {}
        return (meta.get("namespace") or "", meta.get("name") or "")

    @property
    def resource_version(self) -> str:
        return str((self.obj.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class _Printer:
    resource: Resource
    args: argparse.Namespace
    columns: list[dict[str, Any]] = field(default_factory=list)
    header: bool = True  # the header is yet to be printed (with the first rows)

    def print(self, rows: list[Row]) -> None:
        if not rows:
            return
        out = self.args.output or ""
        if out == "name":
            for r in rows:
                print(listing.name_line(self.resource, r.obj))
        elif out in ("", "wide"):
            print(table(listing.table_lines(self.columns, [r.row for r in rows], self.args,
                                          header=self.header and not self.args.no_headers)))
        else:
            listing.print_objects([listing.typed(self.resource, r.obj) for r in rows], self.args, header=self.header)
        self.header = False
        sys.stdout.flush()


def get_watch(rest: RESTClient, args: argparse.Namespace) -> int:
    resource, names, ns = listing.target(args)
    args.names = names
    printer = _Printer(resource, args)
    rows, rv = _list(rest, printer, names, ns)
    if not args.watch_only:
        printer.print(rows)
    for row in _events(rest, printer, names, ns, rv, {r.key: r for r in rows}):
        printer.print([row])
    return 0


def _list(rest: RESTClient, printer: _Printer, names: list[str], ns: str | None) -> tuple[list[Row], str]:
    """The objects in the order `get` prints them, and the resourceVersion to watch from."""
    if printer.args.output in (None, "wide", "name"):
        rows, printer.columns, rv = listing.table_rows(rest, printer.resource, names, ns, printer.args, include="Object")
        listed = [Row(r) for r in rows]
    else:
        objs, rv = listing.objects(rest, printer.resource, names, ns, printer.args.selector)
        if printer.args.sort_by:
            objs.sort(key=lambda o: printflags.sort_key(o, printer.args.sort_by))
        listed = [Row({"object": o}) for o in objs]
    if names:
        rv = min((r.resource_version for r in listed), key=_number, default="")
    return listed, rv


def _events(rest: RESTClient, printer: _Printer, names: list[str], ns: str | None, rv: str,
            known: dict[tuple[str, str], Row]) -> Iterator[Row]:
    """Each change from `rv` on, as a Row; `known` is kept as the objects the rows last showed."""
    # Named objects were read one by one and the watch starts at the oldest: the events each one
    # had already had when it was read are not shown again.
    read_at = {key: row.resource_version for key, row in known.items()} if names else {}
    tabular = printer.args.output in (None, "wide")
    accept = listing.TABLE if tabular else "application/json"
    params = {"allowWatchBookmarks": "true", **_selector(printer.args), **({"includeObject": "Object"} if tabular else {})}
    delay = _RETRY_MIN
    while True:
        try:
            for event in rest.watch(printer.resource.path(ns), {**params, "resourceVersion": rv}, accept):
                delay = _RETRY_MIN
                obj = event.get("object") or {}
                if event.get("type") == "BOOKMARK":
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    continue
                row = _row(obj, printer)
                rv = row.resource_version or rv
                if names and row.key[1] not in names:
                    continue
                if row.key in read_at and not _newer(row.resource_version, read_at[row.key]):
                    continue
                read_at.pop(row.key, None)
                if event.get("type") == "DELETED":
                    known.pop(row.key, None)
                else:
                    known[row.key] = row
                yield row
        except Gone:
            rows, rv = _list(rest, printer, names, ns)
            yield from _differences(known, rows)
        except Unreachable:
            # Every server was tried; wait a little longer each time, as the reflector does.
            time.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)


def _row(obj: dict[str, Any], printer: _Printer) -> Row:
    """A watch event's object as a Row: a Table's single row (its columns kept for the printer)."""
    if obj.get("kind") == "Table":
        printer.columns = obj.get("columnDefinitions") or printer.columns
        rows = obj.get("rows") or [{}]
        return Row(rows[0])
    return Row({"object": obj})


def _differences(known: dict[tuple[str, str], Row], fresh: list[Row]) -> Iterator[Row]:
    """What changed between the objects last shown and a relist: the deleted ones (their last row),
    then the new and changed ones."""
    now = {r.key: r for r in fresh}
    for key in [k for k in known if k not in now]:
        yield known.pop(key)
    for key, row in now.items():
        before = known.get(key)
        known[key] = row
        if before is None or before.resource_version != row.resource_version:
            yield row


def _selector(args: argparse.Namespace) -> dict[str, str]:
    return {"labelSelector": args.selector} if args.selector else {}


def _number(rv: str) -> tuple[int, str]:
    return (int(rv), "") if rv.isdigit() else (0, rv)


def _newer(rv: str, than: str) -> bool:
    """Whether an event's resourceVersion comes after the one its object was printed at."""
    return _number(rv) > _number(than) if rv.isdigit() and than.isdigit() else rv != than
