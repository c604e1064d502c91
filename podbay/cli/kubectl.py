"""kubectl-style verbs over the API: apply, create -f, delete, exec, wait (get, describe and logs: reads.py)."""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from podbay.api import Namespace, Node, Pod
from podbay.api.apps import Deployment, ReplicaSet, ReplicationController
from podbay.api.batch import Job
from podbay.api.defaults import default_pod
from podbay.api.errors import AlreadyExists, NotFound
from podbay.api.formats import load_objects
from podbay.api.kinds import ALL_RESOURCES
from podbay.api.serialize import to_dict
from podbay.cli import reads
from podbay.cli.common import CLIError, run_with_client
from podbay.cli.execstream import run_exec, use_tty
from podbay.client import Client

KINDS: dict[str, type[Any]] = {alias: info.model for info in ALL_RESOURCES.values()
                          for alias in (info.name, info.kind.lower(), *info.short_names)}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apply", help="create or update objects from files (-f FILE|DIR|-)")
    p.add_argument("-f", "--filename", action="append", required=True)
    p.add_argument("--validate", choices=["strict", "false"], default="strict",
                   help="strict: unknown fields are errors (default); false: they are dropped")
    p.add_argument("-n", "--namespace")
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: apply(c, a, update=True)))

    reads.register_get(sub)
    reads.register_describe(sub)

    p = sub.add_parser("delete", help="delete pods by name or from files")
    p.add_argument("kind", nargs="?")
    p.add_argument("names", nargs="*")
    p.add_argument("-f", "--filename", action="append")
    p.add_argument("-n", "--namespace")
    p.add_argument("--grace-period", type=int)
    p.add_argument("--force", action="store_true")
    p.add_argument("--wait", default="true", choices=["true", "false"])
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: delete(c, a)))

    reads.register_logs(sub)

    p = sub.add_parser("exec", help="run a command in a container of a pod (-i/-t: interactively)")
    p.add_argument("pod")
    _exec_flags(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: exec_(c, a)))

    p = sub.add_parser("wait", help="wait for a pod condition or deletion")
    p.add_argument("target", help="pod/NAME")
    p.add_argument("--for", dest="condition", required=True, help="condition=Ready | delete")
    p.add_argument("--timeout", default="30s")
    p.add_argument("-n", "--namespace")
    p.set_defaults(func=lambda a: run_with_client(a, lambda c, s: wait(c, a)))


def read_files(names: list[str], strict: bool = True) -> list[Any]:
    objs: list[Any] = []
    for name in names:
        if name == "-":
            objs += load_objects(sys.stdin.read(), "<stdin>", strict=strict)
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        elif path.exists():
            files = [path]
        else:
            raise CLIError(f'the path "{name}" does not exist')
        for f in files:
            objs += load_objects(f.read_text(), str(f), strict=strict)
    return objs


def _kind_name(obj: Any) -> str:
    return type(obj).__name__.lower()


async def apply(client: Client, args: argparse.Namespace, update: bool) -> int:
    for obj in read_files(args.filename, strict=getattr(args, "validate", "strict") == "strict"):
        if args.namespace and not isinstance(obj, (Node, Namespace)) and obj.metadata.namespace is None:
            obj.metadata.namespace = args.namespace
        try:
            await client.create(obj)
            print(f"{_kind_name(obj)}/{obj.metadata.name} created")
            continue
        except AlreadyExists:
            if not update:
                raise
        current = await client.get(type(obj), obj.metadata.name, obj.metadata.namespace)
        wanted = current.model_copy(deep=True)
        if isinstance(obj, Pod):
            _keep_pull_policies(obj, current)
            wanted.spec = default_pod(obj).spec
            wanted.spec.node_name = current.spec.node_name
        elif isinstance(obj, (ReplicaSet, ReplicationController, Deployment, Job)):
            wanted.spec = obj.spec  # the server defaults it again
        wanted.metadata.labels = {**current.metadata.labels, **obj.metadata.labels}
        wanted.metadata.annotations = {**current.metadata.annotations, **obj.metadata.annotations}
        if to_dict(wanted) == to_dict(current):
            print(f"{_kind_name(obj)}/{obj.metadata.name} unchanged")
            continue
        await client.update(wanted)
        print(f"{_kind_name(obj)}/{obj.metadata.name} configured")
    return 0


def _keep_pull_policies(obj: Pod, current: Pod) -> None:
    """imagePullPolicy is defaulted from the image's tag when the pod is created and may not
    change after; a file that leaves it unset keeps the stored one, as kubectl apply's merge
    does, so that changing the image (1.35 -> latest) is not refused."""
    stored = {c.name: c.image_pull_policy for c in [*current.spec.init_containers, *current.spec.containers]}
    for c in [*obj.spec.init_containers, *obj.spec.containers]:
        if c.image_pull_policy is None and c.name in stored:
            c.image_pull_policy = stored[c.name]


async def delete(client: Client, args: argparse.Namespace) -> int:
    targets: list[tuple[type, str, str]] = []
    if args.filename:
        for obj in read_files(args.filename):
            targets.append((type(obj), obj.metadata.name, obj.metadata.namespace or args.namespace or "default"))
    elif args.kind:
        kind = KINDS.get(args.kind.split("/")[0])
        if kind is None:
            raise CLIError(f'the server doesn\'t have a resource type "{args.kind}"')
        names = list(args.names) + ([args.kind.split("/", 1)[1]] if "/" in args.kind else [])
        if not names:
            raise CLIError("resource(s) were provided, but no name was specified")
        targets += [(kind, n, args.namespace or "default") for n in names]
    else:
        raise CLIError("you must provide one or more resources by argument or filename")
    grace = 0 if args.force and args.grace_period is None else args.grace_period
    for kind, name, ns in targets:
        try:
            obj = await client.delete(kind, name, ns, grace_period_seconds=grace)
        except NotFound:
            print(f'Error from server (NotFound): {kind.__name__.lower()}s "{name}" not found', file=sys.stderr)
            return 1
        print(f'{kind.__name__.lower()} "{name}" {"force deleted" if args.force else "deleted"}')
        if args.wait == "true" and obj is not None and kind is Pod:
            await _wait_deleted(client, name, ns, None)
    return 0


async def _wait_deleted(client: Client, name: str, ns: str, timeout: float | None) -> bool:
    selector = f"metadata.name={name}"
    pods, rv = await client.list(Pod, ns, field_selector=selector)
    if not pods:
        return True

    async def gone() -> None:
        # The watch continues from the list, so a deletion in between is not missed.
        async for type_, _ in client.watch(Pod, ns, resource_version=rv, field_selector=selector):
            if type_ == "DELETED":
                return
    try:
        await asyncio.wait_for(gone(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


async def _default_container(client: Client, name: str, ns: str) -> str | None:
    return reads.default_container(await client.request("GET", Client.path(Pod, ns, name)))


def _exec_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--container")
    parser.add_argument("-n", "--namespace")
    parser.add_argument("-i", "--stdin", action="store_true", help="pass our stdin to the command")
    parser.add_argument("-t", "--tty", action="store_true", help="give the command a terminal (with -i)")


def exec_command(args: argparse.Namespace) -> list[str]:
    """The command after `--`; flags between the pod and `--` (`exec POD -c C -- CMD`, as kubectl
    allows) are applied to `args`. Without `--` everything after the pod is the command."""
    if "--" not in args.command:
        return list(args.command)
    split = args.command.index("--")
    if split:
        flags = argparse.ArgumentParser(prog="podbay exec", add_help=False)
        _exec_flags(flags)
        flags.parse_args(args.command[:split], namespace=args)
    command: list[str] = args.command[split + 1:]
    return command


async def exec_(client: Client, args: argparse.Namespace) -> int:
    command = exec_command(args)
    if not command:
        raise CLIError("you must specify at least one command for the container (podbay exec POD -- CMD)")
    name, ns = args.pod.split("/", 1)[-1], args.namespace or "default"
    container = args.container or await _default_container(client, name, ns)
    tty = use_tty(args.stdin, args.tty)
    if args.stdin or tty:
        return await run_exec(client, name, ns, command, container, stdin=args.stdin, tty=tty)
    code, out, err = await client.exec(name, ns, command, container=container)
    sys.stdout.buffer.write(out)
    sys.stderr.buffer.write(err)
    return code


def parse_duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * units[suffix]
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise CLIError(f'invalid duration "{text}"')


async def wait(client: Client, args: argparse.Namespace) -> int:
    kind, _, name = args.target.partition("/")
    if KINDS.get(kind) is not Pod or not name:
        raise CLIError("wait supports pod/NAME")
    ns = args.namespace or "default"
    timeout = parse_duration(args.timeout)
    if args.condition == "delete":
        if await _wait_deleted(client, name, ns, timeout):
            print(f"pod/{name} condition met")
            return 0
        raise CLIError(f"timed out waiting for the condition on pods/{name}")
    if not args.condition.startswith("condition="):
        raise CLIError('--for must be "delete" or "condition=NAME[=value]"')
    cond, _, want = args.condition[len("condition="):].partition("=")
    want = want or "True"

    def met(pod: Pod) -> bool:
        return any(c.type.lower() == cond.lower() and c.status.lower() == want.lower() for c in pod.status.conditions)

    async def watch() -> None:
        async for type_, pod in client.watch(Pod, ns, field_selector=f"metadata.name={name}"):
            if type_ == "DELETED":
                raise CLIError(f'pods "{name}" not found')
            if met(pod):
                return
    deadline = time.monotonic() + timeout
    pod = await client.get(Pod, name, ns)
    if not met(pod):
        try:
            await asyncio.wait_for(watch(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise CLIError(f"timed out waiting for the condition on pods/{name}") from None
    print(f"pod/{name} condition met")
    return 0
