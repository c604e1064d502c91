"""`podbay validate FILE...`: decode, convert, default and validate, as the API server would
on create, and print the resulting pods (or every error, with exit status 1)."""
from __future__ import annotations

import argparse
import sys

from podbay.api import Pod
from podbay.api.defaults import default_pod
from podbay.api.errors import Invalid
from podbay.api.formats import dump_objects
from podbay.api.support import unsupported_fields
from podbay.api.validation import validate_pod
from podbay.cli.common import CLIError
from podbay.cli.kubectl import read_files


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check pod files (v1 YAML/JSON, v1beta1, Hyper pod files) without a server")
    p.add_argument("files", nargs="+", help="files, directories or - for stdin")
    p.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    p.add_argument("--validate", choices=["strict", "false"], default="strict",
                   help="strict: unknown fields are errors (default); false: they are dropped")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        objs = read_files(args.files, strict=args.validate == "strict")
    except (Invalid, CLIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = False
    valid = []
    for obj in objs:
        if not isinstance(obj, Pod):
            valid.append(obj)
            continue
        pod = default_pod(obj)
        errors = validate_pod(pod)
        if errors:
            failed = True
            print(f'The Pod "{obj.metadata.name}" is invalid:', file=sys.stderr)
            for e in errors:
                print(f"* {e}", file=sys.stderr)
        else:
            valid.append(pod)
            unsupported = unsupported_fields(pod)
            if unsupported:
                print(f"Warning: pod/{pod.metadata.name}: podbay does not implement these fields yet and runs "
                      f"the pod without them: {', '.join(unsupported)}", file=sys.stderr)
    if valid:
        print(dump_objects(valid, args.output), end="")
    return 1 if failed else 0
