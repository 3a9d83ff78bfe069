"""Generate the GitHub EventType catalog from `@octokit/openapi-webhooks`.

    python -m hookline.catalog.generate --version 12.1.0
    python -m hookline.catalog.generate --version 12.1.0 --source api.github.com.json[.gz]
    python -m hookline.catalog.generate --version 12.1.0 \\
        --test-data tests/data/github-examples --examples-version 7.6.1

The npm package is data: GitHub's own OpenAPI 3.1 description of its webhooks
(github/rest-api-description), republished by octokit. Its `generated/api.github.com.json`
holds one `webhooks` entry per event and action (`pull-request-opened`, ...) whose request
body `$ref`s a `components/schemas/webhook-...` schema. Each event becomes one EventType:
its actions' schemas merged into one (or its one schema, for events without actions), as
a self-contained JSON Schema 2020-12 document with the components it reaches under
`$defs`. On the way the generator removes what would refuse payloads GitHub sends, older
or newer (`additionalProperties: false`, `required`, `enum`, bounds: tolerance.py, issue
11 §1), and shares subschemas the source repeats inline, so that the largest events stay
small enough for `kubectl apply`. SOURCE.md says why, in full.

`render_catalog` is the pure transform (parsed source + version -> file texts); tests
run it on the committed copy of the source to prove the shipped files are its output.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hookline.catalog.tolerance import merge, tolerate

SOURCE_PACKAGE = "@octokit/openapi-webhooks"
SOURCE_FILE = "generated/api.github.com.json"  # github.com; ghec/ghes-* are beside it
EXAMPLES_PACKAGE = "@octokit/webhooks-examples"
GENERATOR = "hookline/catalog/generate.py"
REGENERATE = "python -m hookline.catalog.generate --version {version}"
CATALOG_DIR = Path(__file__).resolve().parent / "github"
_TEST_DATA = "tests/data/github-examples"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
EVENT_HEADER = "X-GitHub-Event"
API_VERSION = "hookline.dev/v1alpha1"
CATALOG_LABEL = "hookline.dev/catalog"
SOURCE_ANNOTATION = "hookline.dev/source"
GENERATED_BY_ANNOTATION = "hookline.dev/generated-by"
DESCRIPTION_LIMIT = 4096  # EventTypeSpec.description's max_length
_COMPONENT_PREFIX = "#/components/schemas/"
_DEFS_PREFIX = "#/$defs/"
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
# Component names become JSON Pointer tokens and URI fragments unescaped: only these.
_COMPONENT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_EVENT_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")

# --- JSON Schema 2020-12 keywords, by the kind of value they take ----------------------

# A subschema.
_SCHEMA_KEYWORDS = frozenset(
    {
        "additionalProperties",
        "contains",
        "contentSchema",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
# A list of subschemas.
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
# A map of names (property names, which may be spelt like keywords) to subschemas.
_SCHEMA_MAP_KEYWORDS = frozenset({"$defs", "dependentSchemas", "patternProperties", "properties"})
# Anything else JSON Schema 2020-12 knows: instance data or plain values, copied as is.
_VALUE_KEYWORDS = frozenset(
    {
        "$comment",
        "$ref",
        "const",
        "contentEncoding",
        "contentMediaType",
        "default",
        "dependentRequired",
        "deprecated",
        "description",
        "enum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "format",
        "maxContains",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minContains",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "multipleOf",
        "pattern",
        "readOnly",
        "required",
        "title",
        "type",
        "uniqueItems",
        "writeOnly",
    }
)
# OpenAPI's additions to the 3.1 schema object, and sample data: none of them constrains
# a payload. `examples` is JSON Schema too, but here it only holds samples (a tenth of
# the source), so it goes with OpenAPI's singular `example`.
_DROPPED_KEYWORDS = frozenset({"discriminator", "example", "examples", "externalDocs", "xml"})
# `false` here closes an object: dropped (see _clean).
_CLOSING_KEYWORDS = frozenset({"additionalProperties", "unevaluatedProperties"})

# A subschema the source repeats inline is shared under $defs (see _share_repeats) once
# its compact JSON is at least this long: a whole user, label or repository object, not
# `{type: string, format: uri}`, which a `$ref` would hardly shorten.
_SHARE_MIN_CHARS = 512
_SHARED_PREFIX = "shared-"


# --- reading the source ----------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One `webhooks` entry of the source: one event, or one action of an event."""

    key: str  # the entry's name, e.g. "pull-request-opened"
    event: str  # the X-GitHub-Event value, e.g. "pull_request"
    has_action: bool  # False for events without actions, such as push
    component: str  # its request body's components/schemas name
    summary: str  # the event's description (the same for every action of an event)
    description: str  # the action's description ("" where there is none)


def source_annotation(version: str) -> str:
    return f"npm:{SOURCE_PACKAGE}@{version}"


def check_source(source: dict[str, Any]) -> None:
    """Refuse what this generator was not written for, rather than guess."""
    openapi = str(source.get("openapi", ""))
    if not openapi.startswith("3.1."):
        # 3.1's schema objects are JSON Schema 2020-12; 3.0's are not (nullable, ...).
        raise ValueError(f"openapi {openapi!r}: the generator knows OpenAPI 3.1 only")
    if not isinstance(source.get("webhooks"), dict) or not source["webhooks"]:
        raise ValueError("no webhooks in the source")
    for name in source["components"]["schemas"]:
        if not _COMPONENT_NAME.match(name):
            raise ValueError(f"component name {name!r} would need escaping in a $ref")


def webhooks(source: dict[str, Any]) -> list[Webhook]:
    """Every webhook of the source, sorted by (event, key)."""
    check_source(source)
    found: list[Webhook] = []
    for key, item in source["webhooks"].items():
        if set(item) != {"post"}:
            raise ValueError(f"webhook {key!r}: expected one `post` operation, got {sorted(item)}")
        post = item["post"]
        # The event is `x-github.subcategory`, spelt as the operationId's first part
        # ("pull-request/opened"), and for three events with `-` where the header has
        # `_` ("sub-issues" is delivered as `X-GitHub-Event: sub_issues`). The header
        # parameter's `example` is no help: it says "issues" for almost every webhook.
        operation = str(post["operationId"])
        subcategory = str(post["x-github"]["subcategory"])
        event = subcategory.replace("-", "_")
        if operation.split("/")[0].replace("-", "_") != event or not _EVENT_NAME.match(event):
            raise ValueError(f"webhook {key!r}: operationId {operation!r}, event {subcategory!r}")
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        found.append(
            Webhook(
                key=key,
                event=event,
                has_action="/" in operation,
                component=_component(ref),
                summary=str(post.get("summary") or "").strip(),
                description=str(post.get("description") or "").strip(),
            )
        )
    return sorted(found, key=lambda w: (w.event, w.key))


def events(source: dict[str, Any]) -> dict[str, list[Webhook]]:
    """Event -> its webhooks (one per action, or one for an event without actions)."""
    grouped: dict[str, list[Webhook]] = {}
    for webhook in webhooks(source):
        grouped.setdefault(webhook.event, []).append(webhook)
    for event, hooks in grouped.items():
        if len(hooks) > 1 and not all(h.has_action for h in hooks):
            raise ValueError(f"event {event!r} has several webhooks, not all of them actions")
    return grouped


def _component(ref: str) -> str:
    if not ref.startswith(_COMPONENT_PREFIX) or "/" in ref[len(_COMPONENT_PREFIX) :]:
        # Only local component references exist upstream; anything else would need
        # real resolution, so refuse instead of shipping a schema with a dangling $ref.
        raise ValueError(f"unsupported $ref {ref!r}")
    return ref[len(_COMPONENT_PREFIX) :]


# --- OpenAPI schema object -> JSON Schema 2020-12 --------------------------------------


def _clean(node: Any) -> Any:
    """A copy as plain, relaxed JSON Schema 2020-12, object keys sorted.

    - `$ref`s to components point at `#/$defs/<name>`;
    - OpenAPI-only keywords and sample data are dropped (_DROPPED_KEYWORDS, `x-*`);
    - `additionalProperties: false` / `unevaluatedProperties: false` are dropped: a
      field GitHub adds later must not make a real delivery invalid;
    - `oneOf` becomes `anyOf`: with objects no longer closed, branches that the source
      kept apart only by refusing each other's fields may both match a real payload,
      and `oneOf` would then refuse it. No consumer relies on "exactly one";
    - a keyword JSON Schema 2020-12 does not know, OpenAPI 3.0's `nullable` among them,
      is refused: a new construct upstream must be looked at, not shipped unread.

    Sorted keys make the output independent of upstream key order, so regenerating
    from a new version shows only real changes.
    """
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise ValueError(f"not a schema: {json.dumps(node)[:80]}")
    if "oneOf" in node and "anyOf" in node:
        # Renaming would overwrite one of them; no upstream schema does this.
        raise ValueError("a schema with both oneOf and anyOf")
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS or key.startswith("x-"):
            continue
        if key in _CLOSING_KEYWORDS and value is False:
            continue
        if key == "$ref":
            cleaned[key] = _DEFS_PREFIX + _component(value)
        elif key in _SCHEMA_KEYWORDS:
            if not isinstance(value, dict | bool):  # e.g. a draft-04 tuple `items: [...]`
                raise ValueError(f"{key}: expected one schema, got {type(value).__name__}")
            cleaned[key] = _clean(value)
        elif key in _SCHEMA_LIST_KEYWORDS:
            cleaned["anyOf" if key == "oneOf" else key] = [_clean(item) for item in value]
        elif key in _SCHEMA_MAP_KEYWORDS:
            cleaned[key] = {name: _clean(value[name]) for name in sorted(value)}
        elif key in _VALUE_KEYWORDS:
            cleaned[key] = _sorted_data(value)
        else:
            raise ValueError(f"unknown keyword {key!r}: not JSON Schema 2020-12")
    return {key: cleaned[key] for key in sorted(cleaned)}


def _sorted_data(value: Any) -> Any:
    """Instance data (enum values, defaults) with object keys sorted; lists keep order."""
    if isinstance(value, dict):
        return {key: _sorted_data(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_data(item) for item in value]
    return value


def _subschemas(node: Any) -> Iterator[tuple[Any, str | int, Any]]:
    """(container, slot, subschema) for each direct subschema of a cleaned schema."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _SCHEMA_KEYWORDS:
            yield node, key, value
        elif key in _SCHEMA_LIST_KEYWORDS:
            for index, item in enumerate(value):
                yield value, index, item
        elif key in _SCHEMA_MAP_KEYWORDS:
            for name, item in value.items():
                yield value, name, item


def _refs(node: Any) -> Iterator[str]:
    """The $defs names a cleaned schema references, in document order."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.removeprefix(_DEFS_PREFIX)
    for _, _, child in _subschemas(node):
        yield from _refs(child)


# --- bundling one event --------------------------------------------------------------


def bundle(
    source: dict[str, Any], hooks: list[Webhook], *, tolerant: bool = True
) -> dict[str, Any]:
    """The JSON Schema of one event, self-contained and tolerant (issue 11 §1).

    Every component the event's schemas reach, transitively, is cleaned, made tolerant
    (hookline/catalog/tolerance.py: types checked, `required`/`enum`/bounds not) and kept
    under `$defs` with its component name. The root is the one schema of an event
    without actions, or the merge of its actions' schemas: one object schema that any
    action validates against, one GitHub adds later included. Then repeats are shared.

    `tolerant=False` is the catalog before issue 11, GitHub's description as it stands
    (only closed objects opened) and `anyOf` the actions: bench/catalog.py's baseline.
    """
    components: dict[str, Any] = source["components"]["schemas"]
    cleaned: dict[str, Any] = {}
    pending = [hook.component for hook in hooks]
    while pending:
        name = pending.pop()
        if name in cleaned:
            continue
        if name not in components:
            raise ValueError(f"$ref to missing component {name!r}")
        cleaned[name] = tolerate(_clean(components[name])) if tolerant else _clean(components[name])
        pending.extend(_refs(cleaned[name]))
    for hook in hooks:
        if not isinstance(cleaned[hook.component], dict):
            raise ValueError(f"{hook.key}: the request body schema is not an object schema")
    bodies = list(dict.fromkeys(hook.component for hook in hooks))
    root: dict[str, Any]
    if hooks[0].has_action and not tolerant:
        root = {"anyOf": [{"$ref": _DEFS_PREFIX + name} for name in bodies]}
        bodies = []  # the $defs the root refers to
    elif hooks[0].has_action:
        root = merge([cleaned[name] for name in bodies])
        if not isinstance(root, dict) or "properties" not in root:
            raise ValueError(f"{hooks[0].event}: its actions do not merge into one object")
        root = dict(root)
        root["description"] = _actions_text(source, hooks)
        root = {key: root[key] for key in sorted(root)}
    else:
        (name,) = bodies
        root = copy.deepcopy(cleaned[name])  # _share_repeats tells copies apart by id
        if hooks[0].description and "description" not in root:
            root["description"] = hooks[0].description
            root = {key: root[key] for key in sorted(root)}
    for name in bodies:
        # A body another component refers to stays a $def too (two documents, not one).
        if name not in _referenced(cleaned, skip=name):
            del cleaned[name]
    root, defs = _share_repeats(root, cleaned)
    schema: dict[str, Any] = {"$schema": DRAFT_2020_12, **root}
    if defs:
        schema["$defs"] = {name: defs[name] for name in sorted(defs)}
    return schema


def _actions_text(source: dict[str, Any], hooks: list[Webhook]) -> str:
    """GitHub's description of each action, as the merged root's description."""
    components = source["components"]["schemas"]
    lines = ["Any `action` is accepted, a new one too; GitHub describes these:"]
    for hook in hooks:
        values = ", ".join(
            f"`{v}`" for v in dict.fromkeys(_action_enum(components[hook.component]))
        )
        text = " ".join(hook.description.split())
        lines.append(f"- {values or hook.key}: {text}" if text else f"- {values or hook.key}")
    return "\n".join(lines)


def _referenced(defs: dict[str, Any], skip: str) -> set[str]:
    return {ref for name, schema in defs.items() if name != skip for ref in _refs(schema)}


# --- sharing repeated subschemas -------------------------------------------------------


@dataclass
class _Node:
    key: str  # compact JSON of the subschema: equal keys, equal subschemas
    children: list[Any]  # its direct subschemas


class _Index:
    """Every subschema of a document (root and $defs), by object identity."""

    def __init__(self) -> None:
        self.nodes: dict[int, _Node] = {}
        self.counts: Counter[str] = Counter()  # copies of each subschema, all expanded
        self.first: dict[str, tuple[int, str]] = {}  # key -> (position, name hint)
        self.sample: dict[str, Any] = {}  # key -> one of its copies
        self._position = 0

    def add(self, node: Any, hint: str) -> str:
        position = self._position  # pre-order: a subschema comes before what it holds
        self._position += 1
        children = []
        for container, slot, child in _subschemas(node):
            # Named after the property it describes; `items`, an `anyOf` branch and the
            # like take their parent's name.
            in_map = isinstance(slot, str) and container is not node
            self.add(child, str(slot) if in_map else hint)
            children.append(child)
        key = json.dumps(node, separators=(",", ":"), ensure_ascii=False)
        self.nodes[id(node)] = _Node(key, children)
        self.counts[key] += 1
        if key not in self.first:
            title = node.get("title") if isinstance(node, dict) else None
            self.first[key] = (position, title if isinstance(title, str) else hint)
            self.sample[key] = node
        return key

    def inside(self, node: Any) -> Counter[str]:
        """How often each subschema occurs strictly inside `node`."""
        found: Counter[str] = Counter()
        stack = list(self.nodes[id(node)].children)
        while stack:
            entry = self.nodes[id(stack.pop())]
            found[entry.key] += 1
            stack.extend(entry.children)
        return found


def _share_repeats(
    root: dict[str, Any], defs: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Replace each subschema the document repeats by a `$ref` to one copy in `$defs`.

    GitHub's description inlines whole objects (a pull request, a user, a repository)
    wherever they occur: `pull_request` repeats its pull request object in each of its
    actions, in 12.1.0 over 1 MB of YAML in all, four times what client-side
    `kubectl apply` can store. A `$ref` to an equal copy (equal as JSON, byte for byte) validates
    exactly as the copy did, so the schema means the same; only the document shrinks.

    Largest first: a subschema of at least _SHARE_MIN_CHARS that occurs more than once
    goes to `$defs` once (or, if it equals a component already there, refers to that),
    and what it contains then counts once, not once per copy. New `$defs` are named
    `shared-<title or property>`; component names are unchanged.
    """
    index = _Index()
    index.add(root, "schema")
    components: dict[str, str] = {}  # key -> component name, the first of equal ones
    for name in sorted(defs):
        components.setdefault(index.add(defs[name], name), name)

    counts = index.counts
    shared: set[str] = set()
    # Longest first: a subschema is longer than any it contains, so when one is looked
    # at, whether its containers are shared is settled and its count is final.
    for key in sorted(counts, key=lambda k: (-len(k), k)):
        copies = counts[key]
        if copies < 2 or len(key) < _SHARE_MIN_CHARS:
            continue
        shared.add(key)
        for inner, times in index.inside(index.sample[key]).items():
            counts[inner] -= (copies - 1) * times  # the copies that go away held these
        counts[key] = 1

    names: dict[str, str] = {key: components[key] for key in shared if key in components}
    taken = set(defs)
    for key in sorted(shared - set(names), key=lambda k: index.first[k][0]):
        slug = re.sub(r"[^a-z0-9]+", "-", index.first[key][1].lower()).strip("-") or "schema"
        name, n = _SHARED_PREFIX + slug, 1
        while name in taken:
            n += 1
            name = f"{_SHARED_PREFIX}{slug}-{n}"
        taken.add(name)
        names[key] = name

    def rewrite(node: Any, own: str | None = None) -> Any:
        key = index.nodes[id(node)].key
        if key in names and names[key] != own:
            return {"$ref": _DEFS_PREFIX + names[key]}
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for keyword, value in node.items():
            if keyword in _SCHEMA_KEYWORDS:
                out[keyword] = rewrite(value)
            elif keyword in _SCHEMA_LIST_KEYWORDS:
                out[keyword] = [rewrite(item) for item in value]
            elif keyword in _SCHEMA_MAP_KEYWORDS:
                out[keyword] = {name: rewrite(item) for name, item in value.items()}
            else:
                out[keyword] = value
        return out

    new_root = rewrite(root)
    new_defs = {name: rewrite(schema, own=name) for name, schema in defs.items()}
    for key, name in names.items():
        if name not in new_defs:
            new_defs[name] = rewrite(index.sample[key], own=name)
    # Keep only what the root still reaches (nothing else should be left; be sure).
    reached: set[str] = set()
    pending = list(_refs(new_root))
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending.extend(_refs(new_defs[name]))
    return new_root, {name: new_defs[name] for name in reached}


# --- manifests and files ---------------------------------------------------------------


def _actions(source: dict[str, Any], hooks: list[Webhook]) -> list[str]:
    """The `action` values an event's schema allows, as its actions' enums say."""
    components = source["components"]["schemas"]
    found: list[str] = []
    for hook in hooks:
        if hook.has_action:
            found.extend(_action_enum(components[hook.component]))
    return sorted(set(found))


def _action_enum(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    action = schema.get("properties", {}).get("action", {})
    values = [str(v) for v in action.get("enum", [])]
    for keyword in ("oneOf", "anyOf"):  # e.g. review_requested: a user or a team
        for branch in schema.get(keyword, []):
            values.extend(_action_enum(branch))
    return values


def _description(source: dict[str, Any], event: str, hooks: list[Webhook]) -> str:
    """GitHub's own text about the event (every action repeats it), then the actions."""
    parts = [f"GitHub webhook event `{event}` ({EVENT_HEADER}: {event})."]
    summaries = list(dict.fromkeys(h.summary for h in hooks if h.summary))
    parts.extend(summaries)
    actions = _actions(source, hooks)
    if actions:
        parts.append("Actions: " + ", ".join(actions) + ".")
    text = "\n\n".join(parts)
    if len(text) > DESCRIPTION_LIMIT:
        raise ValueError(f"{event}: description of {len(text)} characters")
    return text


def resource_name(event: str) -> str:
    return "github-" + event.replace("_", "-")


def manifest(
    source: dict[str, Any], event: str, hooks: list[Webhook], version: str
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EventType",
        "metadata": {
            "name": resource_name(event),
            "labels": _Block({CATALOG_LABEL: "github"}),
            "annotations": _Block(
                {
                    GENERATED_BY_ANNOTATION: GENERATOR,
                    SOURCE_ANNOTATION: source_annotation(version),
                }
            ),
        },
        "spec": {
            "type": f"github.{event}",
            "version": "v1",
            "description": _description(source, event, hooks),
            "match": {"header": _Block({"name": EVENT_HEADER, "value": event})},
            "schema": bundle(source, hooks),
        },
    }


try:  # libyaml's emitter: the catalog is megabytes of YAML, several times faster in C.
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]


class _Dumper(_BaseDumper):
    """Never `&id001` / `*id001`: kubectl and people read these files, and an object
    that happens to be shared in memory must still be written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _Block(dict[str, Any]):
    """A mapping written in block style, as Kubernetes manifests usually are, although
    it holds only scalars (the schema's such mappings are written `{type: string}`)."""


def _represent_block(dumper: _Dumper, data: _Block) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=False)


def _represent_str(dumper: _Dumper, data: str) -> yaml.Node:
    # GitHub's descriptions are Markdown paragraphs: a literal block keeps them as they
    # read (the emitter falls back to quoting where a block cannot hold the text).
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", data, style="|" if "\n" in data else None
    )


_Dumper.add_representer(_Block, _represent_block)
_Dumper.add_representer(str, _represent_str)


# Never fold long scalars: libyaml and PyYAML's own emitter fold quoted strings at
# different places, and the output must not depend on which one is installed.
_NO_WRAP = 1 << 30


def dump_yaml(doc: dict[str, Any]) -> str:
    # sort_keys=False keeps apiVersion/kind/metadata/spec in the conventional order and
    # `$schema` first; the schema itself is already key-sorted, so the output is canonical.
    # default_flow_style=None writes a mapping or list of scalars on one line, such as
    # `{format: uri, type: string}`: a fifth of the size, and easier to read.
    return yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=_NO_WRAP,
        default_flow_style=None,
    )


def _header(version: str) -> str:
    return (
        f"# Generated by {GENERATOR} from {source_annotation(version)}; do not edit.\n"
        f"# Regenerate: {REGENERATE.format(version=version)}\n"
    )


@dataclass(frozen=True)
class _Row:
    event: str
    actions: int
    defs: int
    size: int  # YAML bytes
    json_size: int  # compact JSON bytes: what client-side `kubectl apply` annotates


def render_catalog(source: dict[str, Any], version: str) -> dict[str, str]:
    """File name -> text of every catalog file, SOURCE.md included. Pure and stable."""
    files: dict[str, str] = {}
    rows: list[_Row] = []
    for event, hooks in sorted(events(source).items()):
        doc = manifest(source, event, hooks, version)
        text = _header(version) + dump_yaml(doc)
        files[f"{doc['metadata']['name']}.yaml"] = text
        actions = len(hooks) if hooks[0].has_action else 0
        defs = len(doc["spec"]["schema"].get("$defs", {}))
        compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        rows.append(_Row(event, actions, defs, len(text.encode()), len(compact.encode())))
    files["SOURCE.md"] = _source_md(source, version, rows)
    return files


def _source_md(source: dict[str, Any], version: str, rows: list[_Row]) -> str:
    total = sum(row.size for row in rows)
    largest = max(rows, key=lambda row: row.size)
    largest_json = max(row.json_size for row in rows)
    # Client-side `kubectl apply` copies each object, as compact JSON, into the
    # last-applied-configuration annotation, and annotations are limited to 256 KiB.
    apply_note = (
        f"As compact JSON, which client-side `kubectl apply` copies into its "
        f"last-applied-configuration annotation, the largest is {largest_json / 1024:.0f} KiB, "
        f"under the 256 KiB annotations may hold."
        if largest_json < 256 * 1024
        else f"As compact JSON the largest is {largest_json / 1024:.0f} KiB, more than the "
        "256 KiB that client-side `kubectl apply` can keep in its "
        "last-applied-configuration annotation: apply the catalog with "
        "`kubectl apply --server-side`."
    )
    table = "\n".join(
        f"| `{row.event}` | `{resource_name(row.event)}` | {row.actions or '-'} "
        f"| {row.defs} | {row.size / 1024:.0f} KiB |"
        for row in rows
    )
    url = f"https://www.npmjs.com/package/{SOURCE_PACKAGE}/v/{version}"
    closed = sum(_closed(schema) for schema in source["components"]["schemas"].values())
    upstream = source.get("info", {}).get("title", "")
    return f"""# GitHub EventType catalog

Generated, do not edit. Regenerate with `{REGENERATE.format(version=version)}`
(fetches the package with `npm pack`; `--source path/to/api.github.com.json[.gz]` works
offline). Print it for a cluster with `hookline catalog github | kubectl apply -f -`.

## Source

- [`{SOURCE_PACKAGE}@{version}`]({url}), its `{SOURCE_FILE}`
  ("{upstream}"): GitHub's own OpenAPI {source.get("openapi")} description of the webhooks
  it sends to github.com, from [github/rest-api-description](https://github.com/github/rest-api-description),
  republished on npm by [octokit/openapi-webhooks](https://github.com/octokit/openapi-webhooks)
  with an `x-octokit` extension the generator does not use. (`ghec.json` and `ghes-*.json`
  beside it describe GitHub Enterprise Cloud and Server.)
- License: MIT, the package's `LICENSE` ("Copyright (c) 2020 Octokit contributors").
- Each manifest is annotated `{SOURCE_ANNOTATION}: {source_annotation(version)}` and
  `{GENERATED_BY_ANNOTATION}: {GENERATOR}`, and labelled `{CATALOG_LABEL}: github`
  (`kubectl get eventtypes -l {CATALOG_LABEL}=github`).
- `{_TEST_DATA}/` keeps the same file, compressed, and the pinned version of
  `{EXAMPLES_PACKAGE}`, whose real payloads the tests install (see the README there).
  `tests/unit/test_catalog.py` checks that the files here are exactly the generator's
  output; `tests/unit/test_catalog_payloads.py`, that every one of those payloads
  validates against the EventType its `{EVENT_HEADER}` selects.

This replaces `@octokit/webhooks-schemas`, "community contributed" schemas that octokit
wrote from GitHub's documentation and recorded payloads, now deprecated
(octokit/webhooks#901), and which lacked events GitHub has since added.

## What the generator does

The source has one `webhooks` entry per event and action (`pull-request-opened`, ...),
or per event for events without actions (`push`). The event is the entry's
`x-github.subcategory` (`sub-issues` is delivered as `{EVENT_HEADER}: sub_issues`, so
`-` becomes `_`); the header parameter's `example` is not used, it says `issues` for
nearly every entry.

One EventType per event: name `github-<event>` (`_` becomes `-`), `spec.type:
github.<event>`, `spec.version: v1`, recognised by the header `{EVENT_HEADER}: <event>`,
described by GitHub's summary of the event and the list of its actions. Its
`spec.schema` is a JSON Schema 2020-12 document (`$schema: {DRAFT_2020_12}`;
OpenAPI 3.1's schema objects are that dialect): for an event with actions, one object
schema merged from the request-body schemas of all its actions (below), its description
listing GitHub's description of each action; for an event without actions, its one
schema. Every `components/schemas` entry they reach, transitively, is under `$defs` with
its name, `#/components/schemas/<name>` becoming `#/$defs/<name>`; nothing else is
carried.

Dropped, as they constrain nothing: OpenAPI's `example`, `discriminator`, `xml`,
`externalDocs` and `x-*` extensions, and the source's `examples` (sample values, a
tenth of the source). Kept: `type`, `properties`, `items`, `anyOf`/`allOf`, `format`,
`title`, `description`, `default`, `readOnly`, `deprecated`. The source uses no OpenAPI
3.0 `nullable` (nullable fields are type arrays such as `[string, "null"]`); a keyword
that is not JSON Schema 2020-12 stops the generator rather than being shipped unread.
Object keys are sorted, so a new version diffs cleanly.

Shared copies: GitHub's description inlines whole objects wherever they occur
(`pull_request` repeats its pull request object in each of its actions).
A subschema of 512 characters or more that occurs twice in one event's schema is kept
once under `$defs` and referenced (named `{_SHARED_PREFIX}<title or property>`, or the
component's name when it equals one). A `$ref` to a byte-for-byte equal copy validates
the same, so this changes the size, not the meaning.

## What the schemas check, and what they do not (issue 11 §1)

The receiver answers 422 to a delivery its EventType's schema refuses, and GitHub never
retries it: a schema that refuses a real payload loses that event. GitHub's description
is of today's github.com payloads; it refuses older ones (fields it added since, such as
`repository.has_discussions` or `release.immutable`, are required) and will refuse newer
ones (a new field in a closed object, a new value of an enum, a new action). So the
schemas check the **type** of every field a payload has, and nothing else
(`hookline/catalog/tolerance.py`):

- kept: `type`s, including `null` where GitHub sends it, and the shape of nested
  objects and arrays: a body whose `repository` is a number, or whose `action` is not
  a string, is refused, with the field's path in the 422;
- removed: `additionalProperties: false` / `unevaluatedProperties: false` ({closed} in
  this version's `components/schemas`), `required`, `enum`, `const`, numeric and length
  bounds, `pattern`, `uniqueItems`. An `enum`'s or `const`'s values are kept as
  `examples`, so the schema still documents them;
- a `format: date-time` string also accepts an integer (Unix seconds): GitHub sends
  push's `repository.created_at` so (described there as integer or string) and has
  sent `installation.created_at` so (described as a string only);
- `allOf: [X]` typed `null` only, which nothing satisfies, becomes `anyOf: [X, null]`;
- an event's actions are merged into one object schema: its properties are those of
  every action, a property's schema merged from the actions that describe it (types
  united; a `$ref` and an inline object stay alternatives under `anyOf`). Any action
  validates, one GitHub adds later included, and an error names the field instead of
  "not valid under any of the given schemas". `oneOf` is `anyOf` everywhere: with
  objects open, its branches overlap, and "exactly one" would refuse a payload.
- `format` (`date-time`, `uri`, `uri-template`, `int64`, ...) is documentation: the
  receiver compiles schemas with jsonschema-rs and `validate_formats=False`.

What this costs: a schema says nothing about which fields a payload has, so a body of
another event passes unless a field of the same name has another type. Which event a
delivery is comes from its `{EVENT_HEADER}` header (and, with `auth.type: github`, its
signature); to require fields or values, copy the EventType and add them.

## Size

{len(rows)} events, {total / 1024:.0f} KiB of YAML in total, the largest
`{resource_name(largest.event)}` at {largest.size / 1024:.0f} KiB: payloads embed whole repository,
user and pull request objects. {apply_note}

| event | EventType | actions | $defs | YAML |
|---|---|---|---|---|
{table}
"""


def _closed(node: Any) -> int:
    """How many `additionalProperties: false` / `unevaluatedProperties: false` in a
    source schema."""
    if not isinstance(node, dict):
        return 0
    found = sum(1 for key in _CLOSING_KEYWORDS if node.get(key) is False)
    for key, value in node.items():
        if key in _SCHEMA_KEYWORDS:
            found += _closed(value)
        elif key in _SCHEMA_LIST_KEYWORDS:
            found += sum(_closed(item) for item in value)
        elif key in _SCHEMA_MAP_KEYWORDS:
            found += sum(_closed(item) for item in value.values())
    return found


# --- fetching and writing -------------------------------------------------------------


def fetch_package(package: str, version: str, workdir: Path) -> Path:
    """Unpack `package@version` from the npm registry into `workdir`; its root dir.

    `npm pack` downloads the published tarball and checks it against the registry's
    integrity hash, so the bytes are exactly what was published under that version.
    """
    spec = f"{package}@{version}"
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    filename: str = json.loads(out.stdout)[0]["filename"]
    tarball = workdir / filename
    target = workdir / tarball.name.removesuffix(".tgz")
    with tarfile.open(tarball) as archive:
        archive.extractall(target, filter="data")
    return target / "package"


def read_json(path: Path) -> Any:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return json.loads(data)


def write_catalog(files: dict[str, str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("github-*.yaml"):
        # An event dropped upstream must not linger in the shipped catalog.
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


def gzip_json(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # mtime=0: the same data always gives the same bytes, so git sees no change.
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def write_test_data(source: dict[str, Any], version: str, examples_version: str, out: Path) -> None:
    """The source, compressed, for offline tests, and the example payloads' pin.

    The payloads themselves are not copied: scripts/test-data.sh installs the pinned
    package for the tests (issue 11 §1), all of it, GHES directories included."""
    out.mkdir(parents=True, exist_ok=True)
    # The previous source's file, and the subset of payloads kept before issue 11.
    for stale in ("schema.json.gz", "examples.json.gz"):
        (out / stale).unlink(missing_ok=True)
    (out / "source.json.gz").write_bytes(gzip_json(source))
    record = {
        "source": f"npm:{SOURCE_PACKAGE}@{version}",
        "source_file": SOURCE_FILE,
        "version": version,
        "examples": f"npm:{EXAMPLES_PACKAGE}@{examples_version}",
        "examples_version": examples_version,
    }
    (out / "SOURCE.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    (out / "README.md").write_text(_test_data_readme(version, examples_version))


def _test_data_readme(version: str, examples_version: str) -> str:
    command = (
        f"{REGENERATE.format(version=version)} --test-data {_TEST_DATA} "
        f"--examples-version {examples_version}"
    )
    return f"""# GitHub webhook test data

Generated, do not edit: `{command}`.
Read by `tests/unit/test_catalog.py`, offline. License of both packages: MIT
(Octokit contributors).

- `source.json.gz`: `{SOURCE_FILE}` of `{SOURCE_PACKAGE}@{version}`, GitHub's
  OpenAPI description of its webhooks and the source the catalog in
  `hookline/catalog/github/` is generated from (compact JSON, sorted keys). Its
  `components/examples` hold GitHub's own example payloads for a few webhooks.
- `SOURCE.json`: the packages and versions, for the tests; among them the pinned
  `{EXAMPLES_PACKAGE}@{examples_version}`, whose every payload
  `tests/unit/test_catalog_payloads.py` validates against the catalog (issue 11 §1).
  `scripts/test-data.sh` (sourced by `scripts/test.sh`) installs it into the gitignored
  `.cache/npm/webhooks-examples-{examples_version}/`: `api.github.com/index.json` (per
  event the sample from GitHub's webhook documentation, then payloads octokit recorded
  from real deliveries) and `ghes-31` to `ghes-35` (GitHub Enterprise Server 3.1-3.5).

To look at one payload: `jq '.[] | select(.name == "push") | .examples[1]'
.cache/npm/webhooks-examples-{examples_version}/api.github.com/index.json`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--version", required=True, help=f"exact {SOURCE_PACKAGE} version")
    parser.add_argument(
        "--source",
        type=Path,
        help=f"that version's {Path(SOURCE_FILE).name}[.gz], to run without npm",
    )
    parser.add_argument("--out", type=Path, default=CATALOG_DIR, help="catalog directory")
    parser.add_argument(
        "--test-data", type=Path, help="also write the source and the examples' pin here"
    )
    parser.add_argument("--examples-version", help=f"exact {EXAMPLES_PACKAGE} version")
    args = parser.parse_args(argv)
    for option in ("version", "examples_version"):
        value = getattr(args, option)
        if value is not None and not _EXACT_VERSION.match(value):
            # A range would make the recorded source a lie the next time npm resolves it.
            flag = "--" + option.replace("_", "-")
            parser.error(f"{flag} {value!r}: give an exact version such as 12.1.0")
    if args.test_data is not None and args.examples_version is None:
        parser.error("--test-data needs --examples-version")
    try:
        files = _generate(args)
    except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as exc:
        print(f"generate: {_npm_summary(exc) or _reason(exc)}", file=sys.stderr)
        return 1
    print(f"wrote {len(files) - 1} EventTypes to {args.out}", file=sys.stderr)
    return 0


def _reason(exc: Exception) -> str:
    return f"missing {exc} in the source" if isinstance(exc, KeyError) else str(exc)


def _npm_summary(exc: Exception) -> str | None:
    """npm's one-line reason (no such version, registry unreachable, ...) from --json."""
    try:
        summary = json.loads(getattr(exc, "stdout", None) or "")["error"]["summary"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(summary)


def _generate(args: argparse.Namespace) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        source_path = args.source
        if source_path is None:
            source_path = fetch_package(SOURCE_PACKAGE, args.version, Path(tmp)) / SOURCE_FILE
        source = read_json(source_path)
        files = render_catalog(source, args.version)
        if args.test_data is not None:
            write_test_data(source, args.version, args.examples_version, args.test_data)
    write_catalog(files, args.out)
    return files


if __name__ == "__main__":
    raise SystemExit(main())
