"""The outbox of the PostgreSQL store, shared by several receiver replicas.

A claim is one statement: a subquery picks due rows in claim order `FOR UPDATE SKIP
LOCKED` and the UPDATE around it leases them. A row another claim has locked is
skipped, not waited for; a row another claim leased and committed meanwhile is
re-checked under its lock (READ COMMITTED re-evaluates the WHERE clause on the newest
version) and dropped, because its lease is now held. So no row is ever handed to two
workers at once. A finish is one statement too (data-modifying CTEs: the row, the
attempt, the counters), applied only while the finishing worker still holds the lease.
A replay locks its delivery's row, so replays of one delivery run one at a time and the
cap holds across replicas.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import asyncpg

from hookline.store.base import Store, StoreUnavailable, as_utc, delivery_conditions
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
    NewRow,
    latest_chain_in_state,
    lease_until,
    pending_counts,
    plan_finish,
    plan_replay,
    task_order,
)

# Schema version 3.
MIGRATION: list[str] = [
    """CREATE TABLE IF NOT EXISTS outbox (
        id text COLLATE "C" NOT NULL PRIMARY KEY,
        delivery_id text COLLATE "C" NOT NULL,
        webhook text NOT NULL,
        destination text NOT NULL,
        priority integer NOT NULL,
        state text NOT NULL
            CHECK (state IN ('pending', 'delivered', 'failed', 'dead_lettered')),
        attempts integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL,
        next_attempt_at timestamptz,  -- NULL once settled
        claim_rank timestamptz,  -- next_attempt_at - priority * AGING_SECONDS (outbox_sql)
        updated_at timestamptz NOT NULL,
        lease_owner text,
        lease_until timestamptz,
        last_status integer,
        last_error text NOT NULL DEFAULT '',
        replay_id text COLLATE "C",
        body bytea,  -- a replay's modified body; NULL: the delivery's own
        CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL AND claim_rank IS NOT NULL))
    )""",
    """CREATE INDEX IF NOT EXISTS outbox_claim
        ON outbox (claim_rank, next_attempt_at, id) WHERE state = 'pending'""",
    """CREATE INDEX IF NOT EXISTS outbox_delivery
        ON outbox (delivery_id, destination, created_at, id)""",
    """CREATE INDEX IF NOT EXISTS outbox_unsettled
        ON outbox (delivery_id) WHERE state IN ('failed', 'dead_lettered')""",
    """CREATE TABLE IF NOT EXISTS attempts (
        id text COLLATE "C" NOT NULL PRIMARY KEY,
        task_id text COLLATE "C" NOT NULL,
        delivery_id text COLLATE "C" NOT NULL,
        destination text NOT NULL,
        number integer NOT NULL,
        started_at timestamptz NOT NULL,
        duration_ms double precision NOT NULL,
        status_code integer,
        error text NOT NULL DEFAULT '',
        response bytea NOT NULL,
        outcome text NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id, started_at, id)",
    """CREATE TABLE IF NOT EXISTS replays (
        id text COLLATE "C" NOT NULL PRIMARY KEY,
        delivery_id text COLLATE "C" NOT NULL,
        requested_at timestamptz NOT NULL,
        requested_by text NOT NULL,
        reason text NOT NULL,
        destinations jsonb NOT NULL,
        body_modified boolean NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS replays_delivery ON replays (delivery_id, requested_at, id)",
    # Maintained by every insert and finish: the stats endpoint reads it every few
    # seconds, and counting millions of delivered rows each time would not do.
    """CREATE TABLE IF NOT EXISTS destination_counters (
        webhook text NOT NULL,
        destination text NOT NULL,
        pending bigint NOT NULL DEFAULT 0,
        delivered bigint NOT NULL DEFAULT 0,
        failed bigint NOT NULL DEFAULT 0,
        dead_lettered bigint NOT NULL DEFAULT 0,
        last_error text,
        last_error_at timestamptz,
        PRIMARY KEY (webhook, destination)
    )""",
]

INSERT_ROWS = """INSERT INTO outbox (id, delivery_id, webhook, destination, priority, state,
        attempts, created_at, next_attempt_at, claim_rank, updated_at, replay_id, body)
    SELECT id, delivery_id, webhook, destination, priority, 'pending', 0, created_at,
        created_at, claim_rank, created_at, replay_id, body
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
        $6::timestamptz[], $7::timestamptz[], $8::text[], $9::bytea[])
        AS r(id, delivery_id, webhook, destination, priority, created_at, claim_rank,
            replay_id, body)"""
# Sorted by (webhook, destination) in Python: replicas lock counter rows in one order.
ADD_PENDING = """INSERT INTO destination_counters AS c (webhook, destination, pending)
    SELECT webhook, destination, pending
    FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY
        AS u(webhook, destination, pending, ord)
    ORDER BY ord
    ON CONFLICT (webhook, destination) DO UPDATE SET pending = c.pending + EXCLUDED.pending"""

CLAIM = """WITH picked AS MATERIALIZED (
        SELECT id FROM outbox o
        WHERE state = 'pending' AND claim_rank <= $1 AND next_attempt_at <= $1
            AND (lease_until IS NULL OR lease_until < $1)
            AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[]) AS s(w, d)
                WHERE s.w = o.webhook AND s.d = o.destination)
        ORDER BY claim_rank, next_attempt_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox o SET lease_owner = $3, lease_until = $6
    FROM picked WHERE o.id = picked.id
    RETURNING o.id, o.delivery_id, o.webhook, o.destination, o.priority, o.attempts,
        o.created_at, o.next_attempt_at, o.replay_id, o.body"""

_NEWER_ERROR = "$23::text IS NOT NULL AND (c.last_error_at IS NULL OR $8 >= c.last_error_at)"
# One statement, so one transaction and one round trip. The row is locked first, then
# its counter row: the same order as everywhere else, so no deadlock.
FINISH = f"""WITH done AS (
        UPDATE outbox SET state = $4::text, attempts = attempts + $5::int,
            next_attempt_at = $6::timestamptz, claim_rank = $7::timestamptz,
            lease_owner = NULL, lease_until = NULL, updated_at = $8::timestamptz,
            last_status = CASE WHEN $9::bool THEN $10::int ELSE last_status END,
            last_error = CASE WHEN $9::bool THEN $11::text ELSE last_error END
        WHERE id = $1::text AND lease_owner = $2::text AND attempts = $3::int
            AND state = 'pending'
        RETURNING webhook, destination
    ), tried AS (
        INSERT INTO attempts (id, task_id, delivery_id, destination, number, started_at,
            duration_ms, status_code, error, response, outcome)
        SELECT $12::text, $1::text, $13::text, $14::text, $15::int, $16::timestamptz,
            $17::float8, $10::int, $11::text, $18::bytea, $25::text
        FROM done WHERE $9::bool
    ), counted AS (
        INSERT INTO destination_counters AS c (webhook, destination, delivered, failed,
            dead_lettered, last_error, last_error_at)
        SELECT webhook, destination, $20::bigint, $21::bigint, $22::bigint, $23::text,
            CASE WHEN $23::text IS NULL THEN NULL ELSE $8::timestamptz END
        FROM done WHERE $24::bool
        ON CONFLICT (webhook, destination) DO UPDATE SET
            pending = greatest(c.pending + $19::bigint, 0),  -- never below 0
            delivered = c.delivered + EXCLUDED.delivered,
            failed = c.failed + EXCLUDED.failed,
            dead_lettered = c.dead_lettered + EXCLUDED.dead_lettered,
            last_error = CASE WHEN {_NEWER_ERROR} THEN $23::text ELSE c.last_error END,
            last_error_at = CASE WHEN {_NEWER_ERROR} THEN $8 ELSE c.last_error_at END
    )
    SELECT count(*) FROM done"""

# A delivery purge may take is expired and has no row still pending (see purge).
PURGE_PICK = """SELECT id FROM deliveries d WHERE expires_at < $1
        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id
            AND o.state = 'pending')
    LIMIT $2 FOR UPDATE SKIP LOCKED"""
PURGE_DELETE = """WITH gone AS (
        DELETE FROM deliveries d WHERE id = ANY($1::text[])
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id
                AND o.state = 'pending')
        RETURNING id
    ), o AS (DELETE FROM outbox WHERE delivery_id IN (SELECT id FROM gone)),
    a AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone)),
    r AS (DELETE FROM replays WHERE delivery_id IN (SELECT id FROM gone))
    SELECT count(*) FROM gone"""

ROW_COLUMNS = (
    "id, delivery_id, webhook, destination, state, priority, attempts, created_at, "
    "next_attempt_at, updated_at, last_status, last_error, replay_id"
)
ATTEMPT_COLUMNS = (
    "task_id, delivery_id, destination, number, started_at, duration_ms, status_code, "
    "error, response, outcome"
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]  # generic in the stubs only

# What a lost, refused or timed-out connection raises; it becomes StoreUnavailable. (A
# session killed while idle in the pool can also surface as an InternalClientError.)
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


async def insert_rows(conn: Conn, rows: Sequence[NewRow]) -> None:
    """Inside the caller's transaction: the rows (one statement), and +1 pending per
    row (one more)."""
    if not rows:
        return
    await conn.execute(
        INSERT_ROWS,
        *zip(
            *[
                (r.id, r.delivery_id, r.webhook, r.destination, r.priority, r.created_at,
                 r.claim_rank, r.replay_id, r.body)
                for r in rows
            ],
            strict=True,
        ),
    )  # fmt: skip
    await conn.execute(ADD_PENDING, *zip(*pending_counts(rows), strict=True))


async def purge_chunk(conn: Conn, cutoff: datetime, limit: int) -> tuple[int, int]:
    """Inside the caller's transaction: (deliveries considered, deliveries deleted).

    A delivery with a row still pending is kept until the row settles (delivered,
    failed or dead-lettered, which the retry window bounds): its destinations still
    need its body. The candidates are locked first, so no replay of them can start;
    the delete is a new statement, hence a new snapshot (READ COMMITTED) that sees any
    replay committed before the lock was taken, and keeps its delivery."""
    ids = [r["id"] for r in await conn.fetch(PURGE_PICK, cutoff, limit)]
    if not ids:
        return 0, 0
    return len(ids), cast(int, await conn.fetchval(PURGE_DELETE, ids))


class PostgresOutboxStore(Store):
    """The outbox half of PostgresStore, which provides the pool."""

    _pool: asyncpg.Pool | None
    _force_sync_commit: bool

    @abstractmethod
    async def _call(self, method: str, sql: str, *args: Any) -> Any: ...

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
        rows = cast(
            list[asyncpg.Record],
            await self._call(
                "fetch",
                CLAIM,
                as_utc(now),
                limit,
                owner,
                [w for w, _ in skip],
                [d for _, d in skip],
                until,
            ),
        )
        tasks = [
            OutboxTask(
                id=r["id"],
                delivery_id=r["delivery_id"],
                webhook=r["webhook"],
                destination=r["destination"],
                priority=r["priority"],
                attempts=r["attempts"],
                created_at=r["created_at"],
                next_attempt_at=r["next_attempt_at"],
                replay_id=r["replay_id"],
                body=r["body"],
            )
            for r in rows
        ]
        return sorted(tasks, key=task_order)

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
        p = plan_finish(task, owner, outcome, now, attempt, next_attempt_at)
        a = p.attempt
        done = await self._call(
            "fetchval",
            FINISH,
            p.task_id,
            p.owner,
            p.attempts_before,
            p.state,
            p.attempts_added,
            p.next_attempt_at,
            p.claim_rank,
            p.now,
            a is not None,
            None if a is None else a.status_code,
            "" if a is None else a.error,
            p.attempt_id,
            task.delivery_id,
            task.destination,
            None if a is None else a.number,
            None if a is None else a.started_at,
            None if a is None else float(a.duration_ms),
            None if a is None else a.response,
            *p.counts,
            p.error,
            p.touches_counters,
            outcome,
        )
        return bool(done)

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
        replay = plan.replay
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is not open")
        with unavailable("PostgreSQL replay failed"):
            async with pool.acquire() as conn, conn.transaction():
                if self._force_sync_commit:
                    await conn.execute("SET LOCAL synchronous_commit = on")
                # The delivery's row lock serializes replays of it (across replicas),
                # so counting and inserting cannot race past the cap. NO KEY: nothing
                # needs to stop others from referencing the row meanwhile.
                webhook = await conn.fetchval(
                    "SELECT webhook FROM deliveries WHERE id = $1 FOR NO KEY UPDATE",
                    delivery_id,
                )
                if webhook is None:
                    raise plan.unknown()
                count = await conn.fetchval(
                    "SELECT count(*) FROM replays WHERE delivery_id = $1", delivery_id
                )
                refused = plan.over_cap(count)
                if refused is not None:
                    raise refused
                await conn.execute(
                    """INSERT INTO replays (id, delivery_id, requested_at, requested_by,
                        reason, destinations, body_modified)
                    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)""",
                    replay.id,
                    delivery_id,
                    replay.requested_at,
                    replay.requested_by,
                    replay.reason,
                    json.dumps(list(replay.destinations)),
                    replay.body_modified,
                )
                await insert_rows(conn, plan.rows(webhook))
        return replay

    async def outbox_rows(self, delivery_id: str) -> list[OutboxRow]:
        rows = await self._fetch(
            f"SELECT {ROW_COLUMNS} FROM outbox WHERE delivery_id = $1 ORDER BY created_at, id",
            delivery_id,
        )
        return [
            OutboxRow(
                id=r["id"],
                delivery_id=r["delivery_id"],
                webhook=r["webhook"],
                destination=r["destination"],
                state=cast(OutboxState, r["state"]),
                priority=r["priority"],
                attempts=r["attempts"],
                created_at=r["created_at"],
                next_attempt_at=r["next_attempt_at"],
                updated_at=r["updated_at"],
                last_status=r["last_status"],
                last_error=r["last_error"],
                replay_id=r["replay_id"],
            )
            for r in rows
        ]

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        rows = await self._fetch(
            f"""SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = $1
                ORDER BY started_at, id""",
            delivery_id,
        )
        return [
            Attempt(
                task_id=r["task_id"],
                delivery_id=r["delivery_id"],
                destination=r["destination"],
                number=r["number"],
                started_at=r["started_at"],
                duration_ms=r["duration_ms"],
                status_code=r["status_code"],
                error=r["error"],
                response=r["response"],
                outcome=cast(Outcome, r["outcome"]),
            )
            for r in rows
        ]

    async def replays(self, delivery_id: str) -> list[Replay]:
        rows = await self._fetch(
            """SELECT id, delivery_id, requested_at, requested_by, reason, destinations,
                body_modified FROM replays WHERE delivery_id = $1 ORDER BY requested_at, id""",
            delivery_id,
        )
        return [
            Replay(
                id=r["id"],
                delivery_id=r["delivery_id"],
                requested_at=r["requested_at"],
                requested_by=r["requested_by"],
                reason=r["reason"],
                destinations=tuple(json.loads(r["destinations"])),
                body_modified=r["body_modified"],
            )
            for r in rows
        ]

    async def select_for_replay(self, selector: ReplaySelector) -> list[str]:
        where: list[str] = []
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        where += delivery_conditions(selector, param, alias="d")
        one = None if selector.destination is None else param(selector.destination)
        if selector.destination_state is not None:
            where.append(latest_chain_in_state(selector, "d.id", one))
        elif one is not None:
            where.append(
                f"EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id"
                f" AND o.destination = {one})"
            )
        sql = "SELECT d.id FROM deliveries d"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY d.received_at DESC, d.id DESC LIMIT {param(max(0, selector.limit))}"
        return [r["id"] for r in await self._fetch(sql, *params)]

    async def destination_counters(self) -> dict[tuple[str, str], DestinationCounters]:
        rows = await self._fetch(
            """SELECT webhook, destination, pending, delivered, failed, dead_lettered,
                last_error, last_error_at FROM destination_counters"""
        )
        return {
            (r["webhook"], r["destination"]): DestinationCounters(
                pending=r["pending"],
                delivered=r["delivered"],
                failed=r["failed"],
                dead_lettered=r["dead_lettered"],
                last_error=r["last_error"],
                last_error_at=r["last_error_at"],
            )
            for r in rows
        }

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return cast(list[asyncpg.Record], await self._call("fetch", sql, *args))


@contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Turn a lost, refused or timed-out connection into StoreUnavailable."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise StoreUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
