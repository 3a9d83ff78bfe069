"""The EventFilter engine: compile a filter once, evaluate it per delivery (issue 4).

`compile_filter` turns an EventFilter into a tree of small objects whose `test`
attributes are plain closures specialised for one field source and one operator, with
everything that can be prepared in advance prepared (JSONPaths, RE2 regexes, the CEL
program, times, `in` sets). `evaluate` only walks that tree; the words explaining the
outcome are built afterwards, for the one part that decided.

How values compare is documented in docs/filters.md; in short: JSON types strictly,
header and meta values as text, several selected values match a positive operator if
any of them does, and every negative operator is exactly NOT its positive twin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import cel
import re2

from hookline.api.common import RE2_OPTIONS
from hookline.api.eventfilter import EventFilter, Operator, Rule

from .context import EventContext
from .fieldpath import (
    MISSING,
    FieldError,
    FieldSource,
    cel_body_paths,
    compile_field,
    parse_time,
    prune_body,
)

__all__ = ["CompiledFilter", "FilterResult", "compile_filter"]

Test = Callable[[EventContext], bool]
Predicate = Callable[[Any], bool]

SHOWN_CHARS: Final = 100  # a value shown in a detail is cut here
_MAX_NUMBER_TEXT: Final = 100  # longer header text is not a number worth parsing

_NEGATIONS: Final = {
    Operator.NOT_EQUALS: Operator.EQUALS,
    Operator.NOT_CONTAINS: Operator.CONTAINS,
    Operator.NOT_IN: Operator.IN,
}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class FilterResult:
    matched: bool
    # The part of the spec that decided, as a path: on no match what failed ("rules[2]",
    # "rules[0].any[1]", "rules" when no rule of `match: any` matched, "expression"); on
    # a match the rule that satisfied `match: any`, or "" when everything had to pass.
    decided_by: str
    detail: str


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _is_number(value: Any) -> bool:
    # bool is a subclass of int in Python but not a number in JSON.
    return type(value) is int or type(value) is float


def _as_text(value: Any) -> str:
    """A rule value as header/meta text: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _text_number(text: str) -> int | float | None:
    """A header/meta string read as a JSON number (only for greater_than/less_than)."""
    match = _JSON_NUMBER.fullmatch(text) if len(text) <= _MAX_NUMBER_TEXT else None
    if match is None:
        return None
    return float(text) if match.group(1) or match.group(2) else int(text)


# --- regex ---------------------------------------------------------------------------


def _search_options() -> Any:
    options = re2.Options()
    for name in re2.Options.NAMES:
        setattr(options, name, getattr(RE2_OPTIONS, name))
    # A rule only asks "is there a match": without capture groups RE2 can answer with
    # its DFA alone instead of tracking submatches.
    options.never_capture = True
    return options


_SEARCH_OPTIONS = _search_options()
_UNANCHORED = re2._Anchor.UNANCHORED if hasattr(re2, "_Anchor") else None


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        # json.loads lets lone surrogates through ("\ud800") and aiohttp decodes header
        # bytes with surrogateescape; encode them anyway rather than fail the request.
        return text.encode("utf-8", "surrogatepass")


def regex_tester(pattern: str) -> Callable[[str], bool]:
    """`re2.search(pattern, text) is not None`, for a pattern the model has checked.

    The google-re2 wrapper's search() builds a Match with decoded offsets in Python,
    which costs several microseconds per call; when the wrapper exposes its pybind
    RE2 object (checked here, so an upgrade that hides it only costs speed) the match
    is asked for directly. The tests compare both paths with search().
    """
    compiled = re2.compile(pattern, options=_SEARCH_OPTIONS)
    native = getattr(getattr(compiled, "_regexp", None), "Match", None)
    if native is None or _UNANCHORED is None:
        return lambda text: compiled.search(_utf8(text)) is not None
    anchor = _UNANCHORED

    def test(text: str) -> bool:
        data = _utf8(text)
        return bool(native(anchor, data, 0, len(data))[0][0] >= 0)

    return test


# --- predicates on one selected value --------------------------------------------------


def _equals(value: Any, textual: bool) -> Predicate:
    if textual:
        text = _as_text(value)
        return lambda v: v == text
    if isinstance(value, str):
        return lambda v: type(v) is str and v == value
    if _is_number(value):
        return lambda v: _is_number(v) and v == value
    return lambda v: v is value  # True, False, None are singletons


def _contains(value: Any, textual: bool) -> Predicate:
    if textual:
        text = _as_text(value)
        return lambda v: text in v
    element = _equals(value, textual=False)
    is_str = isinstance(value, str)

    def contains(v: Any) -> bool:
        if type(v) is str or type(v) is dict:  # substring / key presence
            return is_str and value in v
        if type(v) is list:
            return any(element(e) for e in v)
        return False

    return contains


def _in(values: Sequence[Any], textual: bool) -> Predicate:
    if textual:
        texts = frozenset(_as_text(v) for v in values)
        return lambda v: v in texts
    # One set per JSON type: in a single set True and 1 would be the same member.
    strings = frozenset(v for v in values if isinstance(v, str))
    numbers = frozenset(v for v in values if _is_number(v))
    booleans = frozenset(v for v in values if isinstance(v, bool))
    null = any(v is None for v in values)

    def member(v: Any) -> bool:
        kind = type(v)
        if kind is str:
            return v in strings
        if kind is int or kind is float:
            return v in numbers
        if kind is bool:
            return v in booleans
        return v is None and null

    return member


def _order(value: Any, textual: bool, greater: bool) -> Predicate:
    """greater_than / less_than: numbers with numbers, times with times, else false."""
    moment = parse_time(value) if isinstance(value, str) else None
    read: Callable[[Any], Any]
    bound: Any
    if moment is not None:
        read, bound = (lambda v: parse_time(v) if type(v) is str else None), moment
    elif textual:
        read, bound = _text_number, value
    else:
        read, bound = (lambda v: v if _is_number(v) else None), value
    if greater:
        return lambda v: (r := read(v)) is not None and r > bound
    return lambda v: (r := read(v)) is not None and r < bound


def _predicate(operator: Operator, value: Any, textual: bool) -> Predicate:
    """The positive operators; negatives and exists are handled by the caller."""
    if operator is Operator.EQUALS:
        return _equals(value, textual)
    if operator is Operator.CONTAINS:
        return _contains(value, textual)
    if operator is Operator.IN:
        return _in(value, textual)
    if operator is Operator.STARTS_WITH:
        return lambda v: type(v) is str and v.startswith(value)
    if operator is Operator.ENDS_WITH:
        return lambda v: type(v) is str and v.endswith(value)
    if operator is Operator.REGEX_MATCH:
        search = regex_tester(value)  # RE2: linear in the input, cannot hang
        return lambda v: type(v) is str and search(v)
    if operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
        return _order(value, textual, greater=operator is Operator.GREATER_THAN)
    raise ValueError(f"operator {operator} has no predicate")


# --- the rule tree ---------------------------------------------------------------------


class _RuleError(Exception):
    """A rule's field could not be evaluated; the filter does not match (fails closed)."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(detail)
        self.path = path
        self.detail = detail


class _Leaf:
    """One `{field, operator, value}` rule."""

    __slots__ = ("label", "path", "source", "test")

    def __init__(self, rule: Rule, path: str) -> None:
        assert rule.field is not None and rule.operator is not None  # the model's _one_form
        self.path = path
        self.source = source = compile_field(rule.field)
        operator, value = rule.operator, rule.value
        if operator is Operator.EXISTS:
            self.label = f"{rule.field} {'does not exist' if value is False else 'exists'}"
            predicate: Predicate = lambda v: True  # noqa: E731 - any selected value will do
            negate = value is False
        else:
            self.label = f"{rule.field} {operator.value} {_show(value)}"
            negate = operator in _NEGATIONS
            predicate = _predicate(_NEGATIONS.get(operator, operator), value, source.textual)
        test = _any_value(source, predicate)
        if negate:
            positive = test
            test = lambda ctx: not positive(ctx)  # noqa: E731
        if source.one is None and not source.textual:  # the RFC 9535 engine can raise
            test = _guarded(test, path, rule.field)
        self.test: Test = test

    def explain(self, ctx: EventContext, outcome: bool) -> tuple[str, str]:
        try:
            values = self.source.many(ctx)
        except FieldError as exc:
            return self.path, f"{self.source.field} cannot be evaluated: {exc}"
        if not values:
            got = "field is missing"
        elif len(values) == 1:
            got = f"got {_show(values[0])}"
        else:
            got = f"got {len(values)} values {_show(values)}"
        return self.path, f"{self.label}: {got}"


def _any_value(source: FieldSource, predicate: Predicate) -> Test:
    one = source.one
    if one is not None:
        return lambda ctx: (v := one(ctx)) is not MISSING and predicate(v)
    many = source.many
    return lambda ctx: any(predicate(v) for v in many(ctx))


def _guarded(test: Test, path: str, field: str) -> Test:
    def guarded(ctx: EventContext) -> bool:
        try:
            return test(ctx)
        except FieldError as exc:
            raise _RuleError(path, f"{field} cannot be evaluated: {exc}") from None

    return guarded


class _Group:
    """`match`/`all`/`any` over child rules, short-circuiting like Python's all/any."""

    __slots__ = ("children", "every", "list_path", "path", "test")

    def __init__(self, every: bool, rules: Sequence[Rule], path: str, list_path: str) -> None:
        self.every = every
        self.path = path
        self.list_path = list_path
        self.children = tuple(_node(r, f"{list_path}[{i}]") for i, r in enumerate(rules))
        tests = tuple(child.test for child in self.children)
        if every:
            self.test: Test = lambda ctx: all(t(ctx) for t in tests)
        else:
            self.test = lambda ctx: any(t(ctx) for t in tests)

    def explain(self, ctx: EventContext, outcome: bool) -> tuple[str, str]:
        """The smallest part that decided `outcome` (what `test` just returned)."""
        if self.every == outcome:
            # all passed: the group as a whole decided; any failed: none matched.
            if outcome:
                return self.path, f"all {len(self.children)} rules matched"
            return self.list_path, "no rule matched"
        for child in self.children:  # the first one that went the other way decided
            if child.test(ctx) == outcome:
                return child.explain(ctx, outcome)
        raise AssertionError("explain() called with an outcome test() did not give")


def _node(rule: Rule, path: str) -> _Leaf | _Group:
    if rule.all_ is not None:
        return _Group(True, rule.all_, path, f"{path}.all")
    if rule.any_ is not None:
        return _Group(False, rule.any_, path, f"{path}.any")
    return _Leaf(rule, path)


# --- CEL -------------------------------------------------------------------------------


def _cel_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        # A repeated header becomes one value, joined as RFC 9110 section 5.3 combines it.
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _error_text(exc: Exception) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return f"no such key {_show(exc.args[0])}"
    # The runtime appends advice after the first sentence; the first one says what.
    text = str(exc).split("\n", 1)[0].split(". ", 1)[0] or type(exc).__name__
    return text if len(text) <= 2 * SHOWN_CHARS else text[: 2 * SHOWN_CHARS - 1] + "…"


class _Expression:
    __slots__ = ("body_paths", "program", "uses")

    def __init__(self, source: str) -> None:
        self.program = cel.compile(source)
        self.uses = frozenset(self.program.variables()) & {"body", "headers", "meta"}
        self.body_paths = cel_body_paths(source) if "body" in self.uses else None

    def run(self, ctx: EventContext) -> str | None:
        """None when the expression is true, else why the filter does not match."""
        variables: dict[str, Any] = {}
        if "body" in self.uses:
            paths = self.body_paths
            variables["body"] = ctx.payload if paths is None else prune_body(ctx.payload, paths)
        if "headers" in self.uses:
            variables["headers"] = _cel_headers(ctx.headers)
        if "meta" in self.uses:
            variables["meta"] = {"eventType": ctx.event_type, "sourceIP": ctx.source_ip}
        try:
            result = self.program.execute(variables)
        except Exception as exc:  # the runtime raises KeyError, TypeError, RuntimeError, ...
            return f"expression failed: {_error_text(exc)}"
        if result is True:
            return None
        if result is False:
            return "expression is false"
        return f"expression gave {type(result).__name__} {_show(result)}, not a boolean"


# --- the filter ------------------------------------------------------------------------


_NO_RULE_MATCHED: Final = FilterResult(False, "rules", "no rule matched")
_EXPRESSION_TRUE: Final = "expression is true"


class CompiledFilter:
    """One EventFilter, ready to evaluate; immutable, so one instance serves every request."""

    __slots__ = ("_expression", "_match_any", "_matched", "_rules", "_tests", "name")

    def __init__(self, resource: EventFilter) -> None:
        spec = resource.spec
        self.name: str = resource.metadata.name
        self._match_any = spec.match == "any" and bool(spec.rules)
        self._rules = tuple(_node(rule, f"rules[{i}]") for i, rule in enumerate(spec.rules))
        self._tests = tuple(rule.test for rule in self._rules)
        self._expression = _Expression(spec.expression) if spec.expression is not None else None
        # The result of a `match: all` filter that matched never varies: made once here
        # (a frozen dataclass costs about a microsecond to build).
        said = [f"all {len(self._rules)} rules matched"] if self._rules else []
        said += [_EXPRESSION_TRUE] if self._expression is not None else []
        self._matched = FilterResult(True, "", "; ".join(said))

    def evaluate(self, ctx: EventContext) -> FilterResult:
        # The top level is looped here rather than through a _Group so that the deciding
        # rule is known without evaluating the rules a second time.
        decided_by, detail = "", ""
        try:
            if self._match_any:
                for index, test in enumerate(self._tests):
                    if test(ctx):
                        decided_by, detail = self._rules[index].explain(ctx, True)
                        break
                else:
                    return _NO_RULE_MATCHED
            else:
                for index, test in enumerate(self._tests):
                    if not test(ctx):
                        return FilterResult(False, *self._rules[index].explain(ctx, False))
        except _RuleError as exc:
            return FilterResult(False, exc.path, exc.detail)
        if self._expression is not None:
            failed = self._expression.run(ctx)
            if failed is not None:
                return FilterResult(False, "expression", failed)
            if decided_by:
                detail = f"{detail}; {_EXPRESSION_TRUE}"
        return FilterResult(True, decided_by, detail) if decided_by else self._matched


def compile_filter(resource: EventFilter) -> CompiledFilter:
    """Compile once per configuration load.

    The resource has passed the model's validation, which runs the same compilers
    (JSONPath, RE2, CEL), so compiling cannot fail on what the model accepted.
    """
    return CompiledFilter(resource)
