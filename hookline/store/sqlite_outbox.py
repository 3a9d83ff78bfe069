"""The outbox of the SQLite store (one receiver replica, several dispatcher tasks).

Every write runs on the store's single writer thread, the one that commits ingest
batches, in its own BEGIN IMMEDIATE transaction: claims, finishes and replays are
serialized with each other and with the batches by that thread, and with any other
process on the file by SQLite's write lock. Finishes are group-committed like records
(many dispatcher tasks, one fsync per batch); each finish checks its own lease inside
the batch's transaction. Reads use the reader connection (WAL: never blocked by writes).
"""

from __future__ import annotations

import json
import sqlite3
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from hookline.store.base import Store, StoreUnavailable, as_utc, delivery_conditions, qmark
from hookline.store.groupcommit import GroupCommitter
from hookline.store.outbox import (
    Attempt,
    DestinationCounters,
    OutboxItem,
    OutboxRow,
    OutboxState,
    OutboxTask,
    Outcome,
    Replay,
    ReplaySelector,
)
from hookline.store.outbox_sql import (
    Finish,
    NewRow,
    ReplayPlan,
    latest_chain_in_state,
    lease_until,
    pending_counts,
    plan_finish,
    plan_replay,
    task_order,
)

T = TypeVar("T")
Row = tuple[Any, ...]

# Schema version 3.
MIGRATION: list[str] = [
    """CREATE TABLE IF NOT EXISTS outbox (
        id TEXT NOT NULL PRIMARY KEY,
        delivery_id TEXT NOT NULL,
        webhook TEXT NOT NULL,
        destination TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'delivered', 'failed', 'dead_lettered')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT,  -- NULL once settled
        claim_rank TEXT,  -- next_attempt_at - priority * AGING_SECONDS (outbox_sql)
        updated_at TEXT NOT NULL,
        lease_owner TEXT,
        lease_until TEXT,
        last_status INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        replay_id TEXT,
        body BLOB  -- a replay's modified body; NULL: the delivery's own
    )""",
    """CREATE INDEX IF NOT EXISTS outbox_claim
        ON outbox (claim_rank, next_attempt_at, id) WHERE state = 'pending'""",
    """CREATE INDEX IF NOT EXISTS outbox_delivery
        ON outbox (delivery_id, destination, created_at, id)""",
    """CREATE INDEX IF NOT EXISTS outbox_unsettled
        ON outbox (delivery_id) WHERE state IN ('failed', 'dead_lettered')""",
    """CREATE TABLE IF NOT EXISTS attempts (
        id TEXT NOT NULL PRIMARY KEY,
        task_id TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        destination TEXT NOT NULL,
        number INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        duration_ms REAL NOT NULL,
        status_code INTEGER,
        error TEXT NOT NULL DEFAULT '',
        response BLOB NOT NULL,
        outcome TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id, started_at, id)",
    """CREATE TABLE IF NOT EXISTS replays (
        id TEXT NOT NULL PRIMARY KEY,
        delivery_id TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        destinations TEXT NOT NULL,  -- JSON array of names
        body_modified INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS replays_delivery ON replays (delivery_id, requested_at, id)",
    # Maintained by every insert and finish: the stats endpoint reads it every few
    # seconds, and counting millions of delivered rows each time would not do.
    """CREATE TABLE IF NOT EXISTS destination_counters (
        webhook TEXT NOT NULL,
        destination TEXT NOT NULL,
        pending INTEGER NOT NULL DEFAULT 0,
        delivered INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        dead_lettered INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_error_at TEXT,
        PRIMARY KEY (webhook, destination)
    )""",
]

INSERT_ROW = """INSERT INTO outbox (id, delivery_id, webhook, destination, priority, state,
        attempts, created_at, next_attempt_at, claim_rank, updated_at, replay_id, body)
    VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6, ?7, ?6, ?8, ?9)"""
ADD_PENDING = """INSERT INTO destination_counters (webhook, destination, pending)
    VALUES (?, ?, ?)
    ON CONFLICT (webhook, destination) DO UPDATE SET pending = pending + excluded.pending"""
ROW_COLUMNS = (
    "id, delivery_id, webhook, destination, state, priority, attempts, created_at, "
    "next_attempt_at, updated_at, last_status, last_error, replay_id"
)
TASK_COLUMNS = (
    "id, delivery_id, webhook, destination, priority, attempts, created_at, "
    "next_attempt_at, replay_id, body"
)
ATTEMPT_COLUMNS = (
    "task_id, delivery_id, destination, number, started_at, duration_ms, status_code, "
    "error, response, outcome"
)
FINISH = """UPDATE outbox SET state = ?, attempts = attempts + ?, next_attempt_at = ?,
        claim_rank = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?,
        last_status = CASE WHEN ? THEN ? ELSE last_status END,
        last_error = CASE WHEN ? THEN ? ELSE last_error END
    WHERE id = ? AND lease_owner = ? AND attempts = ? AND state = 'pending'
    RETURNING webhook, destination"""
MOVE_COUNTERS = """INSERT INTO destination_counters (webhook, destination, pending,
        delivered, failed, dead_lettered, last_error, last_error_at)
    VALUES (?, ?, 0, ?, ?, ?, ?, ?)
    ON CONFLICT (webhook, destination) DO UPDATE SET
        pending = max(pending + ?, 0),  -- never below 0, whatever happened before
        delivered = delivered + excluded.delivered,
        failed = failed + excluded.failed,
        dead_lettered = dead_lettered + excluded.dead_lettered,
        last_error = CASE WHEN excluded.last_error IS NOT NULL AND (last_error_at IS NULL
            OR excluded.last_error_at >= last_error_at)
            THEN excluded.last_error ELSE last_error END,
        last_error_at = CASE WHEN excluded.last_error IS NOT NULL AND (last_error_at IS NULL
            OR excluded.last_error_at >= last_error_at)
            THEN excluded.last_error_at ELSE last_error_at END"""
# The deliveries purge may take: expired, and no row still pending (see purge_chunk).
PURGEABLE = """SELECT id FROM deliveries d WHERE expires_at < ?
    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id AND o.state = 'pending')
    LIMIT ?"""


def refused_index_hint(status: str | None, webhook: str | None, *, alias: str = "") -> list[str]:
    """For one Webhook's refusals, the condition of the partial index that holds them
    (migration 5): SQLite uses a partial index only when the query states its WHERE
    term, and cannot infer it from "status = ?" with the value bound later. Without a
    Webhook the index gives no order (it leads with the webhook), and with statistics
    SQLite would scan it and sort: deliveries_newest, filtered, is the better plan."""
    if status is None or status == "accepted" or webhook is None:
        return []
    return [f"{alias}.status <> 'accepted'" if alias else "status <> 'accepted'"]


def ts(moment: datetime | None) -> str | None:
    """Fixed-width UTC text, so that text order is time order (isoformat() drops the
    microseconds when they are zero, which would break that)."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = as_utc(moment)
    # The same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ") or isoformat(), for half the
    # cost of isoformat in the ingest benchmark (two calls per record).
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 (faster than f-string)
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
    )


def parse_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _at(text: str) -> datetime:
    moment = parse_ts(text)
    assert moment is not None
    return moment


def insert_rows(conn: sqlite3.Connection, rows: Sequence[NewRow]) -> None:
    """Inside the caller's transaction: the rows, and +1 pending per row."""
    if not rows:
        return
    conn.executemany(
        INSERT_ROW,
        [
            (r.id, r.delivery_id, r.webhook, r.destination, r.priority, ts(r.created_at),
             ts(r.claim_rank), r.replay_id, r.body)
            for r in rows
        ],
    )  # fmt: skip
    conn.executemany(ADD_PENDING, pending_counts(rows))


def purge_chunk(conn: sqlite3.Connection, cutoff: str | None, limit: int) -> int:
    """Inside the caller's transaction: delete up to `limit` expired deliveries with their
    outbox rows, attempts and replays; returns how many. A delivery with a row still
    pending is kept until that row settles (delivered, failed or dead-lettered, which
    the retry window bounds): its destinations still need its body. Settled rows leave
    the counters as they are: those count since the store was created."""
    ids = [row[0] for row in conn.execute(PURGEABLE, (cutoff, limit))]
    if ids:
        chosen = json.dumps(ids)
        for table, column in (
            ("attempts", "delivery_id"),
            ("replays", "delivery_id"),
            ("outbox", "delivery_id"),
            ("deliveries", "id"),
        ):
            conn.execute(
                f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                (chosen,),
            )
    return len(ids)


class SQLiteOutboxStore(Store):
    """The outbox half of SQLiteStore, which provides the connections."""

    _finisher: GroupCommitter[Finish, bool] | None = None

    @abstractmethod
    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]: ...

    @abstractmethod
    async def _write(self, fn: Callable[[sqlite3.Connection, Any], T], arg: Any) -> T: ...

    def _start_outbox(self) -> None:
        self._finisher = GroupCommitter(self._finish_batch, name="sqlite-outbox-finish")
        self._finisher.start()

    async def _stop_outbox(self) -> None:
        finisher, self._finisher = self._finisher, None
        if finisher is not None:
            await finisher.close()

    async def claim_tasks(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        skip: Collection[tuple[str, str]] = (),
    ) -> list[OutboxTask]:
        until = lease_until(now, lease_seconds)
        if limit < 1:
            return []
        return await self._write(_claim, (owner, ts(now), ts(until), limit, list(skip)))

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
        plan = plan_finish(task, owner, outcome, now, attempt, next_attempt_at)
        if self._finisher is None:
            raise StoreUnavailable("the store is not open")
        return await self._finisher.submit(plan)

    async def _finish_batch(self, plans: list[Finish]) -> list[bool]:
        return await self._write(_finish, plans)

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
        plan = plan_replay(delivery_id, destinations, requested_by, reason, now, body, max_replays)
        return await self._write(_replay, plan)

    async def outbox_rows(self, delivery_id: str) -> list[OutboxRow]:
        rows = await self._read(
            f"""SELECT {ROW_COLUMNS} FROM outbox WHERE delivery_id = ?
                ORDER BY created_at, id""",
            (delivery_id,),
        )
        return [
            OutboxRow(
                id=r[0],
                delivery_id=r[1],
                webhook=r[2],
                destination=r[3],
                state=cast(OutboxState, r[4]),
                priority=r[5],
                attempts=r[6],
                created_at=_at(r[7]),
                next_attempt_at=parse_ts(r[8]),
                updated_at=_at(r[9]),
                last_status=r[10],
                last_error=r[11],
                replay_id=r[12],
            )
            for r in rows
        ]

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        rows = await self._read(
            f"""SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ?
                ORDER BY started_at, id""",
            (delivery_id,),
        )
        return [
            Attempt(
                task_id=r[0],
                delivery_id=r[1],
                destination=r[2],
                number=r[3],
                started_at=_at(r[4]),
                duration_ms=r[5],
                status_code=r[6],
                error=r[7],
                response=bytes(r[8]),
                outcome=cast(Outcome, r[9]),
            )
            for r in rows
        ]

    async def replays(self, delivery_id: str) -> list[Replay]:
        rows = await self._read(
            """SELECT id, delivery_id, requested_at, requested_by, reason, destinations,
                body_modified FROM replays WHERE delivery_id = ? ORDER BY requested_at, id""",
            (delivery_id,),
        )
        return [
            Replay(r[0], r[1], _at(r[2]), r[3], r[4], tuple(json.loads(r[5])), bool(r[6]))
            for r in rows
        ]

    async def select_for_replay(self, selector: ReplaySelector) -> list[str]:
        where: list[str] = []
        params: list[Any] = []
        where += delivery_conditions(selector, qmark(params), alias="d", moment=ts)
        where += refused_index_hint(selector.status, selector.webhook, alias="d")
        if selector.destination_state is not None:
            one = selector.destination is not None
            where.append(latest_chain_in_state(selector, "d.id", "?" if one else None))
            if one:
                params.append(selector.destination)
        elif selector.destination is not None:
            where.append(
                "EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id AND o.destination = ?)"
            )
            params.append(selector.destination)
        sql = "SELECT d.id FROM deliveries d"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY d.received_at DESC, d.id DESC LIMIT ?"
        return [r[0] for r in await self._read(sql, (*params, max(0, selector.limit)))]

    async def destination_counters(self) -> dict[tuple[str, str], DestinationCounters]:
        rows = await self._read(
            """SELECT webhook, destination, pending, delivered, failed, dead_lettered,
                last_error, last_error_at FROM destination_counters"""
        )
        return {
            (r[0], r[1]): DestinationCounters(r[2], r[3], r[4], r[5], r[6], parse_ts(r[7]))
            for r in rows
        }


# Writer-thread jobs: each is one transaction on the writer connection.


def _claim(
    conn: sqlite3.Connection, args: tuple[str, str, str, int, list[Any]]
) -> list[OutboxTask]:
    owner, now, until, limit, skip = args
    sql = f"""SELECT {TASK_COLUMNS} FROM outbox
        WHERE state = 'pending' AND claim_rank <= ? AND next_attempt_at <= ?
            AND (lease_until IS NULL OR lease_until < ?)"""
    params: list[Any] = [now, now, now]
    if skip:
        sql += " AND (webhook, destination) NOT IN (VALUES " + ", ".join(["(?, ?)"] * len(skip))
        sql += ")"
        params += [part for pair in skip for part in pair]
    sql += " ORDER BY claim_rank, next_attempt_at, id LIMIT ?"
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(sql, (*params, limit)).fetchall()
        conn.executemany(
            "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id = ?",
            [(owner, until, r[0]) for r in rows],
        )
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    tasks = [
        OutboxTask(
            id=r[0],
            delivery_id=r[1],
            webhook=r[2],
            destination=r[3],
            priority=r[4],
            attempts=r[5],
            created_at=_at(r[6]),
            next_attempt_at=_at(r[7]),
            replay_id=r[8],
            body=None if r[9] is None else bytes(r[9]),
        )
        for r in rows
    ]
    return sorted(tasks, key=task_order)


def _finish(conn: sqlite3.Connection, plans: list[Finish]) -> list[bool]:
    results: list[bool] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for plan in plans:  # in order: a second finish of one task sees the first
            results.append(_finish_one(conn, plan))
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return results


def _finish_one(conn: sqlite3.Connection, p: Finish) -> bool:
    a = p.attempt
    tried = a is not None
    status = None if a is None else a.status_code
    error = "" if a is None else a.error
    found = conn.execute(
        FINISH,
        (p.state, p.attempts_added, ts(p.next_attempt_at), ts(p.claim_rank), ts(p.now),
         tried, status, tried, error, p.task_id, p.owner, p.attempts_before),
    ).fetchall()  # fmt: skip
    if not found:
        return False  # the lease is gone: another worker has (or had) the row
    webhook, destination = found[0]
    if a is not None:
        conn.execute(
            f"INSERT INTO attempts (id, {ATTEMPT_COLUMNS}) VALUES ({', '.join('?' * 11)})",
            (p.attempt_id, a.task_id, a.delivery_id, a.destination, a.number,
             ts(a.started_at), float(a.duration_ms), a.status_code, a.error, a.response,
             a.outcome),
        )  # fmt: skip
    if p.touches_counters:
        pending, delivered, failed, dead = p.counts
        conn.execute(
            MOVE_COUNTERS,
            (webhook, destination, delivered, failed, dead, p.error,
             ts(p.now) if p.error is not None else None, pending),
        )  # fmt: skip
    return True


def _replay(conn: sqlite3.Connection, plan: ReplayPlan) -> Replay:
    replay = plan.replay
    conn.execute("BEGIN IMMEDIATE")  # the write lock serializes replays: the cap holds
    try:
        found = conn.execute(
            "SELECT webhook FROM deliveries WHERE id = ?", (replay.delivery_id,)
        ).fetchone()
        if found is None:
            raise plan.unknown()
        count = conn.execute(
            "SELECT count(*) FROM replays WHERE delivery_id = ?", (replay.delivery_id,)
        ).fetchone()[0]
        refused = plan.over_cap(count)
        if refused is not None:
            raise refused
        conn.execute(
            """INSERT INTO replays (id, delivery_id, requested_at, requested_by, reason,
                destinations, body_modified) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (replay.id, replay.delivery_id, ts(replay.requested_at), replay.requested_by,
             replay.reason, json.dumps(list(replay.destinations)), replay.body_modified),
        )  # fmt: skip
        insert_rows(conn, plan.rows(found[0]))
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return replay


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one worth raising
