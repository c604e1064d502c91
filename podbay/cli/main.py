"""The `podbay` command: one sub-command per verb, each in its own module.

A verb module exposes `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed args, returning the exit status).

The read-only verbs (get, describe, logs) are parsed by a command line that has only them, so
that they start without importing every other verb's module (the server's, the runtime's):
the same parsers, the same global flags; anything that command line cannot parse is parsed
again by the whole one, whose messages then are the user's.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

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


# The verbs the read-only command line has, and the module that registers them.
READ_VERBS = frozenset({"get", "describe", "logs"})
READ_MODULE = "podbay.cli.reads"


class _Unparsed(Exception):
    """The read-only command line could not parse the arguments."""


class _ReadOnlyParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Unparsed(message)


def build_parser(modules: list[str] | None = None,
                 parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = parser_class(
        prog="podbay",
        description="Run Kubernetes Pods on this machine, with real containers.",
    )
    add_global_flags(parser)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES if modules is None else modules:
        importlib.import_module(name).register(sub)
    _add_examples(sub)
    return parser


def verb_of(argv: list[str]) -> str | None:
    """The verb of a command line: the first word that is not a global flag or its value (every
    global flag takes one); None when help is asked for first."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return arg
        if arg in ("-h", "--help", "--"):
            return None
        i += 1 if "=" in arg else 2
    return None


def parse_args(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    if verb_of(argv) in READ_VERBS:
        parser = build_parser([READ_MODULE], _ReadOnlyParser)
        try:
            return parser, parser.parse_args(argv)
        except _Unparsed:
            pass
    parser = build_parser()
    return parser, parser.parse_args(argv)


def verb_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every verb's parser by its full name ("get", "image pull"), nested verbs included."""
    found: dict[str, argparse.ArgumentParser] = {}
    for name, parser in sub.choices.items():
        found[prefix + name] = parser
        for action in parser._subparsers._group_actions if parser._subparsers else []:
            if isinstance(action, argparse._SubParsersAction):  # the group holds only these
                found |= verb_parsers(action, f"{prefix}{name} ")
    return found


def _add_examples(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, parser in verb_parsers(sub).items():
        if name in EXAMPLES:
            parser.epilog = "examples:\n" + EXAMPLES[name]
            parser.formatter_class = argparse.RawDescriptionHelpFormatter


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
