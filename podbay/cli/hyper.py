"""HyperContainer's pod verbs on the same Pod objects: create -p, start, stop, rm, run, replace.

A Created pod carries the annotation `podbay.io/run-state: Created`: it is
stored, scheduled, its images pulled and volumes allocated, and nothing runs.
"""
from __future__ import annotations

import argparse
import re
import secrets
from typing import Any

from podbay.api import Container, ObjectMeta, Pod, PodSpec
from podbay.api.errors import Conflict
from podbay.api.wellknown import RUN_STATE_ANNOTATION, SANDBOX_FROM_ANNOTATION
from podbay.cli.common import CLIError, run_with_client
from podbay.cli.kubectl import _wait_deleted, read_files
from podbay.client import Client

RUN_STATE = RUN_STATE_ANNOTATION
SANDBOX_FROM = SANDBOX_FROM_ANNOTATION


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("create", help="store pods (Created, nothing runs) from -p FILE, or objects from -f FILE")
    p.add_argument("-p", "--pod", dest="podfile", help="a v1 Pod YAML/JSON or a HyperContainer pod file")
    p.add_argument("-f", "--filename", action="append", help="create objects, as kubectl create -f")
    p.add_argument("-n", "--namespace")
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: create(c, a)))

    p = sub.add_parser("start", help="start Created pods")
    p.add_argument("pods", nargs="+")
    p.add_argument("-n", "--namespace")
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: set_state(c, a, "Running")))

    p = sub.add_parser("stop", help="stop pods: containers stopped, sandbox torn down, storage kept (Created)")
    p.add_argument("pods", nargs="+")
    p.add_argument("-n", "--namespace")
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: set_state(c, a, "Created")))

    p = sub.add_parser("rm", help="remove pods (stopping them first) and their storage")
    p.add_argument("pods", nargs="+")
    p.add_argument("-n", "--namespace")
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: remove(c, a)))

    p = sub.add_parser("run", help="create and start a pod from -p FILE, or from IMAGE [COMMAND...]")
    p.add_argument("-p", "--pod", dest="podfile")
    p.add_argument("--name")
    p.add_argument("-n", "--namespace")
    p.add_argument("--runtime-class", help="the RuntimeClass the pods run with (spec.runtimeClassName), e.g. gvisor")
    p.add_argument("image", nargs="?")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: run(c, a)))

    p = sub.add_parser("replace", help="hand the running pod OLD's sandbox to the Created pod NEW")
    p.add_argument("-o", "--old", required=True)
    p.add_argument("-n", "--new", required=True)
    p.add_argument("--namespace", default="default")
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: replace(c, a)))


def _pods_from(path: str, namespace: str | None) -> list[Pod]:
    pods = [o for o in read_files([path]) if isinstance(o, Pod)]
    if not pods:
        raise CLIError(f"{path}: no pod in it")
    for p in pods:
        if namespace and not p.metadata.namespace:
            p.metadata.namespace = namespace
    return pods


async def create(client: Client, args: argparse.Namespace) -> int:
    if args.filename:
        from podbay.cli.kubectl import apply
        return await apply(client, args, update=False)
    if not args.podfile:
        raise CLIError("create needs -p FILE (a pod) or -f FILE (objects)")
    for pod in _pods_from(args.podfile, args.namespace):
        pod.metadata.annotations[RUN_STATE] = "Created"
        created = await client.create(pod)
        print(f"pod/{created.metadata.name} created")
    return 0


async def _update_pod(client: Client, name: str, namespace: str, change: Any) -> Pod:
    """Read, change, write with the resourceVersion precondition; retried on conflict."""
    for _ in range(10):
        pod = await client.get(Pod, name, namespace)
        change(pod)
        try:
            return await client.update(pod)
        except Conflict:
            continue
    raise CLIError(f"pod/{name}: kept changing under us; try again")


async def set_state(client: Client, args: argparse.Namespace, state: str) -> int:
    ns = args.namespace or "default"
    for name in args.pods:
        def change(pod: Pod) -> None:
            pod.metadata.annotations[RUN_STATE] = state
            pod.metadata.annotations.pop(SANDBOX_FROM, None)
        await _update_pod(client, name, ns, change)
        print(f"pod/{name} {'started' if state == 'Running' else 'stopped'}")
    return 0


async def remove(client: Client, args: argparse.Namespace) -> int:
    ns = args.namespace or "default"
    for name in args.pods:
        await client.delete(Pod, name, ns)
        await _wait_deleted(client, name, ns, None)
        print(f"pod/{name} removed")
    return 0


_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


async def run(client: Client, args: argparse.Namespace) -> int:
    if args.podfile:
        pods = _pods_from(args.podfile, args.namespace)
    elif args.image:
        base = _NAME_CHARS.sub("-", args.image.rsplit("/", 1)[-1].split(":")[0].split("@")[0].lower()).strip("-")
        name = args.name or f"{base or 'pod'}-{secrets.token_hex(3)}"
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        container = Container(name=base or "main", image=args.image, command=list(command))
        pods = [Pod(metadata=ObjectMeta(name=name, namespace=args.namespace),
                    spec=PodSpec(containers=[container], restart_policy="Never"))]
    else:
        raise CLIError("run needs -p FILE or IMAGE [COMMAND...]")
    for pod in pods:
        if args.runtime_class:
            pod.spec.runtime_class_name = args.runtime_class
        created = await client.create(pod)
        print(f"pod/{created.metadata.name} created")
    return 0


async def replace(client: Client, args: argparse.Namespace) -> int:
    ns = args.namespace
    old = await client.get(Pod, args.old, ns)
    new = await client.get(Pod, args.new, ns)
    if old.metadata.annotations.get(RUN_STATE) == "Created" or old.status.phase != "Running":
        raise CLIError(f"pod/{args.old} is not running: replace hands a running pod's sandbox over")
    if new.metadata.annotations.get(RUN_STATE) != "Created":
        raise CLIError(f"pod/{args.new} is not Created: create it with `podbay create -p FILE` first")
    if old.spec.node_name != new.spec.node_name:
        raise CLIError(f"pod/{args.old} and pod/{args.new} are on different nodes")
    if (old.spec.runtime_class_name or "") != (new.spec.runtime_class_name or ""):
        # A sandbox belongs to its handler (a gVisor kernel, or host namespaces under crun).
        raise CLIError(f"pod/{args.old} runs RuntimeClass {old.spec.runtime_class_name or '(default)'} and "
                       f"pod/{args.new} asks for {new.spec.runtime_class_name or '(default)'}: a sandbox "
                       "changes hands only within one RuntimeClass")

    def change(pod: Pod) -> None:
        pod.metadata.annotations[RUN_STATE] = "Running"
        pod.metadata.annotations[SANDBOX_FROM] = args.old
    await _update_pod(client, args.new, ns, change)
    print(f"pod/{args.new} replaces pod/{args.old}")
    return 0
