"""The contract every delivery store keeps; each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sqlite3
import uuid
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hookline.store import (
    DeliveryQuery,
    DeliveryRecord,
    PostgresStore,
    RecordResult,
    ResourceCounters,
    SQLiteStore,
    Store,
    StoreUnavailable,
    Tally,
    WebhookCounters,
    encode_cursor,
    new_delivery_id,
    open_store,
)
from hookline.store.base import MAX_PAGE
from hookline.store.groupcommit import GroupCommitter
from tests.store.conftest import Backend

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_seq = itertools.count()


def rec(**overrides: Any) -> DeliveryRecord:
    """A record at T0 + n seconds (n increasing per call) unless told otherwise."""
    at = overrides.pop("received_at", T0 + timedelta(seconds=next(_seq)))
    fields: dict[str, Any] = {
        "id": new_delivery_id(at.timestamp()),
        "webhook": "ci/runs",
        "received_at": at,
        "status": "accepted",
        "http_status": 202,
    }
    fields.update(overrides)
    return DeliveryRecord(**fields)


async def record_all(store: Store, records: list[DeliveryRecord]) -> list[RecordResult]:
    return list(await asyncio.gather(*(store.record(r) for r in records)))


async def list_all(store: Store, **filters: Any) -> list[DeliveryRecord]:
    page = await store.list(DeliveryQuery(limit=MAX_PAGE, **filters))
    assert page[1] is None, "test data should fit one page"
    return page[0]


# Round trip


async def test_record_and_get_round_trip_every_field(store: Store) -> None:
    cest = timezone(timedelta(hours=2))
    original = rec(
        received_at=datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=cest),
        status="rejected",
        http_status=401,
        reason="bad_signature",
        message="X-Hub-Signature-256 does not match the body",
        event_type="github.workflow_run",
        source_ip="203.0.113.7",
        user_agent="GitHub-Hookshot/abc",
        headers={"Content-Type": "application/json", "X-GitHub-Event": "workflow_run"},
        body=b'{"a": 1}\x00\xff\xfe not utf-8',
        processing_ms=1.25,
        dedup_key="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        expires_at=datetime(2024, 5, 31, 12, 30, 15, tzinfo=UTC),
    )
    assert await store.record(original) == RecordResult(original.id)
    got = await store.get(original.id)
    assert got == original  # aware datetimes compare as instants
    assert got is not None
    assert got.received_at.utcoffset() == timedelta(0)
    assert got.received_at == datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert got.expires_at is not None and got.expires_at.utcoffset() == timedelta(0)


async def test_defaults_and_no_body_round_trip(store: Store) -> None:
    original = rec(body=None, http_status=413, status="rejected", reason="too_large")
    await store.record(original)
    assert await store.get(original.id) == original
    empty = rec(body=b"", headers={})
    await store.record(empty)
    got = await store.get(empty.id)
    assert got is not None and got.body == b""
    assert await store.get("01NOSUCHDELIVERY0000000000") is None


async def test_naive_datetime_is_refused_alone(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone"):
        await store.record(rec(received_at=datetime(2024, 5, 1, 12, 0)))
    ok = rec()
    assert await store.record(ok) == RecordResult(ok.id)


# Deduplication


async def test_same_key_twice_answers_original_id(store: Store) -> None:
    first, second = rec(dedup_key="d-1"), rec(dedup_key="d-1")
    assert await store.record(first) == RecordResult(first.id)
    assert await store.record(second) == RecordResult(first.id, duplicate=True)
    assert await store.get(second.id) is None
    assert (await store.counters())["ci/runs"].received == 1


async def test_same_key_in_one_concurrent_batch_stores_one(store: Store) -> None:
    records = [rec(dedup_key="same") for _ in range(50)]
    results = await record_all(store, records)
    assert len({r.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    stored = await list_all(store)
    assert [s.id for s in stored] == [results[0].id]
    assert (await store.counters())["ci/runs"].received == 1


async def test_same_key_on_another_webhook_is_not_a_duplicate(store: Store) -> None:
    a, b = rec(dedup_key="k"), rec(dedup_key="k", webhook="ci/other")
    assert await record_all(store, [a, b]) == [RecordResult(a.id), RecordResult(b.id)]


async def test_records_without_key_never_dedup(store: Store) -> None:
    records = [rec(received_at=T0) for _ in range(5)]
    results = await record_all(store, records)
    assert results == [RecordResult(r.id) for r in records]
    assert len(await list_all(store)) == 5


async def test_find_duplicate_names_what_record_would_answer(store: Store) -> None:
    # Issue 11 §4: a receiver refusing new deliveries still answers a resend 200.
    first = rec(dedup_key="d-1")
    await store.record(first)
    await store.record(rec(dedup_key="d-1", webhook="ci/other"))
    assert await store.find_duplicate("ci/runs", "d-1") == first.id
    assert await store.find_duplicate("ci/runs", "d-2") is None
    assert await store.find_duplicate("ci/elsewhere", "d-1") is None
    refused = rec(status="rejected", http_status=503, reason="outbox_backlog")
    await store.record(refused)  # refusals keep no key: nothing to find
    assert await store.find_duplicate("ci/runs", "") is None


async def test_find_duplicate_on_a_closed_store_is_unavailable(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(StoreUnavailable):
        await store.find_duplicate("ci/runs", "d-1")


async def test_rejected_without_key_does_not_block_genuine_delivery(store: Store) -> None:
    refused = rec(status="rejected", http_status=401, reason="bad_signature")
    genuine = rec(dedup_key="gh-delivery-1")
    await store.record(refused)
    assert await store.record(genuine) == RecordResult(genuine.id)


async def test_two_stores_racing_the_same_key_store_one(backend: Backend) -> None:
    # Two receiver replicas on one database: the database, not the process, dedups.
    one, two = await backend.open_store(), await backend.open_store()
    records = [rec(dedup_key="race") for _ in range(40)]
    results = await asyncio.gather(
        *((one if i % 2 else two).record(r) for i, r in enumerate(records))
    )
    assert len({r.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert [s.id for s in await list_all(one)] == [results[0].id]


async def test_two_stores_racing_many_keys_in_opposite_orders(backend: Backend) -> None:
    # Replicas inserting the same keys in opposite orders must not deadlock (which
    # would fail whole batches) and must agree on every key's id.
    one, two = await backend.open_store(), await backend.open_store()
    for _ in range(3):
        keys = [f"k{i:02}-{uuid.uuid4().hex}" for i in range(30)]
        ours = [one.record(rec(dedup_key=k)) for k in keys]
        theirs = [two.record(rec(dedup_key=k)) for k in reversed(keys)]
        results = await asyncio.gather(*ours, *theirs)
        by_key = dict(zip(keys, results[:30], strict=True))
        for key, result in zip(reversed(keys), results[30:], strict=True):
            assert result.id == by_key[key].id
            assert result.duplicate != by_key[key].duplicate


# Group commit


def committed_batches(store: Store) -> int:
    assert isinstance(store, SQLiteStore | PostgresStore)
    return store.committed_batches


async def test_concurrent_records_share_transactions(store: Store) -> None:
    before = committed_batches(store)
    records = [rec() for _ in range(200)]
    results = await record_all(store, records)
    assert results == [RecordResult(r.id) for r in records]
    batches = committed_batches(store) - before
    assert 1 <= batches <= 10, f"200 concurrent records took {batches} transactions"
    assert (await store.counters())["ci/runs"].received == 200


async def test_commit_failure_raises_store_unavailable_and_stores_nothing(
    backend: Backend, store: Store
) -> None:
    kept = rec(status="rejected", reason="bad_signature", message="no")
    await store.record(kept)
    before = await store.counters()
    await backend.fail_commits()
    doomed = [rec(dedup_key=f"k{i}") for i in range(20)]
    outcomes = await asyncio.gather(*(store.record(r) for r in doomed), return_exceptions=True)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert [s.id for s in await list_all(store)] == [kept.id]
    assert await store.counters() == before
    # The store recovers once the database does, and the refused keys are not taken.
    await backend.heal()
    assert await store.record(doomed[0]) == RecordResult(doomed[0].id)


async def test_closed_or_unopened_store_refuses(backend: Backend) -> None:
    unopened = backend.make()
    with pytest.raises(StoreUnavailable):
        await unopened.record(rec())
    with pytest.raises(StoreUnavailable):
        await unopened.ping()
    store = await backend.open_store()
    await store.ping()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.record(rec())
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_close_commits_queued_records_and_reopen_keeps_them(backend: Backend) -> None:
    store = backend.make()
    await store.open()
    records = [rec(dedup_key=f"k{i}") for i in range(30)]
    pending = [asyncio.ensure_future(store.record(r)) for r in records]
    await asyncio.sleep(0)  # let them queue (an ordering point, not a wait for time)
    await store.close()
    assert [p.result() for p in pending] == [RecordResult(r.id) for r in records]
    again = await backend.open_store()  # the schema exists: open is idempotent
    assert len(await list_all(again)) == 30
    assert (await again.counters())["ci/runs"].received == 30
    assert await again.record(rec(dedup_key="k0")) == RecordResult(records[0].id, True)


# Listing


async def test_pages_cover_everything_once_newest_first(store: Store) -> None:
    # Equal timestamps included: the id breaks the tie, across page boundaries too.
    records = [rec(received_at=T0 + timedelta(seconds=i // 3)) for i in range(23)]
    await record_all(store, records)
    expected = sorted(records, key=lambda r: (r.received_at, r.id), reverse=True)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        items, cursor = await store.list(DeliveryQuery(limit=5, cursor=cursor))
        pages += 1
        seen += [i.id for i in items]
        if cursor is None:
            break
    assert seen == [r.id for r in expected]
    assert pages == 5


async def test_filters(store: Store) -> None:
    base = T0 + timedelta(days=1)
    a = rec(received_at=base, event_type="push", dedup_key="Alpha-KEY")
    b = rec(received_at=base + timedelta(seconds=1), status="filtered", http_status=202)
    c = rec(
        received_at=base + timedelta(seconds=2),
        status="rejected",
        http_status=401,
        reason="bad_signature",
        message="Signature 100% wrong",
        webhook="ci/other",
    )
    d = rec(received_at=base + timedelta(seconds=3), body=b'{"repo": "Acme/App"}')
    await record_all(store, [a, b, c, d])

    async def ids(**filters: Any) -> list[str]:
        return [r.id for r in await list_all(store, **filters)]

    assert await ids(webhook="ci/other") == [c.id]
    assert await ids(status="filtered") == [b.id]
    assert await ids(event_type="push") == [a.id]
    assert await ids(webhook="ci/runs", status="accepted") == [d.id, a.id]
    assert await ids(since=b.received_at) == [d.id, c.id, b.id]  # inclusive
    assert await ids(until=c.received_at) == [b.id, a.id]  # exclusive
    assert await ids(since=b.received_at, until=d.received_at) == [c.id, b.id]
    assert await ids(q="alpha-key") == [a.id]  # dedup key, any case
    assert await ids(q="BAD_SIG") == [c.id]  # reason
    assert await ids(q="100%") == [c.id]  # message; % is literal
    assert await ids(q="acme/app") == [d.id]  # body
    assert await ids(q=b.id.lower()) == [b.id]  # id
    assert await ids(q="nothing like this") == []


async def test_q_searches_bodies_that_are_not_utf8(store: Store) -> None:
    odd = rec(body=b"\xff\x00 caf\xc3\xa9 \\path")
    await store.record(odd)
    for needle in ("CAFÉ".lower(), "\\path", "caf"):
        assert [r.id for r in await list_all(store, q=needle)] == [odd.id], needle


async def test_limit_is_clamped(store: Store) -> None:
    await record_all(store, [rec() for _ in range(MAX_PAGE + 1)])
    items, cursor = await store.list(DeliveryQuery(limit=0))
    assert len(items) == 1 and cursor is not None
    items, cursor = await store.list(DeliveryQuery(limit=10_000))
    assert len(items) == MAX_PAGE and cursor is not None
    rest, end = await store.list(DeliveryQuery(limit=10_000, cursor=cursor))
    assert len(rest) == 1 and end is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "bm9waXBl",  # no separator
        encode_cursor(T0, "x").replace("MD", "Zz"),  # not a timestamp
        "MjAyNC0wNS0wMVQxMjowMDowMHx4",  # a timestamp without a zone
    ],
)
async def test_bad_cursor_is_value_error(store: Store, cursor: str) -> None:
    with pytest.raises(ValueError):
        await store.list(DeliveryQuery(cursor=cursor))


# Counters and retention


async def test_counters(store: Store) -> None:
    newest_error = rec(
        received_at=T0 + timedelta(hours=2), status="rejected", reason="expired", message="old"
    )
    newest = rec(received_at=T0 + timedelta(hours=3), dedup_key="n")
    await record_all(
        store,
        [
            rec(received_at=T0, status="rejected", reason="bad_signature", message="first"),
            newest_error,
            newest,
            rec(received_at=T0 + timedelta(hours=1), status="filtered"),
            rec(webhook="ci/other"),
        ],
    )
    # Later batches holding older records do not move "last" backwards; duplicates
    # do not count at all.
    await store.record(rec(received_at=T0 - timedelta(days=1), status="rejected"))
    await store.record(rec(received_at=T0 + timedelta(days=1), dedup_key="n"))
    counters = await store.counters()
    assert counters["ci/runs"] == WebhookCounters(
        received=5,
        accepted=1,
        rejected=3,
        filtered=1,
        last_received_at=newest.received_at,
        last_delivery_id=newest.id,
        last_error="expired: old",
    )
    assert counters["ci/other"].received == 1
    assert counters["ci/other"].last_error is None


async def test_resource_counters(store: Store) -> None:
    f = ("EventFilter", "ci/failed-runs")
    t = ("EventType", "ci/github-push")

    def tallies(*items: tuple[tuple[str, str], str, str | None]) -> tuple[Tally, ...]:
        return tuple(Tally(kind, key, counter, error) for (kind, key), counter, error in items)

    newest_error = rec(
        received_at=T0 + timedelta(hours=2),
        status="rejected",
        tallies=tallies((t, "invalid", "$.ref: 3 is not of type 'string'")),
    )
    await record_all(
        store,
        [
            rec(
                tallies=tallies(
                    (t, "validated", None), (f, "evaluated", None), (f, "matched", None)
                )
            ),
            rec(
                status="filtered",
                dedup_key="k",
                tallies=tallies(
                    (t, "validated", None), (f, "evaluated", None), (f, "dropped", None)
                ),
            ),
            newest_error,
            rec(received_at=T0, status="rejected", tallies=tallies((t, "invalid", "older"))),
        ],
    )
    # A duplicate is not stored, so its tallies do not count; an older error from a
    # later batch does not replace the newest one.
    await store.record(rec(dedup_key="k", tallies=tallies((f, "evaluated", None))))
    await store.record(
        rec(received_at=T0 - timedelta(days=1), tallies=tallies((t, "invalid", "oldest")))
    )
    counters = await store.resource_counters()
    assert counters[f] == ResourceCounters(counts={"evaluated": 2, "matched": 1, "dropped": 1})
    assert counters[t].counts == {"validated": 2, "invalid": 3}
    assert counters[t].last_error == "$.ref: 3 is not of type 'string'"
    assert counters[t].last_error_at == newest_error.received_at


async def test_purge_expired(store: Store) -> None:
    now = T0 + timedelta(days=30)
    expired = [rec(expires_at=now - timedelta(seconds=1), dedup_key=f"e{i}") for i in range(7)]
    boundary = rec(expires_at=now)  # not yet: expires_at < now is the rule
    kept = [boundary, rec(expires_at=now + timedelta(days=1)), rec(expires_at=None)]
    await record_all(store, expired + kept)
    assert await store.purge_expired(now) == 7
    assert await store.purge_expired(now) == 0
    assert {r.id for r in await list_all(store)} == {r.id for r in kept}
    assert (await store.counters())["ci/runs"].received == 10  # counters are monotonic
    # A purged key is forgotten: the sender's id is remembered for the retention only.
    again = replace(expired[0], id=new_delivery_id())
    assert await store.record(again) == RecordResult(again.id)


# The pushed configuration, sealed by the receiver (issue 6 review)

# Bytes a text column would mangle: NUL, invalid UTF-8, a backslash (bytea escapes).
NONCE = bytes(range(12))
CIPHERTEXT = b"\x00\xff\xfe\\ sealed \x80" * 100


async def test_no_config_until_one_is_saved(store: Store) -> None:
    assert await store.load_config() is None


async def test_saved_config_round_trips_and_is_replaced(backend: Backend) -> None:
    store = await backend.open_store()
    await store.save_config("v1", NONCE, CIPHERTEXT)
    assert await store.load_config() == ("v1", NONCE, CIPHERTEXT)
    await store.save_config("v2", NONCE[::-1], b"other")
    assert await store.load_config() == ("v2", NONCE[::-1], b"other")
    # One row: another store on the same database (a replica, or this one restarted)
    # reads the newest, and replaces it for everyone.
    other = await backend.open_store()
    assert await other.load_config() == ("v2", NONCE[::-1], b"other")
    await other.save_config("v3", NONCE, CIPHERTEXT)
    assert await store.load_config() == ("v3", NONCE, CIPHERTEXT)
    await store.close()
    reopened = await backend.open_store()
    assert await reopened.load_config() == ("v3", NONCE, CIPHERTEXT)


async def test_config_calls_on_a_closed_store_are_unavailable(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(StoreUnavailable):
        await store.save_config("v1", NONCE, CIPHERTEXT)
    with pytest.raises(StoreUnavailable):
        await store.load_config()


# What only one backend has


async def test_sqlite_is_wal_with_full_sync_and_versioned(sqlite_backend: Backend) -> None:
    store = await sqlite_backend.open_store()
    assert isinstance(store, SQLiteStore)
    assert store._writer is not None
    # FULL: a 2xx survives power loss, not only a crash of the process.
    assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2
    await sqlite_backend.open_store()  # a second open migrates nothing
    with closing(sqlite3.connect(sqlite_backend.location)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
        # 4: the stored receiver configuration; 5: compressed bodies, partial indexes
        assert versions == [(1,), (2,), (3,), (4,), (5,)]


async def test_sqlite_locked_database_is_unavailable_and_reads_go_on(
    sqlite_backend: Backend,
) -> None:
    store = SQLiteStore(sqlite_backend.location, busy_timeout_ms=50)
    await store.open()
    try:
        stored = rec()
        await store.record(stored)
        with closing(sqlite3.connect(sqlite_backend.location, isolation_level=None)) as other:
            other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.record(rec())
            assert await store.get(stored.id) == stored  # WAL: readers are not blocked
            other.execute("ROLLBACK")
        fresh = rec()
        assert await store.record(fresh) == RecordResult(fresh.id)
    finally:
        await store.close()


async def test_sqlite_migrates_a_version_1_database(tmp_path: Any) -> None:
    from hookline.store import sqlite as sqlite_module

    path = tmp_path / "v1.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for statement in sqlite_module.MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1, '2024-01-01')")
        conn.commit()
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.record(rec(tallies=(Tally("EventType", "ci/t", "validated"),)))
        assert (await store.resource_counters())[("EventType", "ci/t")].counts == {"validated": 1}
        assert await store.load_config() is None  # version 4's table came too
        await store.save_config("v", b"n" * 12, b"c")
    finally:
        await store.close()


def test_sqlite_needs_a_file() -> None:
    with pytest.raises(ValueError, match="file"):
        SQLiteStore(":memory:")


async def test_postgres_unreachable_is_store_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/test", connect_timeout=2)
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.record(rec())
    with pytest.raises(StoreUnavailable):
        await store.ping()
    await store.close()


async def test_postgres_lost_connections_never_pass_for_a_commit(
    postgres_backend: Backend,
) -> None:
    # A name of our own: the server is shared, only this store's sessions get killed.
    name = f"hl-{uuid.uuid4().hex[:12]}"
    store = PostgresStore(f"{postgres_backend.location}&application_name={name}")
    await store.open()
    try:
        await store.record(rec())
        answered: list[DeliveryRecord] = []
        for _ in range(3):
            await postgres_backend.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{name}'"
            )
            attempt = rec()
            try:
                await store.record(attempt)
            except StoreUnavailable:
                continue
            answered.append(attempt)
        # Whatever was answered is stored (read through another store: this one's
        # reads may meet a killed session too).
        other = await postgres_backend.open_store()
        for record in answered:
            assert await other.get(record.id) == record
        # The pool replaces killed sessions on its own: each failure costs one.
        for _ in range(5):
            last = rec()
            with contextlib.suppress(StoreUnavailable):
                assert await store.record(last) == RecordResult(last.id)
                break
        else:
            pytest.fail("the store did not recover from lost connections")
    finally:
        await store.close()


# The store URL


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/hookline.db", "data/hookline.db"),  # relative (SQLAlchemy)
        ("sqlite:////var/lib/hookline.db", "/var/lib/hookline.db"),  # absolute
        ("hookline.db", "hookline.db"),
        ("/tmp/hookline.db", "/tmp/hookline.db"),
    ],
)
def test_open_store_sqlite_urls(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteStore) and store.path == path


@pytest.mark.parametrize("url", ["postgresql://u@db:5432/hooks", "postgres://u:p@db/hooks"])
def test_open_store_postgres_urls(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, PostgresStore) and store.dsn == url


@pytest.mark.parametrize(
    "url",
    ["mysql://db/hooks", "", "sqlite://", "sqlite:///", "sqlite:hookline.db",
     "sqlite:///:memory:", "sqlite:///x.db?mode=ro"],
)  # fmt: skip
def test_open_store_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


# The group-commit helper on its own


class FakeCommit:
    """commit_batch that records its batches; can hold commits open, or fail some."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.fail: dict[int, Exception] = {}  # batch number (from 0) -> what it raises

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if len(self.batches) - 1 in self.fail:
            raise self.fail[len(self.batches) - 1]
        return [item * 10 for item in items]


async def held_committer(max_batch: int = 500) -> tuple[FakeCommit, GroupCommitter[int, int]]:
    fake = FakeCommit()
    fake.gate = asyncio.Event()
    committer = GroupCommitter(fake, max_batch=max_batch)
    committer.start()
    return fake, committer


async def test_items_queued_during_a_commit_form_the_next_batch() -> None:
    fake, committer = await held_committer(max_batch=4)
    first = asyncio.ensure_future(committer.submit(1))
    await fake.started.wait()  # the lone item went at once: no waiting for company
    later = [asyncio.ensure_future(committer.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)  # let them queue
    assert fake.gate is not None
    fake.gate.set()
    assert await first == 10
    assert await asyncio.gather(*later) == [i * 10 for i in range(2, 12)]
    assert fake.batches == [[1], [2, 3, 4, 5], [6, 7, 8, 9], [10, 11]]
    assert committer.committed_batches == 4 and committer.committed_items == 11
    await committer.close()


async def test_a_failed_commit_fails_every_caller_of_its_batch_only() -> None:
    fake, committer = await held_committer()
    held = asyncio.ensure_future(committer.submit(0))
    await fake.started.wait()
    doomed = [asyncio.ensure_future(committer.submit(i)) for i in range(1, 4)]
    fake.fail[1] = OSError("disk I/O error")  # the second batch fails, not the first
    await asyncio.sleep(0)
    assert fake.gate is not None
    fake.gate.set()
    assert await held == 0
    for future in doomed:
        with pytest.raises(StoreUnavailable, match="disk I/O error") as caught:
            await future
        assert isinstance(caught.value.__cause__, OSError)
    assert await committer.submit(5) == 50
    assert committer.failed_batches == 1
    await committer.close()


async def test_a_commit_with_the_wrong_number_of_results_is_a_failure() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[1:]

    committer: GroupCommitter[int, int] = GroupCommitter(short)
    committer.start()
    outcomes = await asyncio.gather(
        committer.submit(1), committer.submit(2), return_exceptions=True
    )
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    await committer.close()


async def test_close_commits_the_queue_and_refuses_more() -> None:
    fake = FakeCommit()
    committer = GroupCommitter(fake)
    with pytest.raises(StoreUnavailable):
        await committer.submit(1)  # not started
    committer.start()
    queued = [asyncio.ensure_future(committer.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    await committer.close()
    assert [q.result() for q in queued] == [0, 10, 20, 30, 40]
    with pytest.raises(StoreUnavailable):
        await committer.submit(6)


async def test_a_cancelled_caller_does_not_disturb_its_batch() -> None:
    fake, committer = await held_committer()
    held = asyncio.ensure_future(committer.submit(0))
    await fake.started.wait()
    gone, stays = (asyncio.ensure_future(committer.submit(i)) for i in (1, 2))
    await asyncio.sleep(0)
    gone.cancel()
    assert fake.gate is not None
    fake.gate.set()
    assert (await held, await stays) == (0, 20)
    assert fake.batches == [[0], [1, 2]]  # its item was committed all the same
    await committer.close()
