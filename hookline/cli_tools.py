"""`hookline filter test`, `hookline eventtype validate` and `hookline catalog`:
try resources on a payload before applying them (issue 4).

Exit status: 0 match / valid, 1 no match / invalid, 2 a usage or input error (one line
saying what)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml
from multidict import CIMultiDict
from pydantic import ValidationError

from .api import EventFilter, EventType, Resource, format_validation_error

R = TypeVar("R", bound=Resource)


class InputError(Exception):
    """Bad input: exit 2 with this one line."""


def _load_one(path: str, model: type[R]) -> R:
    kind = model.model_fields["kind"].default
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == kind]
    if len(found) != 1:
        raise InputError(f"{path}: expected exactly one {kind}, found {len(found)}")
    doc = found[0]
    doc.setdefault("metadata", {}).setdefault("namespace", "default")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise InputError(f"{path}: {'; '.join(format_validation_error(exc))}") from None


def _load_payload(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None


def _headers(pairs: list[str]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--header {pair!r}: write NAME=VALUE")
        headers.add(name, value)
    return headers


def filter_test(args: argparse.Namespace) -> int:
    from .receiver.context import EventContext
    from .receiver.filters import compile_filter

    resource = _load_one(args.file, EventFilter)
    payload = _load_payload(args.payload)
    context = EventContext(
        payload=payload,
        headers=_headers(args.header),
        event_type=args.event_type,
        source_ip=args.source_ip,
    )
    result = compile_filter(resource).evaluate(context)
    where = f" ({result.decided_by})" if result.decided_by else ""
    if result.matched:
        print(f"match{where}" + (f": {result.detail}" if result.detail else ""))
        return 0
    print(f"no match{where}: {result.detail}")
    return 1


def eventtype_validate(args: argparse.Namespace) -> int:
    from .receiver.eventtypes import compile_event_type

    resource = _load_one(args.file, EventType)
    payload = _load_payload(args.payload)
    try:
        compiled = compile_event_type(resource)
    except ValueError as exc:
        raise InputError(f"{args.file}: {exc}") from None
    headers = _headers(args.header)
    if args.header and not compiled.matches(headers, payload):
        print(f"not recognised as {compiled.type} {compiled.version}: spec.match does not match")
        return 1
    issues = compiled.validate(payload, limit=args.limit)
    if not issues:
        print(f"valid {compiled.type} {compiled.version}")
        return 0
    for issue in issues:
        print(f"{issue.path}: {issue.message}")
    return 1


def catalog(args: argparse.Namespace) -> int:
    from .catalog import catalog_yaml

    try:
        sys.stdout.write(catalog_yaml(args.name))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return 0


def add_parsers(sub: Any) -> None:
    """Register the commands on the `hookline` parser's subparsers."""
    filt = sub.add_parser("filter", help="try EventFilters")
    filt_sub = filt.add_subparsers(dest="filter_command", required=True)
    test = filt_sub.add_parser("test", help="does FILTER match PAYLOAD? exit 0 yes, 1 no")
    test.add_argument("-f", "--file", required=True, help="YAML with one EventFilter")
    test.add_argument("payload", help="the JSON body ('-' for standard input)")
    test.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    test.add_argument("--event-type", help="meta:eventType, e.g. github.workflow_run")
    test.add_argument("--source-ip", default="", help="meta:sourceIP")
    test.set_defaults(func=filter_test)

    et = sub.add_parser("eventtype", help="try EventTypes")
    et_sub = et.add_subparsers(dest="eventtype_command", required=True)
    validate = et_sub.add_parser("validate", help="is PAYLOAD valid? exit 0 yes, 1 no")
    validate.add_argument("-f", "--file", required=True, help="YAML with one EventType")
    validate.add_argument("payload", help="the JSON body ('-' for standard input)")
    validate.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="also check that spec.match recognises a request with these headers",
    )
    validate.add_argument("--limit", type=int, default=10, help="errors to show at most")
    validate.set_defaults(func=eventtype_validate)

    cat = sub.add_parser("catalog", help="print a catalog of EventTypes as YAML")
    cat.add_argument("name", help="github")
    cat.set_defaults(func=catalog)
