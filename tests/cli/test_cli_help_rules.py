"""`podbay VERB --help` shows examples for every verb, and every example parses."""
from __future__ import annotations

import re
import shlex

import pytest

from podbay.cli.examples import EXAMPLES
from podbay.cli.main import build_parser, verb_parsers


def example_commands() -> list[str]:
    commands = []
    for text in EXAMPLES.values():
        for line in text.splitlines():
            for part in re.split(r"&&|\|", line.split("  #")[0]):
                words = part.replace("sudo ", "").split(">")[0].strip()
                if words.startswith("podbay "):
                    commands.append(words)
    return commands


def test_every_verb_has_examples() -> None:
    parser = build_parser()
    verbs = set(verb_parsers(parser._subparsers._group_actions[0]))
    assert verbs == set(EXAMPLES)
    assert all("examples:" in p.format_help() for p in verb_parsers(parser._subparsers._group_actions[0]).values())


@pytest.mark.parametrize("command", example_commands())
def test_every_example_parses(command: str) -> None:
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.func is not None


@pytest.mark.parametrize("argv, container, stdin, command", [
    (["exec", "web", "-c", "frontend", "--", "cat", "/x"], "frontend", False, ["cat", "/x"]),
    (["exec", "-c", "frontend", "web", "--", "ls", "-l"], "frontend", False, ["ls", "-l"]),
    (["exec", "web", "-i", "--", "cat"], None, True, ["cat"]),
    (["exec", "web", "--", "sh", "-c", "echo -c"], None, False, ["sh", "-c", "echo -c"]),
    (["exec", "web", "date"], None, False, ["date"]),
])
def test_exec_takes_flags_on_either_side_of_the_pod(argv, container, stdin, command) -> None:
    from podbay.cli.kubectl import exec_command

    args = build_parser().parse_args(argv)
    assert exec_command(args) == command
    assert (args.container, args.stdin) == (container, stdin)
