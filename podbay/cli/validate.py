"""`podbay validate FILE...`: decode, default and validate, as the API server would on create."""
from __future__ import annotations

import argparse
import sys

from podbay.api import Pod
from podbay.api.defaults import default_pod
from podbay.api.errors import Invalid
from podbay.api.validation import validate_pod
from podbay.cli.common import CLIError
from podbay.cli.kubectl import read_files


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check pod files (v1 YAML/JSON, v1beta1, Hyper pod files) without a server")
    p.add_argument("files", nargs="+", help="files, directories or - for stdin")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        objs = read_files(args.files)
    except (Invalid, CLIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = False
    for obj in objs:
        if not isinstance(obj, Pod):
            print(f"{type(obj).__name__.lower()}/{obj.metadata.name} valid")
            continue
        errors = validate_pod(default_pod(obj))
        if errors:
            failed = True
            print(f'The Pod "{obj.metadata.name}" is invalid:', file=sys.stderr)
            for e in errors:
                print(f"* {e}", file=sys.stderr)
        else:
            print(f"pod/{obj.metadata.name} valid")
    return 1 if failed else 0
