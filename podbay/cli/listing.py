"""What `get` prints, for `get` and `get -w` alike: the objects of a get's target as kubectl
orders and shapes them, the server's meta.k8s.io Table as kubectl's table, and -o json, yaml,
jsonpath and custom-columns."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from podbay.api.resourcenames import Resource
from podbay.cli import printflags
from podbay.cli.common import CLIError, table
from podbay.cli.restmapper import EVENT, resource_for
from podbay.client.rest import RESTClient

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

# metav1.ObjectMeta's fields in its Go struct's order, the order kubectl and the models print them
# in; the API server adds resourceVersion to a stored object last.
OBJECT_META_FIELDS = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
                      "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
                      "annotations", "ownerReferences", "finalizers", "managedFields")


def target(args: argparse.Namespace) -> tuple[Resource, list[str], str | None]:
    """The resource, names (`get pod a b`, `get pod/a`) and namespace (None: all) of a get."""
    resource = resource_for(args.kind.split("/")[0])
    if resource is None:
        raise CLIError(f'the server doesn\'t have a resource type "{args.kind}"')
    names = list(args.names) + ([args.kind.split("/", 1)[1]] if "/" in args.kind else [])
    ns = None if args.all_namespaces or not resource.namespaced else (args.namespace or "default")
    return resource, names, ns


def objects(rest: RESTClient, resource: Resource, names: list[str], ns: str | None,
            selector: str | None) -> tuple[list[dict[str, Any]], str]:
    """The objects as JSON in the order kubectl prints them (apiVersion and kind first, metadata's
    fields in ObjectMeta's order), sorted by namespace and name unless named; and the list's
    resourceVersion (none when named)."""
    rv = ""
    if names:
        objs = [rest.get(resource.path(ns, n)) for n in names]
    else:
        listed = rest.get(resource.path(ns), _selector(selector))
        objs, rv = listed.get("items", []), str((listed.get("metadata") or {}).get("resourceVersion") or "")
        objs.sort(key=_namespaced_name)
    return [typed(resource, o) for o in objs], rv


def typed(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta = {**{k: meta[k] for k in OBJECT_META_FIELDS if k in meta}, **meta}
    return {"apiVersion": f"{resource.group}/{resource.version}" if resource.group else resource.version,
            "kind": resource.kind, **obj, **({"metadata": meta} if meta is not None else {})}


def _selector(selector: str | None) -> dict[str, str] | None:
    return {"labelSelector": selector} if selector else None


def _namespaced_name(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def none_found(ns: str | None) -> int:
    where = f" in {ns} namespace" if ns else ""
    print(f"No resources found{where}.", file=sys.stderr)
    return 0


def table_rows(rest: RESTClient, resource: Resource, names: list[str], ns: str | None,
               args: argparse.Namespace, include: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The server's Table rows in kubectl's order (by namespace and name unless named, --sort-by,
    events oldest first), its columns, and the resourceVersion it was read at (a list's)."""
    # --sort-by and the events' order need the whole object.
    include = include or ("Object" if resource is EVENT or args.sort_by else None)
    params = {"includeObject": include} if include else {}
    if names:
        tables = [rest.get(resource.path(ns, n), params or None, accept=TABLE) for n in names]
    else:
        tables = [rest.get(resource.path(ns), {**params, **(_selector(args.selector) or {})} or None, accept=TABLE)]
    rows = [row for t in tables for row in t.get("rows", [])]
    if not names:
        rows.sort(key=lambda r: _namespaced_name(r.get("object") or {}))
    if args.sort_by:
        rows.sort(key=lambda r: printflags.sort_key(r["object"], args.sort_by))
    if resource is EVENT:
        rows.sort(key=lambda r: _event_order(r["object"]))
    return rows, tables[0]["columnDefinitions"], str((tables[0].get("metadata") or {}).get("resourceVersion") or "")


def table_lines(columns: list[dict[str, Any]], rows: list[dict[str, Any]], args: argparse.Namespace,
                header: bool) -> list[list[str]]:
    """kubectl's table from the server's Table: the priority-0 columns (with -o wide all), a first
    NAMESPACE with -A, a last LABELS with --show-labels."""
    shown = [i for i, c in enumerate(columns) if args.output == "wide" or c.get("priority", 0) == 0]
    all_ns = args.all_namespaces
    lines = [] if not header else [
        (["NAMESPACE"] if all_ns else []) + [columns[i]["name"].upper() for i in shown]
        + (["LABELS"] if args.show_labels else [])]
    for r in rows:
        obj = r.get("object") or {}
        lines.append(([_namespaced_name(obj)[0]] if all_ns else []) + [str(r["cells"][i]) for i in shown]
                     + ([printflags.labels_cell(obj)] if args.show_labels else []))
    return lines


def name_line(resource: Resource, obj: dict[str, Any]) -> str:
    """-o name's line: kind/name."""
    return f"{resource.kind.lower()}/{_namespaced_name(obj)[1]}"


def _event_order(event: dict[str, Any]) -> tuple[datetime, int]:
    """Oldest first: lastTimestamp, else eventTime; the resourceVersion breaks ties."""
    stamp = event.get("lastTimestamp") or event.get("eventTime")
    when = datetime.fromisoformat(stamp) if stamp else datetime.min.replace(tzinfo=timezone.utc)
    return when, int((event.get("metadata") or {}).get("resourceVersion") or 0)


def output_data(objs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """What -o json/yaml/jsonpath print: the object when one was named, else a List, as kubectl's."""
    if len(objs) == 1 and args.names:
        return objs[0]
    return {"apiVersion": "v1", "kind": "List", "items": objs, "metadata": {"resourceVersion": ""}}


def print_objects(objs: list[dict[str, Any]], args: argparse.Namespace, header: bool = True) -> None:
    """-o json, yaml, jsonpath and custom-columns over the objects' JSON (header: custom-columns')."""
    out = args.output or ""
    if out.startswith("jsonpath="):
        print(printflags.jsonpath_output(out[len("jsonpath="):], output_data(objs, args)), end="")
    elif out.startswith("custom-columns="):
        rows = printflags.custom_column_rows(objs, out[len("custom-columns="):])
        print(table(rows if header and not args.no_headers else rows[1:]))
    elif out == "json":
        print(json.dumps(output_data(objs, args), indent=4))
    else:
        import yaml
        # libyaml's emitter where PyYAML has it: the same text, several times sooner
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        print(yaml.dump(output_data(objs, args), Dumper=dumper, sort_keys=False), end="")
