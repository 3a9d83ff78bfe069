"""What the SQLite and PostgreSQL outboxes share: every decision is made once, here, in
Python, so that both stores write the same rows, the same attempts and the same counters.

Claim order. A due row's effective priority is `priority + seconds overdue /
AGING_SECONDS` (hookline.store.outbox). Every row a claim may take is due, so "overdue"
is never negative and ordering by that value, highest first, is ordering by

    claim_rank = next_attempt_at - priority * AGING_SECONDS

lowest first: a row of priority p ranks as if it had been due p * AGING_SECONDS earlier.
`claim_rank` does not depend on the time of the claim, so it is a column, written with
next_attempt_at, and the claim is a range scan of an index on it rather than a sort of
every due row. (Stale only if AGING_SECONDS changes; then only the order of rows
written before the change is affected, and only until they are next retried.) A due row
has claim_rank <= next_attempt_at <= now, so `claim_rank <= now` bounds the scan: it
reads due rows and at most the rows falling due within the next 3 * AGING_SECONDS.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hookline.store.base import DeliveryRecord, as_utc, new_delivery_id
from hookline.store.outbox import (
    AGING_SECONDS,
    OUTBOX_STATES,
    Attempt,
    OutboxItem,
    OutboxState,
    OutboxTask,
    Outcome,
    Replay,
    ReplayRefused,
    ReplaySelector,
)

RESPONSE_BYTES = 1024  # of an answer's body kept with its attempt
OUTCOMES: tuple[Outcome, ...] = ("delivered", "retry", "failed", "dead_lettered", "deferred")
_SETTLED: dict[Outcome, OutboxState] = {
    "delivered": "delivered",
    "failed": "failed",
    "dead_lettered": "dead_lettered",
}
_STATE_COLUMN = {"delivered": 1, "failed": 2, "dead_lettered": 3}  # in Finish.counts


def claim_rank(due: datetime, priority: int) -> datetime:
    return as_utc(due) - timedelta(seconds=priority * AGING_SECONDS)


def task_order(task: OutboxTask) -> tuple[datetime, datetime, str]:
    """The claim order of a task (a claim's UPDATE ... RETURNING has none)."""
    return (claim_rank(task.next_attempt_at, task.priority), task.next_attempt_at, task.id)


@dataclass(frozen=True)
class NewRow:
    """An outbox row to insert: pending, never tried, due at `created_at`."""

    id: str
    delivery_id: str
    webhook: str
    destination: str
    priority: int
    created_at: datetime  # UTC; also next_attempt_at and updated_at
    replay_id: str | None = None
    body: bytes | None = None

    @property
    def claim_rank(self) -> datetime:
        return claim_rank(self.created_at, self.priority)


def new_rows(record: DeliveryRecord) -> tuple[NewRow, ...]:
    """The outbox rows of a record, ids included. Built in the caller's task (on the
    event loop): new_delivery_id() keeps process-wide state and is not thread-safe."""
    if not record.outbox:
        return ()
    if record.status != "accepted":
        raise ValueError(
            f"delivery {record.id} is {record.status}: only accepted deliveries have "
            "destinations to reach"
        )
    at = as_utc(record.received_at)
    return tuple(
        NewRow(new_delivery_id(), record.id, record.webhook, item.destination, item.priority, at)
        for item in record.outbox
    )


def pending_counts(rows: Iterable[NewRow]) -> list[tuple[str, str, int]]:
    """New pending rows per (webhook, destination), sorted so that replicas lock the
    counter rows in one order."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row.webhook, row.destination)
        counts[key] = counts.get(key, 0) + 1
    return [(webhook, destination, n) for (webhook, destination), n in sorted(counts.items())]


@dataclass(frozen=True)
class Finish:
    """What finish_task writes, decided before any SQL runs."""

    task_id: str
    owner: str
    attempts_before: int  # the row must still show this many: else someone else tried it
    state: OutboxState
    attempts_added: int
    next_attempt_at: datetime | None
    claim_rank: datetime | None
    now: datetime
    attempt: Attempt | None  # response cut to RESPONSE_BYTES, outcome = the outcome
    attempt_id: str | None
    # Moves between the destination's counters: (pending, delivered, failed,
    # dead_lettered), and the error to keep as its last one (None: keep the old one).
    counts: tuple[int, int, int, int]
    error: str | None

    @property
    def touches_counters(self) -> bool:
        return any(self.counts) or self.error is not None


def plan_finish(
    task: OutboxTask,
    owner: str,
    outcome: Outcome,
    now: datetime,
    attempt: Attempt | None,
    next_attempt_at: datetime | None,
) -> Finish:
    """Raise ValueError for a finish that makes no sense, before anything is written."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    if attempt is not None:
        if (attempt.task_id, attempt.delivery_id, attempt.destination) != (
            task.id,
            task.delivery_id,
            task.destination,
        ):
            raise ValueError(f"attempt of {attempt.task_id} given to finish task {task.id}")
        if outcome == "deferred":
            raise ValueError("a deferred row was not tried: finish it without an attempt")
        attempt = replace(
            attempt,
            started_at=as_utc(attempt.started_at),
            response=bytes(attempt.response[:RESPONSE_BYTES]),
            outcome=outcome,
        )
    now = as_utc(now)
    if outcome in ("retry", "deferred"):
        if next_attempt_at is None:
            raise ValueError(f"outcome {outcome!r} needs next_attempt_at")
        due: datetime | None = as_utc(next_attempt_at)
        state: OutboxState = "pending"
        # A retry is a try, recorded or not; a deferral is not.
        added = 1 if outcome == "retry" else 0
    else:
        due = None
        state = _SETTLED[outcome]
        added = 0 if attempt is None else 1
    counts = [0, 0, 0, 0]
    if state != "pending":
        counts[0] = -1
        counts[_STATE_COLUMN[state]] = 1
    error = None
    if attempt is not None and outcome != "delivered":
        error = attempt.error or (
            "no answer" if attempt.status_code is None else f"HTTP {attempt.status_code}"
        )
    return Finish(
        task_id=task.id,
        owner=owner,
        attempts_before=task.attempts,
        state=state,
        attempts_added=added,
        next_attempt_at=due,
        claim_rank=None if due is None else claim_rank(due, task.priority),
        now=now,
        attempt=attempt,
        attempt_id=None if attempt is None else new_delivery_id(),
        counts=(counts[0], counts[1], counts[2], counts[3]),
        error=error,
    )


def lease_until(now: datetime, lease_seconds: float) -> datetime:
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")
    return as_utc(now) + timedelta(seconds=lease_seconds)


@dataclass(frozen=True)
class ReplayPlan:
    """A replay and its rows' ids, made in the caller's task; the Webhook (for the rows)
    is read from the delivery inside the transaction."""

    replay: Replay
    items: tuple[OutboxItem, ...]
    row_ids: tuple[str, ...]
    body: bytes | None
    max_replays: int

    def rows(self, webhook: str) -> list[NewRow]:
        return [
            NewRow(
                row_id,
                self.replay.delivery_id,
                webhook,
                item.destination,
                item.priority,
                self.replay.requested_at,
                self.replay.id,
                self.body,
            )
            for row_id, item in zip(self.row_ids, self.items, strict=True)
        ]

    def unknown(self) -> ReplayRefused:
        return ReplayRefused(f"no delivery {self.replay.delivery_id} is kept")

    def over_cap(self, count: int) -> ReplayRefused | None:
        if count < self.max_replays:
            return None
        return ReplayRefused(
            f"delivery {self.replay.delivery_id} was replayed {count} times already "
            f"(limit {self.max_replays})"
        )


def plan_replay(
    delivery_id: str,
    destinations: Collection[OutboxItem],
    requested_by: str,
    reason: str,
    now: datetime,
    body: bytes | None,
    max_replays: int,
) -> ReplayPlan:
    items: dict[str, OutboxItem] = {}
    for item in destinations:
        items.setdefault(item.destination, item)  # one new chain per destination
    if not items:
        raise ReplayRefused(f"delivery {delivery_id}: no destination to replay to")
    replay = Replay(
        id=new_delivery_id(),
        delivery_id=delivery_id,
        requested_at=as_utc(now),
        requested_by=requested_by,
        reason=reason,
        destinations=tuple(items),
        body_modified=body is not None,
    )
    row_ids = tuple(new_delivery_id() for _ in items)
    return ReplayPlan(replay, tuple(items.values()), row_ids, body, max_replays)


def latest_chain_in_state(selector: ReplaySelector, delivery: str, param: str | None) -> str:
    """SQL: delivery `delivery` has a destination whose latest chain (newest outbox row
    for that destination) is in selector.destination_state; `param` is the placeholder
    of selector.destination, None for any destination. The state is validated and
    written as a literal, so a partial index on unsettled states can serve the query."""
    state = selector.destination_state
    if state not in OUTBOX_STATES:
        raise ValueError(f"unknown destination state {state!r}")
    return f"""EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = {delivery}
            AND o.state = '{state}'{"" if param is None else f" AND o.destination = {param}"}
            AND NOT EXISTS (SELECT 1 FROM outbox n WHERE n.delivery_id = o.delivery_id
                AND n.destination = o.destination
                AND (n.created_at, n.id) > (o.created_at, o.id)))"""
