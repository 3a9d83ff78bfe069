"""The transactional outbox (issue 5): what the store keeps so that every accepted
delivery reaches each of its destinations at least once.

The commit that accepts a delivery also writes one outbox row per matching destination
(`DeliveryRecord.outbox`), so an acknowledged delivery can never lack its rows.
Dispatch workers claim due rows under a lease (with PostgreSQL, several receiver
replicas share the outbox and a row is never handed to two workers at once), try the
destination, and finish the row: delivered, retried later, failed, or dead-lettered.
Every try is kept as an attempt. A replay is a new row (a new attempt chain) linked to
the original delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# Webhook spec.priority as a number: higher goes first when workers are scarce.
PRIORITIES = {"low": 0, "normal": 1, "high": 2, "critical": 3}

# How long a due row waits before it counts as one priority level higher, so that a
# steady stream of critical work cannot starve low priority for ever: a low row that
# has been due for 3 x AGING_SECONDS ranks with fresh critical rows.
AGING_SECONDS = 30.0

OutboxState = Literal["pending", "delivered", "failed", "dead_lettered"]
OUTBOX_STATES: tuple[OutboxState, ...] = ("pending", "delivered", "failed", "dead_lettered")

# How a worker finishes a claimed row:
#   delivered      the destination answered 2xx
#   retry          try again at next_attempt_at (408/429/5xx/network error), attempts + 1
#   failed         a 4xx other than 408/429: trying again will not help
#   dead_lettered  out of retries (max age, max attempts or schedule): kept, replayable
#   deferred       not tried (breaker open, destination suspended): due again at
#                  next_attempt_at, attempts unchanged
Outcome = Literal["delivered", "retry", "failed", "dead_lettered", "deferred"]


@dataclass(frozen=True)
class OutboxItem:
    """One destination an accepted delivery must reach; written in the accept commit."""

    destination: str  # the destination's name within the Webhook
    priority: int = PRIORITIES["normal"]


@dataclass(frozen=True)
class OutboxTask:
    """A claimed outbox row: the worker holding the lease tries it, then finishes it."""

    id: str
    delivery_id: str
    webhook: str  # <namespace>/<name>
    destination: str
    priority: int
    attempts: int  # tries made before this one
    created_at: datetime  # when this attempt chain began: retry windows count from it
    next_attempt_at: datetime
    replay_id: str | None = None  # the replay that made this chain, if any
    body: bytes | None = None  # a replay's modified body; None: the delivery's own


@dataclass(frozen=True)
class Attempt:
    """One try of one outbox row."""

    task_id: str
    delivery_id: str
    destination: str
    number: int  # 1 for the first try of a chain
    started_at: datetime
    duration_ms: float
    status_code: int | None  # None: no HTTP answer (connection refused, timeout, ...)
    error: str = ""  # what went wrong, for a person
    response: bytes = b""  # the first KiB of the answer's body
    outcome: Outcome = "delivered"


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row as the admin API shows it."""

    id: str
    delivery_id: str
    webhook: str
    destination: str
    state: OutboxState
    priority: int
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    updated_at: datetime
    last_status: int | None = None
    last_error: str = ""
    replay_id: str | None = None


@dataclass(frozen=True)
class Replay:
    """An audited request to send a delivery again (issue 5)."""

    id: str
    delivery_id: str
    requested_at: datetime
    requested_by: str
    reason: str
    destinations: tuple[str, ...]
    body_modified: bool = False


class ReplayRefused(Exception):
    """A replay that must not happen: the cap is reached or the delivery is unknown."""


@dataclass
class DestinationCounters:
    """Outbox rows of one destination by state, since the store was created."""

    pending: int = 0
    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None


@dataclass(frozen=True)
class ReplaySelector:
    """Which deliveries a batch replay takes (POST /api/v1/replays)."""

    webhook: str | None = None
    status: str | None = None  # delivery status: accepted | rejected | filtered
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    destination_state: OutboxState | None = None  # e.g. dead_lettered, failed
    destination: str | None = None
    limit: int = 1000
