"""The shared delivery store: PostgreSQL through an asyncpg pool (several replicas).

Replicas share one database, so everything that must hold across them is enforced by
PostgreSQL itself: deduplication by a partial unique index with INSERT ... ON CONFLICT
DO NOTHING, counters by upserts in the batch's own transaction, schema creation under an
advisory lock. Each replica batches its own commits (group commit); a batch is one
transaction of a few statements whatever its size, the outbox rows of the records it
stores included (one statement). The outbox's claims, finishes and replays are in
postgres_outbox.py.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from hookline.store.base import (
    DeliveryQuery,
    DeliveryRecord,
    DeliveryStatus,
    RecordResult,
    ResourceCounters,
    StoreUnavailable,
    WebhookCounters,
    as_utc,
    counter_deltas,
    decode_cursor,
    delivery_conditions,
    encode_cursor,
    headers_json,
    page_limit,
    resource_deltas,
)
from hookline.store.groupcommit import DEFAULT_MAX_BATCH, GroupCommitter
from hookline.store.outbox_sql import NewRow, new_rows
from hookline.store.postgres_outbox import MIGRATION as OUTBOX_MIGRATION
from hookline.store.postgres_outbox import PostgresOutboxStore, insert_rows, purge_chunk
from hookline.store.postgres_outbox import unavailable as _unavailable

SCHEMA_VERSION = 5

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS deliveries (
            id text COLLATE "C" NOT NULL PRIMARY KEY,
            webhook text NOT NULL,
            received_at timestamptz NOT NULL,
            status text NOT NULL CHECK (status IN ('accepted', 'rejected', 'filtered')),
            http_status integer NOT NULL,
            reason text NOT NULL DEFAULT '',
            message text NOT NULL DEFAULT '',
            event_type text,
            source_ip text NOT NULL DEFAULT '',
            user_agent text NOT NULL DEFAULT '',
            headers jsonb NOT NULL DEFAULT '{}',
            body bytea,
            processing_ms double precision NOT NULL DEFAULT 0,
            dedup_key text,
            expires_at timestamptz
        )""",
        # Every listing index ends in (received_at, id): keyset pages are range scans.
        "CREATE INDEX IF NOT EXISTS deliveries_newest ON deliveries (received_at, id)",
        """CREATE INDEX IF NOT EXISTS deliveries_webhook_newest
            ON deliveries (webhook, received_at, id)""",
        """CREATE INDEX IF NOT EXISTS deliveries_webhook_status_newest
            ON deliveries (webhook, status, received_at, id)""",
        """CREATE INDEX IF NOT EXISTS deliveries_event_type_newest
            ON deliveries (event_type, received_at, id)""",
        """CREATE UNIQUE INDEX IF NOT EXISTS deliveries_dedup
            ON deliveries (webhook, dedup_key) WHERE dedup_key IS NOT NULL""",
        """CREATE INDEX IF NOT EXISTS deliveries_expires
            ON deliveries (expires_at) WHERE expires_at IS NOT NULL""",
        """CREATE TABLE IF NOT EXISTS webhook_counters (
            webhook text NOT NULL PRIMARY KEY,
            received bigint NOT NULL DEFAULT 0,
            accepted bigint NOT NULL DEFAULT 0,
            rejected bigint NOT NULL DEFAULT 0,
            filtered bigint NOT NULL DEFAULT 0,
            last_received_at timestamptz,
            last_delivery_id text COLLATE "C",
            last_error_at timestamptz,
            last_error_id text COLLATE "C",
            last_error text
        )""",
    ],
    # 2: counters of EventFilters and EventTypes (issue 4).
    [
        """CREATE TABLE IF NOT EXISTS resource_counters (
            kind text NOT NULL,
            key text NOT NULL,
            counter text NOT NULL,
            value bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (kind, key, counter)
        )""",
        """CREATE TABLE IF NOT EXISTS resource_errors (
            kind text NOT NULL,
            key text NOT NULL,
            last_error text NOT NULL,
            last_error_at timestamptz NOT NULL,
            last_error_id text COLLATE "C" NOT NULL,
            PRIMARY KEY (kind, key)
        )""",
    ],
    # 3: the outbox, attempts, replays and destination counters (issue 5).
    OUTBOX_MIGRATION,
    # 4: lz4 for bodies where the server has it: pglz cost four times the CPU per 10 KB
    # body (docs/benchmarks.md). A server built without lz4 keeps pglz.
    [
        """DO $$ BEGIN
            ALTER TABLE deliveries ALTER COLUMN body SET COMPRESSION lz4;
        EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
        END $$""",
    ],
    # 5: the configuration a push-mode receiver was given last, sealed (AES-256-GCM,
    # hookline.receiver.sealed), so a restart does not wait for the operator (issue 6
    # review). One row shared by all replicas: a new replica starts from the newest.
    [
        """CREATE TABLE IF NOT EXISTS receiver_config (
            id smallint NOT NULL PRIMARY KEY CHECK (id = 1),
            version text NOT NULL,
            nonce bytea NOT NULL,
            ciphertext bytea NOT NULL,
            saved_at timestamptz NOT NULL DEFAULT now()
        )""",
    ],
]

SAVE_CONFIG = """INSERT INTO receiver_config (id, version, nonce, ciphertext, saved_at)
    VALUES (1, $1, $2, $3, now())
    ON CONFLICT (id) DO UPDATE SET
        version = EXCLUDED.version,
        nonce = EXCLUDED.nonce,
        ciphertext = EXCLUDED.ciphertext,
        saved_at = EXCLUDED.saved_at"""

# Rows arrive sorted (resource_deltas): replicas lock counter rows in one order.
UPSERT_RESOURCE_COUNTS = """INSERT INTO resource_counters AS c (kind, key, counter, value)
    SELECT kind, key, counter, value
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
        WITH ORDINALITY AS u(kind, key, counter, value, ord)
    ORDER BY ord
    ON CONFLICT (kind, key, counter) DO UPDATE SET value = c.value + EXCLUDED.value"""
UPSERT_RESOURCE_ERRORS = """INSERT INTO resource_errors AS e (kind, key, last_error,
        last_error_at, last_error_id)
    SELECT kind, key, last_error, last_error_at, last_error_id
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
        WITH ORDINALITY AS u(kind, key, last_error, last_error_at, last_error_id, ord)
    ORDER BY ord
    ON CONFLICT (kind, key) DO UPDATE SET
        last_error = EXCLUDED.last_error,
        last_error_at = EXCLUDED.last_error_at,
        last_error_id = EXCLUDED.last_error_id
    WHERE (EXCLUDED.last_error_at, EXCLUDED.last_error_id) > (e.last_error_at, e.last_error_id)"""

COLUMNS = (
    "id, webhook, received_at, status, http_status, reason, message, event_type, "
    "source_ip, user_agent, headers, body, processing_ms, dedup_key, expires_at"
)
LIST_COLUMNS = COLUMNS.replace("body", "NULL::bytea AS body")

# One statement for the whole batch: column arrays, unnested in the order given.
INSERT = f"""INSERT INTO deliveries ({COLUMNS})
    SELECT id, webhook, received_at, status, http_status, reason, message, event_type,
        source_ip, user_agent, headers::jsonb, body, processing_ms, dedup_key, expires_at
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int[],
        $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
        $12::bytea[], $13::float8[], $14::text[], $15::timestamptz[])
        WITH ORDINALITY AS r({COLUMNS}, ord)
    ORDER BY ord
    ON CONFLICT (webhook, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING id"""

# Read in a new statement, hence a new snapshot (READ COMMITTED): it sees an original
# committed by another replica while our INSERT waited for it on the unique index.
ORIGINALS = """SELECT d.webhook, d.dedup_key, d.id
    FROM deliveries d
    JOIN unnest($1::text[], $2::text[]) AS k(webhook, dedup_key)
        ON d.webhook = k.webhook AND d.dedup_key = k.dedup_key
    WHERE d.dedup_key IS NOT NULL"""

_NEWER = (
    "(EXCLUDED.last_received_at, EXCLUDED.last_delivery_id)"
    " > (c.last_received_at, c.last_delivery_id)"
)
_NEWER_ERROR = (
    "EXCLUDED.last_error_at IS NOT NULL AND (c.last_error_at IS NULL OR "
    "(EXCLUDED.last_error_at, EXCLUDED.last_error_id) > (c.last_error_at, c.last_error_id))"
)
# One row per Webhook of the batch. Counters only move forward: another replica may
# commit a batch holding older records after ours.
UPSERT_COUNTERS = f"""INSERT INTO webhook_counters AS c (webhook, received, accepted,
        rejected, filtered, last_received_at, last_delivery_id, last_error_at,
        last_error_id, last_error)
    SELECT webhook, received, accepted, rejected, filtered, last_received_at,
        last_delivery_id, last_error_at, last_error_id, last_error
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
        $6::timestamptz[], $7::text[], $8::timestamptz[], $9::text[], $10::text[])
        WITH ORDINALITY AS u(webhook, received, accepted, rejected, filtered,
            last_received_at, last_delivery_id, last_error_at, last_error_id, last_error,
            ord)
    ORDER BY ord  -- by webhook, as sorted in Python: replicas lock rows in one order
    ON CONFLICT (webhook) DO UPDATE SET
        received = c.received + EXCLUDED.received,
        accepted = c.accepted + EXCLUDED.accepted,
        rejected = c.rejected + EXCLUDED.rejected,
        filtered = c.filtered + EXCLUDED.filtered,
        last_received_at = CASE WHEN c.last_received_at IS NULL OR {_NEWER}
            THEN EXCLUDED.last_received_at ELSE c.last_received_at END,
        last_delivery_id = CASE WHEN c.last_received_at IS NULL OR {_NEWER}
            THEN EXCLUDED.last_delivery_id ELSE c.last_delivery_id END,
        last_error_at = CASE WHEN {_NEWER_ERROR}
            THEN EXCLUDED.last_error_at ELSE c.last_error_at END,
        last_error_id = CASE WHEN {_NEWER_ERROR}
            THEN EXCLUDED.last_error_id ELSE c.last_error_id END,
        last_error = CASE WHEN {_NEWER_ERROR}
            THEN EXCLUDED.last_error ELSE c.last_error END"""

PURGE_CHUNK = 5000

Row = tuple[Any, ...]
# What record() queues: the record, its row, and its outbox rows (ids made already).
Ingest = tuple[DeliveryRecord, Row, tuple[NewRow, ...]]


class PostgresStore(PostgresOutboxStore):
    def __init__(
        self,
        dsn: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.dsn = dsn
        self._min = min_connections
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._max_batch = max_batch
        self._pool: asyncpg.Pool | None = None
        self._committer: GroupCommitter[Ingest, RecordResult] | None = None
        self._force_sync_commit = False
        self._batches_before = 0

    @property
    def committed_batches(self) -> int:
        """Transactions committed by record() since open (group commit makes it small)."""
        return self._committer.committed_batches if self._committer else self._batches_before

    async def open(self) -> None:
        if self._committer is not None:
            return
        with _unavailable("cannot connect to PostgreSQL"):
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._min,
                max_size=self._max,
                timeout=self._connect_timeout,
                # A hung server must turn into a 503, not a request waiting forever.
                command_timeout=self._command_timeout,
            )
        try:
            with _unavailable("cannot prepare the PostgreSQL schema"):
                async with self._pool.acquire() as conn:
                    await _migrate(conn)
                    # A 2xx must survive a crash of the database server too: with
                    # synchronous_commit=off, COMMIT returns before the WAL is flushed.
                    setting = await conn.fetchval("SELECT current_setting('synchronous_commit')")
                    self._force_sync_commit = setting == "off"
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise
        self._committer = GroupCommitter(
            self._commit_batch, max_batch=self._max_batch, name="postgres-group-commit"
        )
        self._committer.start()

    async def close(self) -> None:
        committer, self._committer = self._committer, None
        if committer is not None:
            await committer.close()
            self._batches_before = committer.committed_batches
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # Writes.

    async def record(self, record: DeliveryRecord) -> RecordResult:
        # Converted in the caller's task: a bad record fails alone, not its batch.
        row, outbox = _to_row(record), new_rows(record)
        if self._committer is None:
            raise StoreUnavailable("the store is not open")
        return await self._committer.submit((record, row, outbox))

    async def _commit_batch(self, batch: list[Ingest]) -> list[RecordResult]:
        # Insert in (webhook, dedup_key) order: two replicas inserting the same keys in
        # opposite orders would otherwise wait on each other's unique-index entries.
        # Only the first record of a key in this batch is sent; later ones are answered
        # with whatever id that key resolves to.
        first: dict[tuple[str, str], DeliveryRecord] = {}
        sent: list[tuple[DeliveryRecord, Row]] = []
        for record, row, _ in batch:
            if record.dedup_key is not None:
                key = (record.webhook, record.dedup_key)
                if key in first:
                    continue
                first[key] = record
            sent.append((record, row))
        sent.sort(key=lambda item: (item[0].webhook, item[0].dedup_key or ""))
        rows = [row for _, row in sent]
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is closed")
        async with pool.acquire() as conn, conn.transaction():
            if self._force_sync_commit:
                await conn.execute("SET LOCAL synchronous_commit = on")
            inserted = {r["id"] for r in await conn.fetch(INSERT, *zip(*rows, strict=True))}
            conflicted = [k for k, rec in first.items() if rec.id not in inserted]
            originals: dict[tuple[str, str], str] = {}
            if conflicted:
                for r in await conn.fetch(
                    ORIGINALS, [k[0] for k in conflicted], [k[1] for k in conflicted]
                ):
                    originals[(r["webhook"], r["dedup_key"])] = r["id"]
            stored = [rec for rec, _, _ in batch if rec.id in inserted]
            deltas = sorted(counter_deltas(stored).items())
            if deltas:
                await conn.execute(
                    UPSERT_COUNTERS,
                    *zip(
                        *[
                            (
                                webhook,
                                d.received,
                                d.accepted,
                                d.rejected,
                                d.filtered,
                                d.last_received_at,
                                d.last_delivery_id,
                                d.last_error_at,
                                d.last_error_id or None,
                                d.last_error,
                            )
                            for webhook, d in deltas
                        ],
                        strict=True,
                    ),
                )
            resources = resource_deltas(stored)
            if resources.counts:
                await conn.execute(
                    UPSERT_RESOURCE_COUNTS,
                    *zip(*[(*k, v) for k, v in resources.counts.items()], strict=True),
                )
            if resources.errors:
                await conn.execute(
                    UPSERT_RESOURCE_ERRORS,
                    *zip(
                        *[
                            (kind, key, err, at, i)
                            for (kind, key), (at, i, err) in resources.errors.items()
                        ],
                        strict=True,
                    ),
                )
            # A duplicate's rows are never written; the batch's rows take one statement.
            await insert_rows(
                conn, [r for rec, _, rows in batch if rec.id in inserted for r in rows]
            )
            # Resolved before COMMIT: if this fails, nothing of the batch is stored.
            results: list[RecordResult] = []
            for record, _, _ in batch:
                if record.dedup_key is None:
                    results.append(RecordResult(record.id))
                    continue
                key = (record.webhook, record.dedup_key)
                winner = first[key].id
                if winner in inserted:
                    results.append(RecordResult(winner, duplicate=record.id != winner))
                elif key in originals:
                    results.append(RecordResult(originals[key], duplicate=True))
                else:
                    # Inserted nothing for this key and found no original (purged
                    # meanwhile?): roll back and fail rather than invent an id.
                    raise StoreUnavailable(f"dedup key {key} neither stored nor found")
        return results

    async def purge_expired(self, now: datetime) -> int:
        cutoff = as_utc(now)
        total = 0
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is not open")
        while True:
            # Chunks in their own transactions keep row locks short; SKIP LOCKED lets
            # two replicas purging at once share the work instead of queueing.
            with _unavailable("PostgreSQL purge failed"):
                async with pool.acquire() as conn, conn.transaction():
                    considered, count = await purge_chunk(conn, cutoff, PURGE_CHUNK)
            total += count
            if considered < PURGE_CHUNK:
                return total

    # Reads.

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        row = await self._call(
            "fetchrow", f"SELECT {COLUMNS} FROM deliveries WHERE id = $1", delivery_id
        )
        return None if row is None else _from_row(cast(asyncpg.Record, row))

    async def find_duplicate(self, webhook: str, dedup_key: str) -> str | None:
        found = await self._call(
            "fetchval",
            "SELECT id FROM deliveries WHERE webhook = $1 AND dedup_key = $2",
            webhook,
            dedup_key,
        )
        return None if found is None else str(found)

    async def list(self, query: DeliveryQuery) -> tuple[list[DeliveryRecord], str | None]:
        limit = page_limit(query.limit)
        where: list[str] = []
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        where += delivery_conditions(query, param)
        if query.cursor is not None:
            at, after_id = decode_cursor(query.cursor)
            where.append(f"(received_at, id) < ({param(as_utc(at))}, {param(after_id)})")
        if query.q:
            needle = param(query.q.lower())
            # The body is bytes, maybe not UTF-8: search its 'escape' text form for the
            # needle's own escape form, so no body can make the query fail.
            body_needle = param(_escape_bytea(query.q.lower().encode()))
            where.append(
                "("
                + " OR ".join(
                    f"strpos(lower({column}), {needle}) > 0"
                    for column in ("id", "dedup_key", "reason", "message")
                )
                + f" OR strpos(lower(encode(body, 'escape')), {body_needle}) > 0)"
            )
        sql = f"SELECT {LIST_COLUMNS} FROM deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY received_at DESC, id DESC LIMIT {param(limit + 1)}"
        rows = cast(list[asyncpg.Record], await self._call("fetch", sql, *params))
        items = [_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return items, encode_cursor(items[-1].received_at, items[-1].id) if more else None

    async def counters(self) -> dict[str, WebhookCounters]:
        rows = cast(
            list[asyncpg.Record],
            await self._call(
                "fetch",
                """SELECT webhook, received, accepted, rejected, filtered,
                    last_received_at, last_delivery_id, last_error FROM webhook_counters""",
            ),
        )
        return {
            row["webhook"]: WebhookCounters(
                received=row["received"],
                accepted=row["accepted"],
                rejected=row["rejected"],
                filtered=row["filtered"],
                last_received_at=row["last_received_at"],
                last_delivery_id=row["last_delivery_id"],
                last_error=row["last_error"],
            )
            for row in rows
        }

    async def resource_counters(self) -> dict[tuple[str, str], ResourceCounters]:
        result: dict[tuple[str, str], ResourceCounters] = {}
        for row in await self._call(
            "fetch", "SELECT kind, key, counter, value FROM resource_counters"
        ):
            entry = result.setdefault((row["kind"], row["key"]), ResourceCounters())
            entry.counts[row["counter"]] = row["value"]
        for row in await self._call(
            "fetch", "SELECT kind, key, last_error, last_error_at FROM resource_errors"
        ):
            entry = result.setdefault((row["kind"], row["key"]), ResourceCounters())
            entry.last_error, entry.last_error_at = row["last_error"], row["last_error_at"]
        return result

    # The pushed configuration (issue 6 review).

    async def save_config(self, version: str, nonce: bytes, ciphertext: bytes) -> None:
        await self._call("execute", SAVE_CONFIG, version, nonce, ciphertext)

    async def load_config(self) -> tuple[str, bytes, bytes] | None:
        row = await self._call(
            "fetchrow", "SELECT version, nonce, ciphertext FROM receiver_config WHERE id = 1"
        )
        if row is None:
            return None
        return str(row["version"]), bytes(row["nonce"]), bytes(row["ciphertext"])

    async def ping(self) -> None:
        await self._call("fetchval", "SELECT 1")

    async def _call(self, method: str, sql: str, *args: Any) -> Any:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store is not open")
        with _unavailable("PostgreSQL query failed"):
            return await getattr(pool, method)(sql, *args)


async def _migrate(conn: PoolConnectionProxy[asyncpg.Record]) -> None:
    async with conn.transaction():
        # Replicas starting together must not race on CREATE TABLE IF NOT EXISTS (it
        # is not atomic against a concurrent create): one migrates, the others wait.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('hookline-schema:' || current_schema()))"
        )
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_version (
                version integer NOT NULL PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        if current > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"schema version {current} is newer than this hookline knows "
                f"({SCHEMA_VERSION}); upgrade hookline"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)


def _escape_bytea(data: bytes) -> str:
    """What PostgreSQL's encode(data, 'escape') returns: NUL and high-bit bytes as
    \\ooo octal, backslashes doubled, the rest as is."""
    out: list[str] = []
    for byte in data:
        if byte == 0 or byte >= 0x80:
            out.append(f"\\{byte:03o}")
        elif byte == 0x5C:
            out.append("\\\\")
        else:
            out.append(chr(byte))
    return "".join(out)


def _to_row(record: DeliveryRecord) -> Row:
    return (
        record.id,
        record.webhook,
        as_utc(record.received_at),
        record.status,
        record.http_status,
        record.reason,
        record.message,
        record.event_type,
        record.source_ip,
        record.user_agent,
        headers_json(record.headers),
        record.body,
        float(record.processing_ms),
        record.dedup_key,
        None if record.expires_at is None else as_utc(record.expires_at),
    )


def _from_row(row: asyncpg.Record) -> DeliveryRecord:
    return DeliveryRecord(
        id=row["id"],
        webhook=row["webhook"],
        received_at=row["received_at"],
        status=cast(DeliveryStatus, row["status"]),
        http_status=row["http_status"],
        reason=row["reason"],
        message=row["message"],
        event_type=row["event_type"],
        source_ip=row["source_ip"],
        user_agent=row["user_agent"],
        headers=json.loads(row["headers"]),
        body=row["body"],
        processing_ms=row["processing_ms"],
        dedup_key=row["dedup_key"],
        expires_at=row["expires_at"],
    )
