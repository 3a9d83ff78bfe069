"""Which objects a Webhook refers to, and which of them are missing.

One function for the standalone receiver, `hookline validate` and the operator, so a
missing reference reads the same everywhere (reasons as in issue 6)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from .common import SecretKeyRef
from .eventtype import EventType
from .versions import version_key
from .webhook import EventTypeRef, Webhook

FILTER_NOT_FOUND = "FilterNotFound"
EVENT_TYPE_NOT_FOUND = "EventTypeNotFound"
SECRET_NOT_FOUND = "SecretNotFound"


@dataclass(frozen=True)
class MissingReference:
    reason: str
    message: str


def secret_refs(webhook: Webhook) -> Iterator[tuple[str, SecretKeyRef]]:
    """(field path, reference) of every Secret the Webhook reads."""
    spec = webhook.spec
    if spec.auth.secret_ref is not None:
        yield "spec.auth.secretRef", spec.auth.secret_ref
    if spec.github is not None:
        yield spec.github.credential_ref
    for i, dest in enumerate(spec.destinations):
        if dest.signing is not None:
            yield f"spec.destinations[{i}].signing.secretRef", dest.signing.secret_ref


def resolve_event_type(ref: EventTypeRef, event_types: Collection[EventType]) -> EventType | None:
    """By name, or by type and (when given) version; without a version, the newest
    (hookline.api.versions: stable before pre-release, v10 after v9)."""
    if ref.name is not None:
        return next((et for et in event_types if et.metadata.name == ref.name), None)
    candidates = [
        et
        for et in event_types
        if et.spec.type == ref.type and (ref.version is None or et.spec.version == ref.version)
    ]
    return max(candidates, key=lambda et: version_key(et.spec.version), default=None)


def missing_references(
    webhook: Webhook,
    *,
    filters: Collection[str],
    event_types: Collection[EventType],
    secrets: Mapping[str, Collection[str]],
) -> list[MissingReference]:
    """Everything `webhook` refers to that is not there, all in its own namespace.

    `filters` are EventFilter names, `event_types` the EventTypes, `secrets` Secret
    name -> its keys (never the values).
    """
    missing = []
    for ref in webhook.spec.filters:
        if ref.name not in filters:
            missing.append(
                MissingReference(FILTER_NOT_FOUND, f"EventFilter {ref.name!r} not found")
            )
    for et_ref in webhook.spec.event_types:
        if resolve_event_type(et_ref, event_types) is None:
            what = et_ref.name or f"type {et_ref.type}" + (
                f" version {et_ref.version}" if et_ref.version else ""
            )
            missing.append(MissingReference(EVENT_TYPE_NOT_FOUND, f"EventType {what!r} not found"))
    for path, secret in secret_refs(webhook):
        keys = secrets.get(secret.name)
        if keys is None:
            missing.append(
                MissingReference(SECRET_NOT_FOUND, f"{path}: Secret {secret.name!r} not found")
            )
        elif secret.key not in keys:
            missing.append(
                MissingReference(
                    SECRET_NOT_FOUND, f"{path}: Secret {secret.name!r} has no key {secret.key!r}"
                )
            )
    return missing
