"""Read hookline resources and the v1 Secrets they reference from YAML manifests.

This is the standalone receiver's source of configuration (issue 3) and what
`hookline validate` checks; the operator reads the same models from the cluster.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import format_validation_error
from .eventfilter import EventFilter
from .eventtype import EventType
from .resource import Resource
from .webhook import Webhook

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_NAMESPACE = "default"


@dataclass
class ManifestSet:
    webhooks: list[Webhook] = field(default_factory=list)
    filters: list[EventFilter] = field(default_factory=list)
    event_types: list[EventType] = field(default_factory=list)
    # (namespace, name) -> key -> value; values never leave this process (DESIGN.md).
    secrets: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    # Other kinds (Namespaces, Deployments, ...) found beside them, "Kind ns/name".
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def resources(self) -> list[Resource]:
        return [*self.event_types, *self.filters, *self.webhooks]


class ManifestError(Exception):
    """A manifest set that cannot be used, with one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def manifest_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES
            )
        elif path.exists():
            yield path
        else:
            raise ManifestError([f"{path}: no such file or directory"])


def _secret_data(doc: dict[str, Any]) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    for key, value in (doc.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(str(value), validate=True)
        except binascii.Error:
            raise ValueError(f"data.{key}: not base64 (use stringData for plain text)") from None
    for key, value in (doc.get("stringData") or {}).items():
        data[key] = str(value).encode()
    return data


_MODELS: dict[str, type[Resource]] = {
    "Webhook": Webhook,
    "EventFilter": EventFilter,
    "EventType": EventType,
}


def add_document(result: ManifestSet, doc: Any, where: str) -> None:
    """Parse one YAML document into `result`, recording an error line if it is bad."""
    if doc is None:
        return
    if not isinstance(doc, dict) or "kind" not in doc:
        result.errors.append(f"{where}: not a Kubernetes object (no kind)")
        return
    kind = doc.get("kind")
    if kind == "List":
        for i, item in enumerate(doc.get("items") or []):
            add_document(result, item, f"{where} item {i}")
        return
    meta = doc.get("metadata") or {}
    if isinstance(meta, dict) and not meta.get("namespace"):
        meta = {**meta, "namespace": DEFAULT_NAMESPACE}
        doc = {**doc, "metadata": meta}
    name = f"{meta.get('namespace')}/{meta.get('name')}" if isinstance(meta, dict) else "?"
    if kind == "Secret" and doc.get("apiVersion") == "v1":
        try:
            result.secrets[(meta["namespace"], meta["name"])] = _secret_data(doc)
        except (ValueError, KeyError) as exc:
            result.errors.append(f"{where} (Secret {name}): {exc}")
        return
    model = _MODELS.get(str(kind))
    if model is None or not str(doc.get("apiVersion", "")).startswith("hookline.dev/"):
        result.skipped.append(f"{kind} {name}")
        return
    try:
        resource = model.model_validate(doc)
    except ValidationError as exc:
        for line in format_validation_error(exc):
            result.errors.append(f"{where} ({kind} {name}): {line}")
        return
    if isinstance(resource, Webhook):
        result.webhooks.append(resource)
    elif isinstance(resource, EventFilter):
        result.filters.append(resource)
    elif isinstance(resource, EventType):
        result.event_types.append(resource)


def load_manifests(paths: Iterable[str | Path]) -> ManifestSet:
    """Every document of every file under `paths`; errors are collected, not raised."""
    result = ManifestSet()
    try:
        files = list(manifest_files(paths))
    except ManifestError as exc:
        result.errors.extend(exc.errors)
        return result
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            result.errors.append(f"{path}: not valid YAML: {exc}")
            continue
        for index, doc in enumerate(docs):
            add_document(result, doc, f"{path} document {index + 1}")
    return result
