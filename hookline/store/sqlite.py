"""The embedded delivery store: one SQLite file in WAL mode (one receiver replica).

The standard-library sqlite3 module blocks, so each connection lives on its own
single-thread executor: the writer connection commits whole batches (one executor call
per batch, so a transaction never interleaves with another), and a separate reader
connection serves the admin API without waiting behind commits (WAL readers do not
block the writer, nor the writer them). A batch also writes the outbox rows of the
records it stores; the outbox's own writes (claims, finishes, replays) are further jobs
of the same writer thread (sqlite_outbox.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import lz4.block

from hookline.store.base import (
    CorruptRecord,
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
    qmark,
    resource_deltas,
)
from hookline.store.groupcommit import DEFAULT_MAX_BATCH, GroupCommitter
from hookline.store.outbox_sql import NewRow, new_rows
from hookline.store.sqlite_outbox import MIGRATION as OUTBOX_MIGRATION
from hookline.store.sqlite_outbox import (
    SQLiteOutboxStore,
    insert_rows,
    purge_chunk,
    refused_index_hint,
)
from hookline.store.sqlite_outbox import parse_ts as _parse_ts
from hookline.store.sqlite_outbox import rollback as _rollback
from hookline.store.sqlite_outbox import ts as _ts

T = TypeVar("T")
log = logging.getLogger(__name__)

SCHEMA_VERSION = 5

# Each entry migrates from version i to i + 1, all of them in one transaction (SQLite's
# DDL is transactional): a migration is applied whole or not at all.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS deliveries (
            id TEXT NOT NULL PRIMARY KEY,
            webhook TEXT NOT NULL,
            received_at TEXT NOT NULL,  -- UTC, fixed width (see _ts): sorts as text
            status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected', 'filtered')),
            http_status INTEGER NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL DEFAULT '',
            event_type TEXT,
            source_ip TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '',
            headers TEXT NOT NULL DEFAULT '{}',  -- JSON object
            body BLOB,
            processing_ms REAL NOT NULL DEFAULT 0,
            dedup_key TEXT,
            expires_at TEXT
        )""",
        # Listing is newest first, optionally narrowed; each index ends in (received_at,
        # id) so that keyset pagination is an index range scan.
        "CREATE INDEX IF NOT EXISTS deliveries_newest ON deliveries (received_at, id)",
        """CREATE INDEX IF NOT EXISTS deliveries_webhook_newest
            ON deliveries (webhook, received_at, id)""",
        """CREATE INDEX IF NOT EXISTS deliveries_webhook_status_newest
            ON deliveries (webhook, status, received_at, id)""",
        """CREATE INDEX IF NOT EXISTS deliveries_event_type_newest
            ON deliveries (event_type, received_at, id)""",
        # Deduplication is the database's job, not a read-then-write race in Python.
        """CREATE UNIQUE INDEX IF NOT EXISTS deliveries_dedup
            ON deliveries (webhook, dedup_key) WHERE dedup_key IS NOT NULL""",
        """CREATE INDEX IF NOT EXISTS deliveries_expires
            ON deliveries (expires_at) WHERE expires_at IS NOT NULL""",
        """CREATE TABLE IF NOT EXISTS webhook_counters (
            webhook TEXT NOT NULL PRIMARY KEY,
            received INTEGER NOT NULL DEFAULT 0,
            accepted INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            filtered INTEGER NOT NULL DEFAULT 0,
            last_received_at TEXT,
            last_delivery_id TEXT,
            last_error_at TEXT,
            last_error_id TEXT,
            last_error TEXT
        )""",
    ],
    # 2: counters of EventFilters and EventTypes (issue 4).
    [
        """CREATE TABLE IF NOT EXISTS resource_counters (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            counter TEXT NOT NULL,
            value INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (kind, key, counter)
        )""",
        """CREATE TABLE IF NOT EXISTS resource_errors (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            last_error TEXT NOT NULL,
            last_error_at TEXT NOT NULL,
            last_error_id TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        )""",
    ],
    # 3: the outbox, attempts, replays and destination counters (issue 5).
    OUTBOX_MIGRATION,
    # 4: the configuration a push-mode receiver was given last, sealed (AES-256-GCM,
    # hookline.receiver.sealed), so a restart does not wait for the operator (issue 6
    # review). One row: the CHECK keeps it one.
    [
        """CREATE TABLE IF NOT EXISTS receiver_config (
            id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
            version TEXT NOT NULL,
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            saved_at TEXT NOT NULL
        )""",
    ],
    # 5: cheaper commits (issue 3's ingest benchmark: the writer's cost is mostly the
    # bytes a commit writes, to the WAL, at the checkpoint and at fsync, and one index
    # entry per row per index).
    [
        # Bodies compressed with LZ4 where that pays (see _encoded): webhook JSON shrinks
        # three to four times. NULL: the body as received (every row before version 5).
        "ALTER TABLE deliveries ADD COLUMN body_encoding TEXT",
        # Status: most rows are accepted, and a listing of accepted rows finds them by
        # the webhook or time index; the refusals people look for at 3 a.m. are rare,
        # so only they are indexed (list() adds the index's condition to the query).
        "DROP INDEX IF EXISTS deliveries_webhook_status_newest",
        """CREATE INDEX IF NOT EXISTS deliveries_webhook_refused_newest
            ON deliveries (webhook, status, received_at, id) WHERE status <> 'accepted'""",
        # Event type: a delivery without one (no EventTypes on its Webhook) is never
        # listed by event type, so it needs no entry.
        "DROP INDEX IF EXISTS deliveries_event_type_newest",
        """CREATE INDEX IF NOT EXISTS deliveries_event_type_newest
            ON deliveries (event_type, received_at, id) WHERE event_type IS NOT NULL""",
    ],
]

SAVE_CONFIG = """INSERT INTO receiver_config (id, version, nonce, ciphertext, saved_at)
    VALUES (1, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        version = excluded.version,
        nonce = excluded.nonce,
        ciphertext = excluded.ciphertext,
        saved_at = excluded.saved_at"""

UPSERT_RESOURCE_COUNTS = """INSERT INTO resource_counters (kind, key, counter, value)
    VALUES (?, ?, ?, ?)
    ON CONFLICT (kind, key, counter) DO UPDATE SET value = value + excluded.value"""
UPSERT_RESOURCE_ERRORS = """INSERT INTO resource_errors (kind, key, last_error,
        last_error_at, last_error_id)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (kind, key) DO UPDATE SET
        last_error = excluded.last_error,
        last_error_at = excluded.last_error_at,
        last_error_id = excluded.last_error_id
    WHERE (excluded.last_error_at, excluded.last_error_id) > (last_error_at, last_error_id)"""

_COLUMNS = (
    "id", "webhook", "received_at", "status", "http_status", "reason", "message",
    "event_type", "source_ip", "user_agent", "headers", "body", "processing_ms",
    "dedup_key", "expires_at", "body_encoding",
)  # fmt: skip
COLUMNS = ", ".join(_COLUMNS)
# Listing leaves the body out: a page of 500 records of 1 MiB each is not an index.
LIST_COLUMNS = ", ".join("NULL" if column == "body" else column for column in _COLUMNS)

INSERT = f"""INSERT INTO deliveries ({COLUMNS})
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (webhook, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING"""

# Counters only move forward: a batch's "newest" replaces the stored one only if newer.
UPSERT_COUNTERS = """INSERT INTO webhook_counters (webhook, received, accepted, rejected,
        filtered, last_received_at, last_delivery_id, last_error_at, last_error_id,
        last_error)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (webhook) DO UPDATE SET
        received = received + excluded.received,
        accepted = accepted + excluded.accepted,
        rejected = rejected + excluded.rejected,
        filtered = filtered + excluded.filtered,
        last_delivery_id = CASE WHEN last_received_at IS NULL
            OR (excluded.last_received_at, excluded.last_delivery_id)
               > (last_received_at, last_delivery_id)
            THEN excluded.last_delivery_id ELSE last_delivery_id END,
        last_received_at = CASE WHEN last_received_at IS NULL
            OR (excluded.last_received_at, excluded.last_delivery_id)
               > (last_received_at, last_delivery_id)
            THEN excluded.last_received_at ELSE last_received_at END,
        last_error = CASE WHEN excluded.last_error_at IS NOT NULL AND (last_error_at IS NULL
            OR (excluded.last_error_at, excluded.last_error_id) > (last_error_at, last_error_id))
            THEN excluded.last_error ELSE last_error END,
        last_error_id = CASE WHEN excluded.last_error_at IS NOT NULL AND (last_error_at IS NULL
            OR (excluded.last_error_at, excluded.last_error_id) > (last_error_at, last_error_id))
            THEN excluded.last_error_id ELSE last_error_id END,
        last_error_at = CASE WHEN excluded.last_error_at IS NOT NULL AND (last_error_at IS NULL
            OR (excluded.last_error_at, excluded.last_error_id) > (last_error_at, last_error_id))
            THEN excluded.last_error_at ELSE last_error_at END"""
# (Every SET expression reads the old row, so their order above does not matter.)

PURGE_CHUNK = 5000

Row = tuple[Any, ...]
Rows = list[Row]  # an alias: inside the class, `list` is the method
Records = list[DeliveryRecord]
# What record() queues: the record, its row, and its outbox rows (ids made already).
Ingest = tuple[DeliveryRecord, Row, tuple[NewRow, ...]]


class SQLiteStore(SQLiteOutboxStore):
    def __init__(
        self,
        path: str,
        *,
        busy_timeout_ms: int = 5000,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if path in ("", ":memory:") or path.startswith("file::memory:"):
            # The writer and the reader are two connections: they must share a file.
            raise ValueError("SQLiteStore needs a file path, not an in-memory database")
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._max_batch = max_batch
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._committer: GroupCommitter[Ingest, RecordResult] | None = None
        self._batches_before = 0

    @property
    def committed_batches(self) -> int:
        """Transactions committed by record() since open (group commit makes it small)."""
        return self._committer.committed_batches if self._committer else self._batches_before

    async def open(self) -> None:
        if self._committer is not None:
            return
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        try:
            self._writer = await self._run(self._writer_pool, self._open_writer)
            self._reader = await self._run(self._reader_pool, self._open_reader)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._committer = GroupCommitter(
            self._commit_batch, max_batch=self._max_batch, name="sqlite-group-commit"
        )
        self._committer.start()
        self._start_outbox()

    async def close(self) -> None:
        committer, self._committer = self._committer, None
        if committer is not None:
            await committer.close()
            self._batches_before = committer.committed_batches
        await self._stop_outbox()
        for pool, conn in ((self._writer_pool, self._writer), (self._reader_pool, self._reader)):
            if pool is not None:
                if conn is not None:
                    # A connection is used only from its own thread, closing included.
                    await self._run(pool, conn.close)
                pool.shutdown(wait=True)
        self._writer = self._reader = None
        self._writer_pool = self._reader_pool = None

    # Connections (run on their executor threads).

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; BEGIN/COMMIT are explicit.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            # 16 KiB pages on a new database (no effect on an existing one): a body
            # compressed to ~3 KB fits one, and a commit rewrites the last page of every
            # index it touches, so larger pages write more bytes per batch (the 64 KiB
            # of schema version 4 cost ~10% more CPU per delivery; docs/benchmarks.md).
            conn.execute("PRAGMA page_size = 16384")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode})")
            # FULL, not NORMAL: in WAL mode NORMAL skips the fsync at commit, so a power
            # loss could take back a delivery that was already answered 2xx.
            conn.execute("PRAGMA synchronous = FULL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only = ON")
        # The body as received, for searches inside bodies stored compressed.
        conn.create_function("hookline_body", 2, searchable_body, deterministic=True)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_version (
                    version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)"""
            )
            current = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {current} is newer than this hookline knows "
                    f"({SCHEMA_VERSION}); upgrade hookline"
                )
            if 0 < current < SCHEMA_VERSION:
                # Version 5 rebuilds two indexes over every kept delivery: minutes on a
                # store of many GB, before the receiver serves (readiness waits).
                log.warning(
                    "migrating the SQLite store %s from schema version %d to %d; "
                    "on a large store this takes a while",
                    self.path,
                    current,
                    SCHEMA_VERSION,
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, _ts(datetime.now(UTC))),
                )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    # Writes.

    async def record(self, record: DeliveryRecord) -> RecordResult:
        # Converted here, in the caller's task: a record that cannot be stored fails
        # alone with ValueError instead of failing its whole batch.
        row, outbox = _to_row(record), new_rows(record)
        if self._committer is None:
            raise StoreUnavailable("the store is not open")
        return await self._committer.submit((record, row, outbox))

    async def _commit_batch(self, batch: list[Ingest]) -> list[RecordResult]:
        assert self._writer_pool is not None
        return await self._run(self._writer_pool, self._write_batch, batch)

    def _write_batch(self, batch: list[Ingest]) -> list[RecordResult]:
        conn = self._writer
        if conn is None:
            raise StoreUnavailable("the store is closed")
        # IMMEDIATE takes the write lock up front, so the transaction cannot fail half
        # way on a lock another process took after our first read.
        conn.execute("BEGIN IMMEDIATE")
        try:
            results: list[RecordResult] = []
            stored: list[DeliveryRecord] = []
            outbox: list[NewRow] = []
            # One executemany for the whole batch; only when some insert was skipped (a
            # duplicate) are the rows looked at one by one.
            before = conn.total_changes
            conn.executemany(INSERT, [_encoded(row) for _, row, _ in batch])
            if conn.total_changes - before == len(batch):
                present = None  # all stored: the common case
            else:
                present = _stored_ids(conn, [record.id for record, _, _ in batch])
            for record, _, rows in batch:
                if present is None or record.id in present:
                    results.append(RecordResult(record.id))
                    stored.append(record)
                    outbox += rows  # a duplicate's rows are never written
                    continue
                # Conflict on (webhook, dedup_key): answer with the id stored first,
                # which may be earlier in this very batch.
                found = conn.execute(
                    "SELECT id FROM deliveries WHERE webhook = ? AND dedup_key = ?",
                    (record.webhook, record.dedup_key),
                ).fetchone()
                if found is None:
                    raise sqlite3.IntegrityError(f"insert of {record.id} ignored, no original")
                results.append(RecordResult(found[0], duplicate=True))
            conn.executemany(
                UPSERT_COUNTERS,
                [
                    (
                        webhook,
                        d.received,
                        d.accepted,
                        d.rejected,
                        d.filtered,
                        _ts(d.last_received_at),
                        d.last_delivery_id,
                        _ts(d.last_error_at),
                        d.last_error_id or None,
                        d.last_error,
                    )
                    for webhook, d in sorted(counter_deltas(stored).items())
                ],
            )
            resources = resource_deltas(stored)
            conn.executemany(
                UPSERT_RESOURCE_COUNTS,
                [(*key, value) for key, value in resources.counts.items()],
            )
            conn.executemany(
                UPSERT_RESOURCE_ERRORS,
                [
                    (kind, key, error, _ts(at), delivery_id)
                    for (kind, key), (at, delivery_id, error) in resources.errors.items()
                ],
            )
            insert_rows(conn, outbox)  # one executemany for the whole batch
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return results

    async def purge_expired(self, now: datetime) -> int:
        cutoff = _ts(as_utc(now))
        total = 0
        while True:
            # Chunked, each chunk its own transaction on the writer thread, so ingest
            # batches interleave with a large purge instead of waiting for all of it.
            count = await self._write(self._purge_chunk, cutoff)
            total += count
            if count < PURGE_CHUNK:
                return total

    def _purge_chunk(self, conn: sqlite3.Connection, cutoff: str | None) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            count = purge_chunk(conn, cutoff, PURGE_CHUNK)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return count

    # Reads.

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        # Decoded on the reader thread: decompressing up to a body limit's worth of
        # bytes is no work for the event loop.
        records = await self._read_records(
            f"SELECT {COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
        )
        return records[0] if records else None

    async def find_duplicate(self, webhook: str, dedup_key: str) -> str | None:
        rows = await self._read(
            "SELECT id FROM deliveries WHERE webhook = ? AND dedup_key = ?", (webhook, dedup_key)
        )
        return str(rows[0][0]) if rows else None

    async def list(self, query: DeliveryQuery) -> tuple[list[DeliveryRecord], str | None]:
        limit = page_limit(query.limit)
        sql, params = list_sql(query, limit + 1)
        rows = await self._read_records(sql, params)
        items = rows[:limit]
        more = len(rows) > limit
        return items, encode_cursor(items[-1].received_at, items[-1].id) if more else None

    async def counters(self) -> dict[str, WebhookCounters]:
        rows = await self._read(
            """SELECT webhook, received, accepted, rejected, filtered, last_received_at,
                last_delivery_id, last_error FROM webhook_counters"""
        )
        return {
            row[0]: WebhookCounters(
                received=row[1],
                accepted=row[2],
                rejected=row[3],
                filtered=row[4],
                last_received_at=_parse_ts(row[5]),
                last_delivery_id=row[6],
                last_error=row[7],
            )
            for row in rows
        }

    async def resource_counters(self) -> dict[tuple[str, str], ResourceCounters]:
        result: dict[tuple[str, str], ResourceCounters] = {}
        for kind, key, counter, value in await self._read(
            "SELECT kind, key, counter, value FROM resource_counters"
        ):
            result.setdefault((kind, key), ResourceCounters()).counts[counter] = value
        for kind, key, error, at in await self._read(
            "SELECT kind, key, last_error, last_error_at FROM resource_errors"
        ):
            entry = result.setdefault((kind, key), ResourceCounters())
            entry.last_error, entry.last_error_at = error, _parse_ts(at)
        return result

    # The pushed configuration (issue 6 review).

    async def save_config(self, version: str, nonce: bytes, ciphertext: bytes) -> None:
        # A job of the writer thread like every other write: it never interleaves
        # with a batch's transaction on the same connection.
        await self._write(_save_config, (version, nonce, ciphertext, _ts(datetime.now(UTC))))

    async def load_config(self) -> tuple[str, bytes, bytes] | None:
        rows = await self._read("SELECT version, nonce, ciphertext FROM receiver_config")
        if not rows:
            return None
        version, nonce, ciphertext = rows[0]
        return str(version), bytes(nonce), bytes(ciphertext)

    async def ping(self) -> None:
        if self._committer is None:
            raise StoreUnavailable("the store is not open")
        await self._read("SELECT max(version) FROM schema_version")
        # The reader answering proves the file is readable; a lock held by someone
        # else for longer than busy_timeout would show on the next commit instead.

    # Executor plumbing.

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> Rows:
        return await self._reading(lambda conn: conn.execute(sql, params).fetchall())

    async def _read_records(self, sql: str, params: tuple[Any, ...]) -> Records:
        """Rows of COLUMNS (or LIST_COLUMNS) as records, made on the reader thread."""
        return await self._reading(
            lambda conn: [_from_row(row) for row in conn.execute(sql, params)]
        )

    async def _reading(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn, pool = self._reader, self._reader_pool
        if conn is None or pool is None:
            raise StoreUnavailable("the store is not open")
        try:
            return await self._run(pool, fn, conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    async def _write(self, fn: Callable[[sqlite3.Connection, Any], T], arg: Any) -> T:
        conn, pool = self._writer, self._writer_pool
        if conn is None or pool is None:
            raise StoreUnavailable("the store is not open")
        try:
            return await self._run(pool, fn, conn, arg)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite write failed: {exc}") from exc


_SEARCHED = (
    "id",
    "dedup_key",
    "reason",
    "message",
    "CAST(hookline_body(body, body_encoding) AS TEXT)",
)

BODY, BODY_ENCODING = _COLUMNS.index("body"), _COLUMNS.index("body_encoding")
LZ4 = "lz4"  # LZ4 block format with its 4-byte size prefix (lz4.block's default)
# Smaller bodies gain little and cost a call; a body that does not shrink by a tenth
# (already compressed, random bytes) is stored as received.
COMPRESS_FROM_BYTES = 512


def _encoded(row: Row) -> Row:
    """The row with its body compressed where that pays. Runs on the writer thread:
    compressing is part of what a commit costs, and the event loop stays free."""
    body = row[BODY]
    if body is None or len(body) < COMPRESS_FROM_BYTES:
        return row
    packed = lz4.block.compress(body)
    if len(packed) > len(body) * 0.9:
        return row
    return (*row[:BODY], packed, *row[BODY + 1 : BODY_ENCODING], LZ4)


def _decoded(body: bytes | None, encoding: str | None) -> bytes | None:
    """The body as received; CorruptRecord if it does not decode."""
    if body is None or encoding is None:
        return None if body is None else bytes(body)
    if encoding != LZ4:
        raise CorruptRecord(f"its body is stored in an unknown encoding {encoding!r}")
    try:
        plain: bytes = lz4.block.decompress(body)
    except lz4.block.LZ4BlockError as exc:
        raise CorruptRecord(
            f"its stored body ({len(body)} bytes of LZ4) does not decode: {exc}"
        ) from None
    return plain


def searchable_body(body: bytes | None, encoding: str | None) -> bytes | None:
    """hookline_body() in SQL, for search: a body that does not decode matches
    nothing, rather than failing every search that reaches its row."""
    try:
        return _decoded(body, encoding)
    except CorruptRecord:
        return None


def list_sql(query: DeliveryQuery, limit: int) -> tuple[str, tuple[Any, ...]]:
    """The listing's statement and parameters: newest first, keyset-paginated."""
    where: list[str] = []
    params: list[Any] = []
    where += delivery_conditions(query, qmark(params), moment=lambda t: _ts(as_utc(t)))
    where += refused_index_hint(query.status, query.webhook)
    if query.cursor is not None:
        at, after_id = decode_cursor(query.cursor)
        where.append("(received_at, id) < (?, ?)")
        params += [_ts(as_utc(at)), after_id]
    if query.q:
        # lower() and instr(): a substring, not a LIKE pattern, so % and _ in q are
        # literal. Case folding is ASCII-only (SQLite without ICU).
        where.append("(" + " OR ".join(f"instr(lower({c}), ?) > 0" for c in _SEARCHED) + ")")
        params += [query.q.lower()] * len(_SEARCHED)
    sql = f"SELECT {LIST_COLUMNS} FROM deliveries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY received_at DESC, id DESC LIMIT ?"
    return sql, (*params, limit)


def _save_config(conn: sqlite3.Connection, row: tuple[str, bytes, bytes, str]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SAVE_CONFIG, row)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _to_row(record: DeliveryRecord) -> Row:
    return (
        record.id,
        record.webhook,
        _ts(record.received_at),
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
        _ts(record.expires_at),
        None,  # body_encoding: _encoded() decides, on the writer thread
    )


def _body_of(row: Row) -> bytes | None:
    try:
        return _decoded(row[BODY], row[BODY_ENCODING])
    except CorruptRecord as exc:
        raise CorruptRecord(f"delivery {row[0]}: {exc}") from None


def _from_row(row: Row) -> DeliveryRecord:
    received_at = _parse_ts(row[2])
    assert received_at is not None
    return DeliveryRecord(
        id=row[0],
        webhook=row[1],
        received_at=received_at,
        status=cast(DeliveryStatus, row[3]),
        http_status=row[4],
        reason=row[5],
        message=row[6],
        event_type=row[7],
        source_ip=row[8],
        user_agent=row[9],
        headers=json.loads(row[10]),
        body=_body_of(row),
        processing_ms=row[12],
        dedup_key=row[13],
        expires_at=_parse_ts(row[14]),
    )


def _stored_ids(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    """Which of `ids` are in the table (a batch is at most a few hundred ids)."""
    marks = ",".join("?" * len(ids))
    return {r[0] for r in conn.execute(f"SELECT id FROM deliveries WHERE id IN ({marks})", ids)}
