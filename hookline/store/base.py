"""The delivery log's interface, shared by the SQLite and PostgreSQL stores.

Every request that reaches a route leaves a `DeliveryRecord` (DESIGN: "the path of one
webhook"). `Store.record()` returns only once the record is committed durably, so the
receiver can answer 2xx after it and never before; concurrent calls are batched into
one transaction (group commit) so durability does not cost one transaction each.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from .outbox import (
    Attempt,
    DestinationCounters,
    OutboxItem,
    OutboxRow,
    OutboxTask,
    Outcome,
    Replay,
    ReplaySelector,
)

DeliveryStatus = Literal["accepted", "rejected", "filtered"]
STATUSES: tuple[DeliveryStatus, ...] = ("accepted", "rejected", "filtered")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_last_id = (0, 0)  # (milliseconds, random part) of the id handed out last


def new_delivery_id(now: float | None = None) -> str:
    """A monotonic ULID: 48-bit millisecond time + 80 random bits, Crockford base32.

    Sortable by time, so ids read in the order deliveries arrived, and unique across
    receiver replicas without coordination. Within one process ids strictly increase,
    even for deliveries stamped with the same millisecond (the ULID spec's monotonic
    mode), so newest-first listings keep arrival order.
    """
    global _last_id
    millis = int((time.time() if now is None else now) * 1000)
    last_millis, last_random = _last_id
    if millis <= last_millis:
        millis, random_part = last_millis, last_random + 1
    else:
        random_part = int.from_bytes(os.urandom(10), "big") >> 1  # room to count up
    _last_id = (millis, random_part)
    value = (millis << 80) | random_part
    return encode_ulid(value)


# Every pair of Crockford digits, indexed by the 10 bits they encode.
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_PAIR_SHIFTS = tuple(range(120, -1, -10))


def encode_ulid(value: int) -> str:
    """128 bits as 26 Crockford base32 characters (130 bits, the top two zero).

    Thirteen lookups of two digits each: a third of the cost of base64.b32encode,
    which Python 3.11 runs as a Python loop (the ingest path makes one id a request).
    """
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


@dataclass(frozen=True)
class Tally:
    """One count a delivery adds to an EventFilter or EventType (issue 4), committed
    with the delivery itself, so a duplicate (never stored) is never counted."""

    kind: str  # "EventFilter" | "EventType"
    key: str  # "<namespace>/<name>"
    counter: str  # evaluated | matched | dropped | validated | invalid
    error: str | None = None  # with "invalid": the validation error, kept as the last


@dataclass
class ResourceCounters:
    """Counters of one EventFilter or EventType since the store was created."""

    counts: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    last_error_at: datetime | None = None


# Not frozen: a frozen dataclass sets each of these 17 fields through
# object.__setattr__, which made building the record one of the ingest path's larger
# costs (issue 3's benchmark). Records are built once and not changed afterwards.
@dataclass(slots=True)
class DeliveryRecord:
    """One request that reached a route, accepted or not."""

    id: str
    webhook: str  # "<namespace>/<name>"
    received_at: datetime  # timezone-aware, UTC
    status: DeliveryStatus
    http_status: int  # what the caller was answered
    reason: str = ""  # stable error code ("bad_signature", ...); "" when accepted
    message: str = ""  # what a human reads
    event_type: str | None = None
    source_ip: str = ""
    user_agent: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # credentials already redacted
    body: bytes | None = None  # None when not kept (413: the body was never read whole)
    processing_ms: float = 0.0
    # The sender's id for this delivery (X-GitHub-Delivery, webhook-id, idempotency
    # key). Only accepted and filtered records hold one: a refused request must not
    # make a later genuine delivery look like a duplicate.
    dedup_key: str | None = None
    # When the record may be purged: received_at + the Webhook's spec.retention.
    expires_at: datetime | None = None
    # Counts for EventFilters and EventTypes; not columns of the record.
    tallies: tuple[Tally, ...] = ()
    # Destinations an accepted delivery goes to: outbox rows written in the same
    # transaction as the record (issue 5). Not written for a duplicate.
    outbox: tuple[OutboxItem, ...] = ()


def headers_json(headers: Mapping[str, str]) -> str:
    """A record's headers as compact JSON text, for the stores' headers column."""
    try:
        # orjson: a tenth of json.dumps's cost, once per record. OPT_NON_STR_KEYS
        # because aiohttp's header names are multidict's istr, a str subclass.
        return orjson.dumps(headers, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        # A header value that was not UTF-8 (aiohttp keeps its bytes as lone
        # surrogates, which orjson refuses): the standard encoder escapes them.
        return json.dumps(headers, separators=(",", ":"))


@dataclass(frozen=True)
class RecordResult:
    """What `Store.record` did: stored `id`, or found `id` was stored before."""

    id: str
    duplicate: bool = False


@dataclass(frozen=True)
class DeliveryQuery:
    webhook: str | None = None
    status: DeliveryStatus | None = None
    event_type: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    q: str | None = None  # substring of id, dedup key, reason, message or body
    limit: int = 50
    cursor: str | None = None  # from a previous page's `next`


@dataclass
class WebhookCounters:
    """Counters kept per Webhook since the store was created (monotonic)."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    filtered: int = 0
    last_received_at: datetime | None = None
    last_delivery_id: str | None = None
    last_error: str | None = None  # "<reason>: <message>" of the last refusal


class StoreUnavailable(Exception):
    """The store cannot commit or answer now; the receiver answers 503 (never a 2xx)."""


class CorruptRecord(Exception):
    """A kept delivery cannot be read back as it was received (its stored body does
    not decode). Retrying will not help, unlike StoreUnavailable: the admin API answers
    500 with the reason, replays refuse it, and the dispatcher fails its rows."""


def encode_cursor(received_at: datetime, delivery_id: str) -> str:
    raw = f"{received_at.astimezone(UTC).isoformat()}|{delivery_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raise ValueError for a cursor this store did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, delivery_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), delivery_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"cursor {cursor!r} is not one this API handed out") from exc


class Store(ABC):
    """The delivery log. Implementations: SQLiteStore, PostgresStore."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if missing (idempotent)."""

    @abstractmethod
    async def close(self) -> None:
        """Commit what is queued, then disconnect."""

    @abstractmethod
    async def record(self, record: DeliveryRecord) -> RecordResult:
        """Store durably; returns after the commit. A record whose (webhook, dedup_key)
        is already stored is not stored again: the result names the original id.
        Raises StoreUnavailable when the commit fails."""

    @abstractmethod
    async def get(self, delivery_id: str) -> DeliveryRecord | None: ...

    @abstractmethod
    async def find_duplicate(self, webhook: str, dedup_key: str) -> str | None:
        """The id of the delivery stored for (webhook, dedup_key), the one `record` would
        answer a duplicate with, or None. Lets the receiver answer a resent delivery
        200 duplicate even when it refuses new ones (issue 11 §4: a full backlog)."""

    @abstractmethod
    async def list(self, query: DeliveryQuery) -> tuple[list[DeliveryRecord], str | None]:
        """Newest first; the second item is the cursor of the next page, or None."""

    @abstractmethod
    async def counters(self) -> dict[str, WebhookCounters]:
        """Per-Webhook counters, kept up to date in the same transaction as the records."""

    @abstractmethod
    async def resource_counters(self) -> dict[tuple[str, str], ResourceCounters]:
        """(kind, key) -> counters of each EventFilter and EventType, kept in the same
        transaction as the records."""

    @abstractmethod
    async def purge_expired(self, now: datetime) -> int:
        """Delete records whose expires_at has passed; returns how many."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now (for /readyz)."""

    # --- the outbox (issue 5; see hookline.store.outbox) ---

    @abstractmethod
    async def claim_tasks(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        skip: Collection[tuple[str, str]] = (),
    ) -> builtins.list[OutboxTask]:
        """Lease up to `limit` pending rows due at `now` to `owner`, highest effective
        priority first (priority + seconds overdue / AGING_SECONDS), then oldest due.
        Rows whose lease is held by another owner and has not expired are never handed
        out; rows of (webhook, destination) pairs in `skip` (breaker open, suspended)
        are left alone."""

    @abstractmethod
    async def finish_task(
        self,
        task: OutboxTask,
        owner: str,
        outcome: Outcome,
        *,
        now: datetime,
        attempt: Attempt | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Record the outcome (and the attempt) and release the lease, in one
        transaction. Returns False, changing nothing, if `owner` no longer holds the
        lease (it expired and another worker took the row)."""

    @abstractmethod
    async def outbox_rows(self, delivery_id: str) -> builtins.list[OutboxRow]:
        """Every outbox row (attempt chain) of a delivery, oldest first."""

    @abstractmethod
    async def attempts(self, delivery_id: str) -> builtins.list[Attempt]:
        """Every attempt of every chain of a delivery, oldest first."""

    @abstractmethod
    async def replays(self, delivery_id: str) -> builtins.list[Replay]:
        """The replays requested for a delivery, oldest first."""

    @abstractmethod
    async def replay(
        self,
        delivery_id: str,
        *,
        destinations: Collection[OutboxItem],
        requested_by: str,
        reason: str,
        now: datetime,
        body: bytes | None = None,
        max_replays: int = 5,
    ) -> Replay:
        """Start a new attempt chain per destination, linked to the delivery and
        audited, in one transaction. Raises ReplayRefused when the delivery is not kept
        or already has `max_replays` replays (so replays cannot loop)."""

    @abstractmethod
    async def select_for_replay(self, selector: ReplaySelector) -> builtins.list[str]:
        """Delivery ids a batch replay takes, newest first, at most selector.limit."""

    @abstractmethod
    async def destination_counters(self) -> dict[tuple[str, str], DestinationCounters]:
        """(webhook, destination) -> outbox rows by state, and the last error."""

    # --- the configuration a push-mode receiver was last given (issue 6 review) ---

    @abstractmethod
    async def save_config(self, version: str, nonce: bytes, ciphertext: bytes) -> None:
        """Keep the sealed configuration (hookline.receiver.sealed), replacing the one
        kept: there is one row per database, so with PostgreSQL a replica that starts
        later reads the one saved last by any replica. Raises StoreUnavailable."""

    @abstractmethod
    async def load_config(self) -> tuple[str, bytes, bytes] | None:
        """(version, nonce, ciphertext) as last saved, or None if nothing is kept."""


# Helpers shared by the implementations (not part of the Store interface).

MAX_PAGE = 500


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC. A naive datetime is refused: its zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} has no timezone")
    return moment.astimezone(UTC)


def page_limit(limit: int) -> int:
    return max(1, min(MAX_PAGE, limit))


@dataclass
class CounterDelta:
    """What one committed batch adds to one Webhook's counters."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    filtered: int = 0
    last_received_at: datetime | None = None
    last_delivery_id: str = ""
    last_error_at: datetime | None = None
    last_error_id: str = ""
    last_error: str | None = None


def counter_deltas(records: list[DeliveryRecord]) -> dict[str, CounterDelta]:
    """Aggregate the stored (not duplicate) records of a batch per Webhook, so that a
    batch costs one counter upsert per Webhook, not one per record. "Newest" is by
    (received_at, id), the listing order."""
    deltas: dict[str, CounterDelta] = {}
    for record in records:
        delta = deltas.setdefault(record.webhook, CounterDelta())
        delta.received += 1
        if record.status == "accepted":
            delta.accepted += 1
        elif record.status == "rejected":
            delta.rejected += 1
        else:
            delta.filtered += 1
        at = record.received_at
        if at.tzinfo is not UTC:  # the receiver's are UTC already
            at = as_utc(at)
        if delta.last_received_at is None or (at, record.id) > (
            delta.last_received_at,
            delta.last_delivery_id,
        ):
            delta.last_received_at, delta.last_delivery_id = at, record.id
        if record.status == "rejected" and (
            delta.last_error_at is None
            or (at, record.id) > (delta.last_error_at, delta.last_error_id)
        ):
            delta.last_error_at, delta.last_error_id = at, record.id
            delta.last_error = f"{record.reason}: {record.message}"
    return deltas


@dataclass
class ResourceDeltas:
    """What one committed batch adds to the EventFilter/EventType counters."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # (kind, key) -> (received_at, record id, error) of the newest error in the batch.
    errors: dict[tuple[str, str], tuple[datetime, str, str]] = field(default_factory=dict)


def resource_deltas(records: list[DeliveryRecord]) -> ResourceDeltas:
    """Aggregate the tallies of a batch's stored records, sorted so that replicas lock
    counter rows in one order."""
    deltas = ResourceDeltas()
    for record in records:
        for tally in record.tallies:
            key = (tally.kind, tally.key, tally.counter)
            deltas.counts[key] = deltas.counts.get(key, 0) + 1
            if tally.error is not None:
                at = as_utc(record.received_at)
                newest = deltas.errors.get((tally.kind, tally.key))
                if newest is None or (at, record.id) > newest[:2]:
                    deltas.errors[(tally.kind, tally.key)] = (at, record.id, tally.error)
    deltas.counts = dict(sorted(deltas.counts.items()))
    deltas.errors = dict(sorted(deltas.errors.items()))
    return deltas


def delivery_conditions(
    query: DeliveryQuery | ReplaySelector,
    param: Callable[[Any], str],
    *,
    alias: str = "",
    moment: Callable[[datetime], Any] = as_utc,
) -> builtins.list[str]:
    """WHERE conditions on deliveries that listing and batch replay share: webhook,
    status, event type and the received_at window (since inclusive, until exclusive).

    `param(value)` keeps the value and returns its placeholder ("?" or "$n");
    `moment` turns a time into what the store compares received_at with.
    """
    column = f"{alias}." if alias else ""
    where = [
        f"{column}{name} = {param(value)}"
        for name, value in (
            ("webhook", query.webhook),
            ("status", query.status),
            ("event_type", query.event_type),
        )
        if value is not None
    ]
    if query.since is not None:
        where.append(f"{column}received_at >= {param(moment(query.since))}")
    if query.until is not None:
        where.append(f"{column}received_at < {param(moment(query.until))}")
    return where


def qmark(params: builtins.list[Any]) -> Callable[[Any], str]:
    """A `param` for delivery_conditions with SQLite's "?" placeholders."""

    def param(value: Any) -> str:
        params.append(value)
        return "?"

    return param
