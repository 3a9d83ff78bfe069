"""The annotations users write on hookline resources and the operator clears (issue 6):
the pure part — parsing, and the Secret changes of a rotation — with no Kubernetes or
kopf in it, so every rule here is tested with explicit clocks. The kopf handlers that
act on them are in `annotation_handlers.py`.

    hookline.dev/replay: <deliveryId> | failed | dead-lettered | since=<RFC3339>
    hookline.dev/rotate-secret: <any value>

A rotation keeps the old value under `<key>.previous` in the same Secret, which the
receiver accepts beside `<key>` (hookline.receiver.config.auth_secrets), and records when
that overlap ends in the Secret's `hookline.dev/previous-secret-expires-at` annotation;
a timer drops both once it has passed (`expired_previous`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..receiver.config import PREVIOUS_SECRET_SUFFIX

REPLAY_ANNOTATION = "hookline.dev/replay"
ROTATE_ANNOTATION = "hookline.dev/rotate-secret"
PREVIOUS_EXPIRES_ANNOTATION = "hookline.dev/previous-secret-expires-at"

# DESIGN.md: "the old secret stays valid for an overlap window, 24 h by default".
DEFAULT_OVERLAP = timedelta(hours=24)

ReplayKind = Literal["delivery", "failed", "dead-lettered", "since"]

# Delivery ids are ULIDs (hookline.store.base.new_delivery_id): 26 characters of
# Crockford base32, the first at most 7 (128 bits in 130).
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
# RFC 3339 section 5.6 date-time: a full time and an offset are required (fromisoformat
# alone would take a bare date, or a time without a zone, and guess).
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?P<zone>[Zz]|[+-]\d{2}:\d{2})?"
)
_USAGE = (
    "write a delivery id (26 characters, e.g. 01JD3Z5Q4M8X6V0A2B9C7D1E5F), 'failed', "
    "'dead-lettered' or 'since=<RFC 3339 time>' (e.g. since=2026-11-25T10:00:00Z)"
)
# Keep a value quoted in a message (and so in an Event, capped at 1 KiB) short.
_QUOTE_MAX = 80


class AnnotationError(ValueError):
    """A value a person wrote that the operator cannot act on; the message says what to
    write instead. It ends up in a Warning Event and status.lastReplay (issue 6)."""


@dataclass(frozen=True)
class ReplayRequest:
    """What `hookline.dev/replay` asks for."""

    value: str  # the value as written (stripped), for status.lastReplay.request
    kind: ReplayKind
    delivery_id: str | None = None  # kind "delivery"
    since: datetime | None = None  # kind "since", timezone-aware UTC

    @property
    def destination_state(self) -> Literal["failed", "dead_lettered"] | None:
        """The receiver's outbox state a batch replay selects (hookline.store.outbox)."""
        if self.kind == "failed":
            return "failed"
        if self.kind == "dead-lettered":
            return "dead_lettered"
        return None

    def describe(self) -> str:
        if self.kind == "delivery":
            return f"delivery {self.delivery_id}"
        if self.kind == "since":
            assert self.since is not None
            return f"deliveries received since {format_time(self.since)}"
        return f"{self.kind} deliveries"


def _quote(value: str) -> str:
    return repr(value if len(value) <= _QUOTE_MAX else value[:_QUOTE_MAX] + "...")


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a Z, whole seconds: how hookline writes times in annotations."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time, as an aware datetime in UTC; AnnotationError otherwise."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise AnnotationError(
            f"{_quote(text)} is not an RFC 3339 time; write e.g. 2026-11-25T10:00:00Z"
        )
    if match["zone"] is None:
        raise AnnotationError(
            f"{_quote(text)} has no time zone; add Z for UTC or an offset such as +02:00"
        )
    zone = "+00:00" if match["zone"] in ("Z", "z") else match["zone"]
    # fromisoformat takes at most microseconds; RFC 3339 allows any number of digits.
    clock, _, fraction = match["time"].partition(".")
    fraction = ("." + fraction[:6]) if fraction else ""
    try:
        parsed = datetime.fromisoformat(f"{match['date']}T{clock}{fraction}{zone}")
    except ValueError as exc:
        raise AnnotationError(f"{_quote(text)} is not a valid time: {exc}") from None
    return parsed.astimezone(UTC)


def parse_replay(value: str | None, *, now: datetime | None = None) -> ReplayRequest:
    """Parse `hookline.dev/replay`. `now` (aware) decides what "in the future" means."""
    text = (value or "").strip()
    if not text:
        raise AnnotationError(f"{REPLAY_ANNOTATION} is empty; {_USAGE}")
    keyword = text.lower()
    if keyword == "failed":
        return ReplayRequest(text, "failed")
    # The receiver spells the state dead_lettered; accept that spelling too.
    if keyword in ("dead-lettered", "dead_lettered", "deadlettered"):
        return ReplayRequest(text, "dead-lettered")
    if keyword.startswith("since"):
        _, sep, when = text.partition("=")
        if not sep or keyword.split("=", 1)[0].strip() != "since":
            raise AnnotationError(f"{_quote(text)}: write since=<RFC 3339 time>")
        if not when.strip():
            raise AnnotationError(
                "since= needs a time, e.g. since=2026-11-25T10:00:00Z (RFC 3339, with a zone)"
            )
        since = parse_time(when)
        current = now if now is not None else datetime.now(UTC)
        if since > current:
            raise AnnotationError(
                f"since={format_time(since)} is in the future (the operator's clock says "
                f"{format_time(current)}); no delivery was received after it yet"
            )
        return ReplayRequest(text, "since", since=since)
    # A delivery id. ULIDs are case-insensitive (Crockford base32); the store keeps them
    # upper case.
    candidate = text.upper()
    if _ULID.fullmatch(candidate):
        return ReplayRequest(text, "delivery", delivery_id=candidate)
    if len(candidate) == 26 and set(candidate) <= _CROCKFORD:
        raise AnnotationError(f"{_quote(text)} is not a delivery id: it would overflow 128 bits")
    if len(candidate) == 26:
        bad = sorted(set(candidate) - _CROCKFORD)
        raise AnnotationError(
            f"{_quote(text)} is not a delivery id: {', '.join(map(repr, bad))} is not in the "
            "Crockford base32 alphabet (no I, L, O or U); copy the id from "
            "`hookline deliveries` or status.deliveries.lastDeliveryID"
        )
    if re.fullmatch(r"[0-9A-Za-z]+", text) and 20 <= len(text) <= 32:
        raise AnnotationError(
            f"{_quote(text)} is not a delivery id: it has {len(text)} characters, a delivery "
            "id has 26; copy the id from `hookline deliveries` or "
            "status.deliveries.lastDeliveryID"
        )
    raise AnnotationError(f"{REPLAY_ANNOTATION}: {_quote(text)} is not understood; {_USAGE}")


# Standard Webhooks secrets are "whsec_" + standard base64 of the key (the spec, and
# what its libraries in every language decode); hookline.receiver.auth reads them so.
STANDARD_WEBHOOKS_PREFIX = b"whsec_"


def encode_secret(raw: bytes, auth_type: str | None = None) -> bytes:
    """Random bytes as the text a caller pastes into its provider's settings.

    Like the operator's generated secrets (hookline.operator.handlers): URL-safe base64
    without padding (43 characters for 32 bytes), printable, no quoting needed anywhere.
    Standard Webhooks is the exception: its spec fixes the format, `whsec_<base64>`.
    """
    if auth_type == "standard-webhooks":
        return STANDARD_WEBHOOKS_PREFIX + base64.b64encode(raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def previous_key(key: str) -> str:
    return key + PREVIOUS_SECRET_SUFFIX


def rotate(
    data: Mapping[str, bytes],
    key: str,
    new_value: bytes,
    now: datetime,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> tuple[dict[str, bytes | None], dict[str, str | None]]:
    """The Secret's new data and annotations after rotating `key` to `new_value`.

    Both are JSON-merge-patch shaped: a None value deletes the key. The old value stays
    valid under `<key>.previous` until `now + overlap`; a previous value from an earlier
    rotation still in its window is replaced, because the receiver accepts at most two
    (callers that still hold the oldest secret have had one full rotation to move on).
    With no old value, or no overlap, nothing is kept.
    """
    if not new_value:
        raise ValueError("a rotated secret must not be empty")
    old = data.get(key)
    new_data: dict[str, bytes | None] = {k: v for k, v in data.items()}
    new_data[key] = new_value
    if old and old != new_value and overlap > timedelta(0):
        new_data[previous_key(key)] = old
        return new_data, {PREVIOUS_EXPIRES_ANNOTATION: format_time(now + overlap)}
    new_data[previous_key(key)] = None
    return new_data, {PREVIOUS_EXPIRES_ANNOTATION: None}


def previous_expires_at(secret_body: Mapping[str, Any]) -> datetime | None:
    """When the Secret's previous value stops being accepted; None when no window is
    recorded. A value that cannot be read counts as already expired: an old secret must
    never stay valid for ever because of a mangled annotation."""
    annotations = (secret_body.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(PREVIOUS_EXPIRES_ANNOTATION)
    if raw is None:
        return None
    try:
        return parse_time(str(raw))
    except AnnotationError:
        return datetime.min.replace(tzinfo=UTC)


def expired_previous(secret_body: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The merge patch that ends a rotation's overlap window once it is over: every
    `*.previous` key and the expiry annotation removed. None while the window is open,
    or when the Secret has no window."""
    expires = previous_expires_at(secret_body)
    if expires is None or now < expires:
        return None
    data = secret_body.get("data") or {}
    patch: dict[str, Any] = {"metadata": {"annotations": {PREVIOUS_EXPIRES_ANNOTATION: None}}}
    stale = {k: None for k in data if k.endswith(PREVIOUS_SECRET_SUFFIX)}
    if stale:
        patch["data"] = stale
    return patch
