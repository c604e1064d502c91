"""kubectl's JSONPath templates (client-go util/jsonpath), the subset its printing flags use:
text with `{...}` actions; in them `$`/`@`, `.field`, `['field']`, `[n]`, `[a:b]`, `[*]`,
filters `[?(@.path OP literal)]` (==, !=, <, <=, >, >=, or existence), `range ... {end}`,
and quoted literals ("\\n"). As `kubectl -o jsonpath`, missing keys print nothing; an
action's several results are separated by spaces; strings print raw, other values as JSON.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

class JSONPathError(ValueError):
    pass


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Expr:
    steps: tuple[Any, ...]  # ("field", name) | ("index", slice|int) | ("all",) | ("filter", path, op, value)
    literal: str | None = None
    from_root: bool = False  # `$`: the whole object, also inside a range


@dataclass(frozen=True)
class _Range:
    expr: _Expr
    body: tuple[Any, ...]


_FILTER = re.compile(r"^\?\(\s*@((?:\.[\w-]+|\[[^\]]*\])*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def _split_brackets(text: str) -> list[str]:
    """The steps of a path: `.a`, `[...]` (brackets may hold quotes and nested parentheses)."""
    steps, i = [], 0
    while i < len(text):
        if text[i] == ".":
            j = i + 1
            while j < len(text) and text[j] not in ".[":
                j += 1
            if j == i + 1:
                raise JSONPathError(f"unrecognized identifier in {text!r}")
            steps.append(text[i:j])
            i = j
        elif text[i] == "[":
            depth, j, quote = 0, i, ""
            while j < len(text):
                ch = text[j]
                if quote:
                    quote = "" if ch == quote else quote
                elif ch in "'\"":
                    quote = ch
                elif ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(text):
                raise JSONPathError(f"unclosed array expect ] in {text!r}")
            steps.append(text[i:j + 1])
            i = j + 1
        else:
            raise JSONPathError(f"unrecognized character in action: {text[i]!r}")
    return steps


def _literal(text: str) -> Any:
    if text in ("true", "false"):  # JSON's booleans, as kubectl's filters write them
        return text == "true"
    import ast  # only filters have literals; the command line's start skips the module
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise JSONPathError(f"invalid literal {text}") from None


def _parse_steps(path: str) -> tuple[Any, ...]:
    steps: list[Any] = []
    for raw in _split_brackets(path):
        if raw.startswith("."):
            steps.append(("field", raw[1:]))
            continue
        inner = raw[1:-1].strip()
        if inner == "*":
            steps.append(("all",))
        elif inner.startswith("?"):
            m = _FILTER.match(inner)
            if m is None:
                raise JSONPathError(f"unsupported filter {raw}")
            sub = _parse_steps(m.group(1)) if m.group(1) else ()
            steps.append(("filter", sub, m.group(2), _literal(m.group(3)) if m.group(2) else None))
        elif inner[:1] in "'\"":
            steps.append(("field", _literal(inner)))
        elif ":" in inner:
            parts = [int(p) if p.strip() else None for p in inner.split(":")]
            steps.append(("index", slice(*parts)))
        else:
            try:
                steps.append(("index", int(inner)))
            except ValueError:
                raise JSONPathError(f"invalid array index {inner}") from None
    return tuple(steps)


def _parse_expr(text: str) -> _Expr:
    text = text.strip()
    if text[:1] in "'\"":
        return _Expr((), literal=str(_literal(text)))
    from_root = text.startswith("$")
    if text.startswith(("$", "@")):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        text = "." + text  # kubectl accepts `{metadata.name}` too
    return _Expr(_parse_steps(text), from_root=from_root)


def parse(template: str) -> tuple[Any, ...]:
    """The template's nodes: text, expressions and ranges (nested until their `{end}`)."""
    stack: list[tuple[_Expr | None, list[Any]]] = [(None, [])]
    pos = 0
    for m in re.finditer(r"\{((?:[^{}\"']|\"(?:\\.|[^\"\\])*\"|'[^']*')*)\}", template):
        if m.start() > pos:
            stack[-1][1].append(_Text(template[pos:m.start()]))
        pos = m.end()
        action = m.group(1).strip()
        if action.startswith("range ") or action == "range":
            stack.append((_parse_expr(action[len("range"):]), []))
        elif action == "end":
            if len(stack) == 1:
                raise JSONPathError("not in range, nothing to end")
            expr, body = stack.pop()
            assert expr is not None
            stack[-1][1].append(_Range(expr, tuple(body)))
        else:
            stack[-1][1].append(_parse_expr(action))
    if "{" in template[pos:] or "}" in template[pos:]:
        raise JSONPathError(f"unclosed action in {template!r}")
    if pos < len(template):
        stack[-1][1].append(_Text(template[pos:]))
    if len(stack) > 1:
        raise JSONPathError("range without end")
    return tuple(stack[0][1])


def _compare(value: Any, op: str, literal: Any) -> bool:
    if isinstance(literal, (int, float)) and not isinstance(value, (int, float)):
        return op == "!="
    if op == "==":
        return bool(value == literal)
    if op == "!=":
        return bool(value != literal)
    try:
        return bool({"<": value < literal, "<=": value <= literal, ">": value > literal, ">=": value >= literal}[op])
    except TypeError:  # e.g. a string against a number: not matched, as kubectl's filter
        return False


def _walk(values: list[Any], steps: tuple[Any, ...]) -> list[Any]:
    for step in steps:
        out: list[Any] = []
        for v in values:
            kind = step[0]
            if kind == "field":
                if isinstance(v, dict) and step[1] in v:
                    out.append(v[step[1]])
            elif kind == "all":
                out.extend(v.values() if isinstance(v, dict) else v if isinstance(v, list) else [])
            elif kind == "index" and isinstance(v, list):
                if isinstance(step[1], slice):
                    out.extend(v[step[1]])
                elif -len(v) <= step[1] < len(v):
                    out.append(v[step[1]])
            elif kind == "filter" and isinstance(v, list):
                for item in v:
                    found = _walk([item], step[1])
                    if step[2] is None:
                        if found:
                            out.append(item)
                    elif found and _compare(found[0], step[2], step[3]):
                        out.append(item)
        values = out
    return values


def find(obj: Any, expr: str) -> list[Any]:
    """The values one expression (`.a.b`, `{.a.b}`) selects in `obj`."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    parsed = _parse_expr(expr)
    return [parsed.literal] if parsed.literal is not None else _walk([obj], parsed.steps)


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _render(nodes: tuple[Any, ...], current: Any, root: Any) -> str:
    out = []
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Expr):
            if node.literal is not None:
                out.append(node.literal)
            else:
                start = root if node.from_root else current
                out.append(" ".join(format_value(v) for v in _walk([start], node.steps)))
        else:
            for item in _walk([root if node.expr.from_root else current], node.expr.steps):
                out.append(_render(node.body, item, root))
    return "".join(out)


def render(template: str, obj: Any) -> str:
    """The template executed on `obj` (a dict as the API serves it)."""
    return _render(parse(template), obj, obj)
