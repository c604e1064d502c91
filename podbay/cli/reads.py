"""The read-only verbs: get, describe and logs, over podbay.client.rest. Tables are printed from
the server's meta.k8s.io Table (kubectl's server-side printing, podbay.cli.listing), so a `podbay
get` loads neither aiohttp nor the models; get -w (podbay.cli.watch) prints with the same functions."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from podbay.api.resourcenames import Resource
from podbay.cli import printflags
from podbay.cli.common import run_with_rest, table
from podbay.cli.listing import name_line, none_found, objects, print_objects, table_lines, table_rows, target
from podbay.cli.restmapper import EVENT, POD
from podbay.client.rest import RESTClient


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """All three, for a command line that has only these verbs."""
    register_get(sub)
    register_describe(sub)
    register_logs(sub)


def register_get(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("get", help="list objects as kubectl does")
    p.add_argument("kind")
    p.add_argument("names", nargs="*")
    printflags.add_flags(p)
    p.add_argument("-l", "--selector")
    p.add_argument("-n", "--namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-w", "--watch", action="store_true", help="after the objects, each change to them")
    p.add_argument("--watch-only", action="store_true", help="only the changes, not the objects first")
    p.set_defaults(func=_get_verb)


def register_describe(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("describe", help="show a pod's details and events")
    p.add_argument("kind", choices=["pod", "pods", "po"])
    p.add_argument("name")
    p.add_argument("-n", "--namespace")
    p.set_defaults(func=lambda a: run_with_rest(a, lambda rest, s: describe(rest, a)))


def register_logs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logs", help="print a container's log")
    p.add_argument("pod")
    p.add_argument("-c", "--container")
    p.add_argument("-n", "--namespace")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true")
    p.add_argument("--tail", type=int)
    p.add_argument("--timestamps", action="store_true")
    p.set_defaults(func=lambda a: run_with_rest(a, lambda rest, s: logs(rest, a)))


def _get_verb(args: argparse.Namespace) -> int:
    if args.watch or args.watch_only:
        from podbay.cli.watch import get_watch
        return run_with_rest(args, lambda rest, s: get_watch(rest, args))
    return run_with_rest(args, lambda rest, s: get(rest, args))


def get(rest: RESTClient, args: argparse.Namespace) -> int:
    resource, names, ns = target(args)
    args.names = names
    out = args.output or ""
    if out in ("", "wide", "name"):
        return _print_table(rest, resource, names, ns, args)
    else:
        objs, _ = objects(rest, resource, names, ns, args.selector)
    if args.sort_by:
        objs.sort(key=lambda o: printflags.sort_key(o, args.sort_by))
    if not objs:
        return none_found(ns)
    print_objects(objs, args)
    return 0


def _print_table(rest: RESTClient, resource: Resource, names: list[str], ns: str | None,
                 args: argparse.Namespace) -> int:
    rows, columns, _ = table_rows(rest, resource, names, ns, args)
    if not rows:
        return none_found(ns)
    if args.output == "name":
        for r in rows:
            print(name_line(resource, r.get("object") or {}))
        return 0
    print(table(table_lines(columns, rows, args, header=not args.no_headers)))
    return 0


def describe(rest: RESTClient, args: argparse.Namespace) -> int:
    from podbay.cli.describe import describe_pod, pod_events  # get need not load it
    ns = args.namespace or "default"
    pod = rest.get(POD.path(ns, args.name))
    events = rest.get(EVENT.path(ns), {"fieldSelector": f"involvedObject.name={args.name}"}).get("items", [])
    print(describe_pod(pod, pod_events(pod, events)))
    return 0


def logs(rest: RESTClient, args: argparse.Namespace) -> int:
    name = args.pod.split("/", 1)[-1]
    ns = args.namespace or "default"
    container = args.container or default_container(rest.get(POD.path(ns, name)))
    params = {"follow": str(args.follow).lower(), "previous": str(args.previous).lower(), "timestamps": str(args.timestamps).lower()}
    if container:
        params["container"] = container
    if args.tail is not None:
        params["tailLines"] = str(args.tail)
    for chunk in rest.stream(POD.path(ns, name, "log"), params, follow=args.follow):
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    return 0


def default_container(pod: dict[str, Any]) -> str | None:
    """kubectl's choice when -c is not given: the default-container annotation, else the first."""
    containers: list[str] = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if len(containers) <= 1:
        return None
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    container = annotations.get("kubectl.kubernetes.io/default-container") or containers[0]
    print(f'Defaulted container "{container}" out of: ' + ", ".join(containers), file=sys.stderr)
    return container
