"""`helm template` for charts/hookline, in Python (issue 14: run the operator through the
chart's settings).

There is no helm binary on these machines (no registry this project reaches ships one),
so this renders the chart with the subset of Go's text/template and Sprig that the chart
uses: actions with `{{-`/`-}}` trimming, comments, `if`/`else if`/`else`, `range`,
`with`, `define`/`include`, variables (`:=`, `=` and `$`), parenthesised pipelines, and
the functions in FUNCTIONS. Anything else is a `ChartError`, never a silent blank, so a
template change that this renderer does not understand fails the tests that use it
instead of testing something else. Values print as Helm prints them: numbers are
float64 once Helm has read values.yaml, so 1000000 prints `1e+06` (hence `| int` in
the templates where a number is quoted).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

CHART = ROOT / "charts" / "hookline"


class ChartError(Exception):
    """A template this renderer cannot render, or the chart's own `fail`."""


# -- lexing ---------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


@dataclass
class _Token:
    kind: str  # "text" | "action"
    value: str


def _lex(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if match.group(1):
            text = text.rstrip()
        if tokens and tokens[-1].kind == "trim-next":
            tokens.pop()
            text = text.lstrip()
        tokens.append(_Token("text", text))
        body = match.group(2).strip()
        if not body.startswith("/*"):
            tokens.append(_Token("action", body))
        if match.group(3):
            tokens.append(_Token("trim-next", ""))
        pos = match.end()
    text = source[pos:]
    if tokens and tokens[-1].kind == "trim-next":
        tokens.pop()
        text = text.lstrip()
    tokens.append(_Token("text", text))
    return [t for t in tokens if t.kind != "text" or t.value]


# -- parsing --------------------------------------------------------------------------


@dataclass
class _Node:
    kind: str  # text | output | if | range | with | assign
    value: str = ""
    branches: list[tuple[str, list[_Node]]] = field(default_factory=list)
    otherwise: list[_Node] = field(default_factory=list)


_KEYWORD = re.compile(r"^(if|else if|else|end|range|with|define)\b\s*(.*)$", re.S)


def _parse(tokens: list[_Token], defines: dict[str, list[_Node]]) -> list[_Node]:
    stream = iter(tokens)
    body, closer = _parse_block(stream, defines)
    if closer is not None:
        raise ChartError(f"unexpected {{{{ {closer} }}}}")
    return body


def _parse_block(
    stream: Iterator[_Token], defines: dict[str, list[_Node]]
) -> tuple[list[_Node], str | None]:
    nodes: list[_Node] = []
    for token in stream:
        if token.kind == "text":
            nodes.append(_Node("text", token.value))
            continue
        keyword = _KEYWORD.match(token.value)
        if keyword is None:
            nodes.append(_Node("output", token.value))
            continue
        word, rest = keyword.groups()
        if word in ("end", "else", "else if"):
            return nodes, token.value
        if word == "define":
            name = json.loads(rest)
            inner, closer = _parse_block(stream, defines)
            if closer != "end":
                raise ChartError(f"define {name}: {closer!r} instead of end")
            defines[name] = inner
            continue
        node = _Node(word)
        condition = rest
        while True:
            inner, closer = _parse_block(stream, defines)
            node.branches.append((condition, inner))
            if closer is None:
                raise ChartError(f"{word} {rest}: no end")
            if closer == "end":
                break
            if closer == "else":
                node.otherwise, closer = _parse_block(stream, defines)
                if closer != "end":
                    raise ChartError(f"{word} {rest}: {closer!r} after else")
                break
            condition = closer.removeprefix("else if").strip()
            if word != "if":
                raise ChartError(f"else if inside {word}")
        nodes.append(node)
    return nodes, None


# -- expressions ----------------------------------------------------------------------

_TERM = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<open>\() | (?P<close>\)) | (?P<pipe>\|)
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>\.(?:[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)?)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)


def _terms(text: str) -> list[tuple[str, str]]:
    terms: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None or match.end() == pos:
            raise ChartError(f"cannot read {text[pos:]!r} in {text!r}")
        kind = match.lastgroup
        assert kind is not None
        terms.append((kind, match.group(kind)))
        pos = match.end()
    return terms


class _Scope:
    def __init__(self, root: Any, parent: _Scope | None = None) -> None:
        self.vars: dict[str, Any] = {} if parent else {"$": root}
        self.parent = parent

    def get(self, name: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        raise ChartError(f"undefined variable {name}")

    def assign(self, name: str, value: Any) -> None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.vars:
                scope.vars[name] = value
                return
            scope = scope.parent
        raise ChartError(f"assignment to undeclared {name}")


def _lookup(value: Any, path: str, where: str) -> Any:
    for part in filter(None, path.split(".")):
        if value is None:
            raise ChartError(f"nil pointer evaluating {where}")
        if not isinstance(value, Mapping):
            raise ChartError(f"{where}: {part} of a {type(value).__name__}")
        value = value.get(part)
    return value


def truthy(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings/lists/maps are false."""
    return bool(value)


def go_number(value: float) -> str:
    """fmt.Sprint of a float64 (strconv.FormatFloat(f, 'g', -1, 64)): the shortest digits,
    with an exponent when it is below -4 or from 6 on (shortest precision counts as 6)."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    power = len(text) + exponent - 1
    minus = "-" if sign else ""
    if power < -4 or power >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    plain = repr(abs(float(value)))
    return minus + plain.removesuffix(".0")


def go_string(value: Any) -> str:
    """fmt.Sprint as text/template prints a value Helm read from YAML."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)  # an int64: what `int` and literals in a template give
    if isinstance(value, float):
        # Helm reads values through JSON: every number in .Values is a float64 (template()
        # turns them into floats), printed as fmt prints one.
        return go_number(value)
    if isinstance(value, str):
        return value
    raise ChartError(f"printing a {type(value).__name__} ({value!r}); use toYaml or toJson")


def _go_json(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _go_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_json(v) for v in value]
    return value


def to_json(value: Any) -> str:
    # encoding/json: sorted keys, no spaces, <>& escaped for HTML.
    text = json.dumps(_go_json(value), sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def to_yaml(value: Any) -> str:
    if value is None:
        return "null"
    return yaml.safe_dump(_go_json(value), sort_keys=True, default_flow_style=False).rstrip("\n")


def _indent(width: Any, text: Any) -> str:
    pad = " " * int(width)
    return "\n".join(pad + line for line in str(text).split("\n"))


def _fail(message: Any) -> str:
    raise ChartError(f"chart fail: {message}")


def _uniq(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _printf(fmt: str, *args: Any) -> str:
    parts = fmt.split("%s")
    if len(parts) - 1 != len(args) or "%" in "".join(parts):
        raise ChartError(f"printf {fmt!r}: only %s is supported")
    out = parts[0]
    for arg, part in zip(args, parts[1:], strict=True):
        out += go_string(arg) + part
    return out


def _default(fallback: Any, *given: Any) -> Any:
    return given[0] if given and truthy(given[0]) else fallback


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "quote": lambda *v: " ".join(json.dumps(go_string(x)) for x in v if x is not None),
    "toJson": to_json,
    "toYaml": to_yaml,
    "fromYaml": lambda text: yaml.safe_load(text) or {},
    "nindent": lambda width, text: "\n" + _indent(width, text),
    "indent": _indent,
    "join": lambda sep, items: sep.join(go_string(x) for x in (items or [])),
    "default": _default,
    "int": lambda v: int(float(v or 0)),
    "gt": lambda a, b: a > b,
    "not": lambda v: not truthy(v),
    "and": lambda *v: next((x for x in v if not truthy(x)), v[-1]),
    "or": lambda *v: next((x for x in v if truthy(x)), v[-1]),
    "printf": _printf,
    "trunc": lambda n, s: s[: int(n)],
    "trimSuffix": lambda suffix, s: s.removesuffix(suffix),
    "contains": lambda needle, s: needle in s,
    "uniq": _uniq,
    "append": lambda items, item: [*(items or []), item],
    "list": lambda *v: list(v),
    "fail": _fail,
}


# -- rendering ------------------------------------------------------------------------


class Renderer:
    def __init__(self, defines: dict[str, list[_Node]], root: Mapping[str, Any]) -> None:
        self.defines = defines
        self.root = root

    def render(self, nodes: list[_Node], dot: Any, scope: _Scope) -> str:
        out: list[str] = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.value)
            elif node.kind == "output":
                assigned = re.match(r"^(\$[A-Za-z0-9_]+)\s*(:?=)\s*(.*)$", node.value, re.S)
                if assigned:
                    name, op, expr = assigned.groups()
                    value = self.pipeline(expr, dot, scope)
                    if op == ":=":
                        scope.vars[name] = value
                    else:
                        scope.assign(name, value)
                else:
                    out.append(go_string(self.pipeline(node.value, dot, scope)))
            elif node.kind == "if":
                for condition, body in node.branches:
                    if truthy(self.pipeline(condition, dot, scope)):
                        out.append(self.render(body, dot, _Scope(self.root, scope)))
                        break
                else:
                    out.append(self.render(node.otherwise, dot, _Scope(self.root, scope)))
            elif node.kind == "with":
                (expr, body) = node.branches[0]
                value = self.pipeline(expr, dot, scope)
                chosen, new_dot = (body, value) if truthy(value) else (node.otherwise, dot)
                out.append(self.render(chosen, new_dot, _Scope(self.root, scope)))
            elif node.kind == "range":
                (expr, body) = node.branches[0]
                items = self.pipeline(expr, dot, scope) or []
                if isinstance(items, Mapping):
                    items = [items[k] for k in sorted(items)]
                if not items:
                    out.append(self.render(node.otherwise, dot, _Scope(self.root, scope)))
                for item in items:
                    out.append(self.render(body, item, _Scope(self.root, scope)))
        return "".join(out)

    def include(self, name: str, dot: Any) -> str:
        if name not in self.defines:
            raise ChartError(f"include of undefined template {name!r}")
        return self.render(self.defines[name], dot, _Scope(self.root))

    def pipeline(self, expr: str, dot: Any, scope: _Scope) -> Any:
        terms = _terms(expr)
        value, rest = self._pipeline(terms, dot, scope)
        if rest:
            raise ChartError(f"unexpected {rest[0][1]!r} in {expr!r}")
        return value

    def _pipeline(
        self, terms: list[tuple[str, str]], dot: Any, scope: _Scope
    ) -> tuple[Any, list[tuple[str, str]]]:
        value: Any = None
        piped = False
        while True:
            command: list[tuple[str, Any]] = []
            while terms and terms[0][0] not in ("pipe", "close"):
                kind, text = terms.pop(0)
                if kind == "open":
                    inner, terms = self._pipeline(terms, dot, scope)
                    if not terms or terms[0][0] != "close":
                        raise ChartError("unbalanced parenthesis")
                    terms.pop(0)
                    command.append(("value", inner))
                else:
                    command.append((kind, text))
            value = self._command(command, dot, scope, value, piped)
            if terms and terms[0][0] == "pipe":
                terms.pop(0)
                piped = True
                continue
            return value, terms

    def _command(
        self, command: list[tuple[str, Any]], dot: Any, scope: _Scope, piped: Any, is_piped: bool
    ) -> Any:
        if not command:
            raise ChartError("empty command")
        kind, text = command[0]
        if kind == "word" and text not in ("true", "false", "nil"):
            args = [self._operand(k, t, dot, scope) for k, t in command[1:]]
            if is_piped:
                args.append(piped)
            if text == "include":
                return self.include(args[0], args[1])
            if text not in FUNCTIONS:
                raise ChartError(f"function {text!r} is not supported by tests/support/chart.py")
            return FUNCTIONS[text](*args)
        if len(command) > 1 or is_piped:
            raise ChartError(f"{text!r} is not a function")
        return self._operand(kind, text, dot, scope)

    def _operand(self, kind: str, text: Any, dot: Any, scope: _Scope) -> Any:
        if kind == "value":
            return text
        if kind == "str":
            return json.loads(text)
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "field":
            return _lookup(dot, text, text)
        if kind == "var":
            name, _, path = text.partition(".")
            return _lookup(scope.get(name), path, text)
        if kind == "word":
            return {"true": True, "false": False, "nil": None}.get(text)
        raise ChartError(f"unexpected {text!r}")


def as_json_numbers(value: Any) -> Any:
    """Values as Helm holds them after reading YAML through JSON: numbers are float64."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return {k: as_json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json_numbers(v) for v in value]
    return value


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of --set/-f values over values.yaml: maps merge, others replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def template(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "hookline",
    namespace: str = "hookline",
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    """The objects `helm template <release> <chart> -n <namespace> --set ...` renders
    (each template in file order; NOTES.txt and helpers are not objects)."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    root = {
        "Values": as_json_numbers(merge(defaults, values or {})),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {
            "Name": meta["name"],
            "Version": meta["version"],
            "AppVersion": meta.get("appVersion", ""),
        },
    }
    defines: dict[str, list[_Node]] = {}
    parsed: dict[str, list[_Node]] = {}
    for path in sorted((chart / "templates").iterdir()):
        nodes = _parse(_lex(path.read_text()), defines)
        if path.suffix == ".yaml":
            parsed[path.name] = nodes
    renderer = Renderer(defines, root)
    objects: list[dict[str, Any]] = []
    for name, nodes in parsed.items():
        text = renderer.render(nodes, root, _Scope(root))
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            raise ChartError(f"{name} renders invalid YAML: {e}\n{text}") from e
        objects.extend(doc for doc in docs if doc)
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    if len(found) != 1:
        raise ChartError(f"{len(found)} {kind} objects named {name!r} rendered")
    return found[0]
