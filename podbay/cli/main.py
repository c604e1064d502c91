"""The `podbay` command: one sub-command per verb, each in its own module.

A verb module exposes `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed args, returning the exit status).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from podbay.cli.settings import add_global_flags

# Verb modules, in the order `podbay --help` lists them.
VERB_MODULES: list[str] = [
    "podbay.cli.server",
    "podbay.cli.kubectl",
    "podbay.cli.hyper",
    "podbay.cli.images",
    "podbay.cli.validate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podbay",
        description="Run Kubernetes Pods on this machine, with real containers.",
    )
    add_global_flags(parser)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
