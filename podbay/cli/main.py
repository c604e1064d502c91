"""The `podbay` command: one sub-command per verb, each in its own module.

A verb module exposes `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed args, returning the exit status).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from podbay.cli.examples import EXAMPLES
from podbay.cli.settings import add_global_flags

# Verb modules, in the order `podbay --help` lists them.
VERB_MODULES: list[str] = [
    "podbay.cli.server",
    "podbay.cli.apiserver",
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
    _add_examples(sub)
    return parser


def verb_parsers(sub: argparse._SubParsersAction, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every verb's parser by its full name ("get", "image pull"), nested verbs included."""
    found: dict[str, argparse.ArgumentParser] = {}
    for name, parser in sub.choices.items():
        found[prefix + name] = parser
        for action in parser._subparsers._group_actions if parser._subparsers else []:
            found |= verb_parsers(action, f"{prefix}{name} ")
    return found


def _add_examples(sub: argparse._SubParsersAction) -> None:
    for name, parser in verb_parsers(sub).items():
        if name in EXAMPLES:
            parser.epilog = "examples:\n" + EXAMPLES[name]
            parser.formatter_class = argparse.RawDescriptionHelpFormatter


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
