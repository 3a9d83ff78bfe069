"""Field access for EventFilter rules and expressions (issue 4).

A rule's `field` is compiled once into a `FieldSource` that yields the values it
selects from one delivery. JSONPaths made only of plain name and index segments
(`$.workflow_run.conclusion`, `$.pull_requests[0].number`) skip the general RFC 9535
engine and walk dicts and lists directly: they are what nearly every filter uses and the
engine's node objects cost several times more. The walk mirrors the engine's selectors
exactly (names select from objects only, indexes from arrays only, negative indexes
count from the end); the unit tests check the two agree.

`cel_body_paths` / `prune_body` serve CEL: handing the CEL runtime the whole payload
converts every value of it on every delivery (about 1 ms for a 10 KB GitHub event), so
an expression gets only the parts of `body` it can reach.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import jsonpath_rfc9535
from jsonpath_rfc9535.segments import JSONPathChildSegment
from jsonpath_rfc9535.selectors import IndexSelector, NameSelector

from hookline.api.common import compile_jsonpath

from .context import EventContext


class _Missing:
    """The value of a field that selects nothing (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class FieldError(Exception):
    """A field could not be evaluated on this payload (e.g. `$..x` nested too deep)."""


@dataclass(frozen=True, slots=True)
class FieldSource:
    """Where a rule's values come from.

    `one` is set for sources that select at most one value (it returns MISSING when
    there is none), so the common case avoids building a list; `many` works for every
    source. `textual` sources (headers, meta) only ever yield strings.
    """

    field: str
    textual: bool
    many: Callable[[EventContext], list[Any]]
    one: Callable[[EventContext], Any] | None = None


def simple_steps(query: jsonpath_rfc9535.JSONPathQuery) -> tuple[str | int, ...] | None:
    """The name/index steps of a singular query with plain segments, else None.

    Read from the parsed query, not the source text, so quoting and escapes in names
    (`$['a.b']`, `$["\\u00e9"]`) are the engine's business.
    """
    steps: list[str | int] = []
    for segment in query.segments:
        if type(segment) is not JSONPathChildSegment or len(segment.selectors) != 1:
            return None
        selector = segment.selectors[0]
        if type(selector) is NameSelector:
            steps.append(selector.name)
        elif type(selector) is IndexSelector:
            steps.append(selector.index)
        else:
            return None
    return tuple(steps)


def walk(value: Any, steps: tuple[str | int, ...]) -> Any:
    """Follow name/index steps the way RFC 9535 selectors do; MISSING if one fails."""
    for step in steps:
        if type(step) is str:
            if not isinstance(value, dict):
                return MISSING
            value = value.get(step, MISSING)
            if value is MISSING:
                return MISSING
        else:
            # A string is indexable in Python but is not an array in JSONPath.
            if not isinstance(value, list):
                return MISSING
            try:
                value = value[step]  # type: ignore[index]
            except IndexError:
                return MISSING
    return value


def _jsonpath_source(field: str) -> FieldSource:
    query = compile_jsonpath(field)
    steps = simple_steps(query)
    if steps is not None:
        fixed = steps

        def one(ctx: EventContext) -> Any:
            return walk(ctx.payload, fixed)

        def many_simple(ctx: EventContext) -> list[Any]:
            value = walk(ctx.payload, fixed)
            return [] if value is MISSING else [value]

        return FieldSource(field, textual=False, many=many_simple, one=one)

    def many(ctx: EventContext) -> list[Any]:
        try:
            return [node.value for node in query.finditer(ctx.payload)]
        except jsonpath_rfc9535.JSONPathError as exc:
            # A hostile payload can make `..` exceed the engine's recursion limit; the
            # caller turns this into "not matched" instead of a 500.
            raise FieldError(str(exc)) from None

    return FieldSource(field, textual=False, many=many)


def _header_source(field: str) -> FieldSource:
    name = field.removeprefix("header:")
    lowered = name.lower()

    def many(ctx: EventContext) -> list[Any]:
        headers = ctx.headers
        getall = getattr(headers, "getall", None)
        if getall is not None:  # multidict: case-insensitive already, keeps repeats
            return list(getall(name, ()))
        return [v for k, v in headers.items() if k.lower() == lowered]

    return FieldSource(field, textual=True, many=many)


def _event_type(ctx: EventContext) -> Any:
    return MISSING if ctx.event_type is None else ctx.event_type


def _source_ip(ctx: EventContext) -> Any:
    # "" is EventContext's "unknown" (e.g. a CLI test run), not an address.
    return ctx.source_ip or MISSING


def _single(one: Callable[[EventContext], Any]) -> Callable[[EventContext], list[Any]]:
    def many(ctx: EventContext) -> list[Any]:
        value = one(ctx)
        return [] if value is MISSING else [value]

    return many


def compile_field(field: str) -> FieldSource:
    """Compile a rule's field (already checked by the model's `check_field`)."""
    if field.startswith("$"):
        return _jsonpath_source(field)
    if field.startswith("header:"):
        return _header_source(field)
    if field == "meta:eventType":
        return FieldSource(field, textual=True, many=_single(_event_type), one=_event_type)
    if field == "meta:sourceIP":
        return FieldSource(field, textual=True, many=_single(_source_ip), one=_source_ip)
    raise ValueError(f"unknown field {field!r}")


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 date-time as an aware datetime; None when `text` is not one.

    Accepts what the model accepts for a rule's value (Python's ISO 8601 reader, with a
    `T`), plus RFC 3339's lower-case `t`/`z`. A time without an offset is read as UTC so
    that every comparison is between aware datetimes and never raises.
    """
    if len(text) > 64 or ("T" not in text and "t" not in text):
        return None
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- CEL: which parts of `body` an expression can reach --------------------------------

# A prefix trie of field names; WHOLE marks "keep this value entire".
Trie = dict[str, Any]
WHOLE: Final = True

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
    # Raw strings first: a backslash in them escapes nothing, so r'\' ends at its quote.
    | (?P<raw>(?:[rR][bB]?|[bB][rR])(?:'''.*?'''|\"\"\".*?\"\"\"|'[^'\n]*'|"[^"\n]*"))
    | (?P<string>[bB]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"
                   |'(?:\\.|[^\\'\n])*'|"(?:\\.|[^\\"\n])*"))
    | (?P<quoted>`[^`]*`)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>\d[\w.]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# Tokens after which a "." selects a field (rather than starting `.body`, CEL's
# root-scoped name for the variable).
_OPERAND_END = {"ident", "raw", "string", "quoted", "number", ")", "]", "}"}


def _tokens(expression: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup or "other"
        if kind == "space":
            continue
        text = match.group()
        out.append((text if kind == "other" else kind, text))
    return out


def cel_body_paths(expression: str) -> Trie | None:
    """The field paths of `body` the expression selects, or None if it may use all of it.

    Conservative by construction: every use of the identifier `body` must be followed by
    plain `.name` selections; the chain stops before a method/macro call (`.exists(`),
    an optional selection (`.?x`), an index (`[`) or anything else, and the value at
    the end of the chain is kept whole. A bare `body` (`size(body)`, `body["x"]`, a
    comprehension variable named `body`) keeps the whole payload. Extra paths only
    cost time, never change a result.
    """
    tokens = _tokens(expression)
    trie: Trie = {}
    for i, (kind, text) in enumerate(tokens):
        if kind != "ident" or text != "body":
            continue
        if i >= 1 and tokens[i - 1][0] == "." and i >= 2 and tokens[i - 2][0] in _OPERAND_END:
            continue  # `x.body`: a field of something else
        chain: list[str] = []
        j = i + 1
        while (
            j + 1 < len(tokens)
            and tokens[j][0] == "."
            and tokens[j + 1][0] == "ident"
            and not (j + 2 < len(tokens) and tokens[j + 2][0] == "(")
        ):
            chain.append(tokens[j + 1][1])
            j += 2
        if not chain:
            return None
        _add(trie, chain)
    return trie


def _add(trie: Trie, chain: Iterable[str]) -> None:
    *head, last = chain
    node = trie
    for name in head:
        child = node.get(name)
        if child is WHOLE:
            return  # a shorter path already keeps this subtree
        if child is None:
            child = node[name] = {}
        node = child
    node[last] = WHOLE


def prune_body(body: Any, trie: Trie) -> Any:
    """`body` reduced to the paths in `trie`; values that are not objects stay whole."""
    if not isinstance(body, dict):
        return body
    out: dict[str, Any] = {}
    for name, sub in trie.items():
        if name in body:
            value = body[name]
            out[name] = value if sub is WHOLE else prune_body(value, sub)
    return out
