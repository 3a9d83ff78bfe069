"""What only the SQLite store does with what it writes (schema version 5): bodies
compressed where that pays, and partial indexes that the listings still use."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hookline.store import CorruptRecord, DeliveryQuery, SQLiteStore, encode_cursor
from hookline.store import sqlite as sqlite_module
from tests.store.test_store_contract import T0, list_all, rec


def _webhook_json(size: int) -> bytes:
    """A JSON body shaped like a webhook's: repeated keys and URL templates."""
    items = [
        {"id": n, "url": f"https://api.github.com/repos/acme/app/issues/{n}", "state": "open"}
        for n in range(size // 70)
    ]
    return json.dumps({"action": "opened", "needle": "Zebra-42", "items": items}).encode()


def _stored(path: str, delivery_id: str) -> tuple[int | None, str | None]:
    with closing(sqlite3.connect(path)) as conn:
        length, encoding = conn.execute(
            "SELECT length(body), body_encoding FROM deliveries WHERE id = ?", (delivery_id,)
        ).fetchone()
    return length, encoding


async def test_bodies_that_shrink_are_stored_compressed_and_read_back_exactly(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)
    await store.open()
    try:
        webhook_body = _webhook_json(10_000)
        random_body = os.urandom(4096)  # does not compress: stored as received
        small_body = b'{"zen": "Keep it logically awesome."}'  # too small to bother
        records = [rec(body=webhook_body), rec(body=random_body), rec(body=small_body), rec()]
        for record in records:
            await store.record(record)
        for record in records:
            assert await store.get(record.id) == record

        length, encoding = _stored(path, records[0].id)
        assert encoding == "lz4"
        assert length is not None and length < len(webhook_body) / 3
        assert _stored(path, records[1].id) == (4096, None)
        assert _stored(path, records[2].id) == (len(small_body), None)
        assert _stored(path, records[3].id) == (None, None)

        # Search looks inside bodies as received, compressed or not.
        assert [r.id for r in await list_all(store, q="zebra-42")] == [records[0].id]
        assert [r.id for r in await list_all(store, q="logically awesome")] == [records[2].id]
    finally:
        await store.close()


async def test_a_version_4_database_keeps_its_bodies_and_compresses_new_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v4.db"
    old = rec(body=_webhook_json(5000), status="rejected", http_status=401, reason="bad")
    columns = sqlite_module.COLUMNS.replace(", body_encoding", "")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for version in range(1, 5):
            for statement in sqlite_module.MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, '2024-01-01')", (version,))
        row = sqlite_module._to_row(old)[:-1]  # version 4 had no body_encoding
        conn.execute(f"INSERT INTO deliveries ({columns}) VALUES ({', '.join('?' * 15)})", row)
        conn.commit()

    store = SQLiteStore(str(path))
    await store.open()
    try:
        new = rec(body=_webhook_json(5000))
        await store.record(new)
        assert await store.get(old.id) == old
        assert await store.get(new.id) == new
        assert _stored(str(path), old.id)[1] is None
        assert _stored(str(path), new.id)[1] == "lz4"
        assert {r.id for r in await list_all(store, q="zebra-42")} == {old.id, new.id}
        # The rebuilt partial index holds the refusal from before the migration.
        assert [r.id for r in await list_all(store, webhook="ci/runs", status="rejected")] == [
            old.id
        ]
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("encoding", "stored", "message"),
    [
        ("zstd", b"x" * 100, "unknown encoding 'zstd'"),
        ("lz4", (10_000).to_bytes(4, "little") + b"\xff" * 64, "does not decode"),
    ],
)
async def test_a_body_that_does_not_decode_is_a_corrupt_record_not_wrong_bytes(
    tmp_path: Path, encoding: str, stored: bytes, message: str
) -> None:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)
    await store.open()
    try:
        record = rec(body=_webhook_json(2000))
        await store.record(record)
        with closing(sqlite3.connect(path)) as conn:
            conn.execute(
                "UPDATE deliveries SET body = ?, body_encoding = ? WHERE id = ?",
                (stored, encoding, record.id),
            )
            conn.commit()
        with pytest.raises(CorruptRecord, match=message) as raised:
            await store.get(record.id)
        assert record.id in str(raised.value)
        # Listings carry no body, and a search skips what it cannot read.
        assert [r.id for r in await list_all(store)] == [record.id]
        assert await list_all(store, q="zebra-42") == []
    finally:
        await store.close()


def _plan(path: str, query: DeliveryQuery) -> str:
    sql, params = sqlite_module.list_sql(query, 51)
    with closing(sqlite3.connect(path)) as conn:
        conn.create_function("hookline_body", 2, sqlite_module.searchable_body)
        return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.fixture(scope="module")
def analysed_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store that has seen traffic, with the statistics `ANALYZE` (or `PRAGMA
    optimize`) gives the planner: mostly accepted deliveries of a few Webhooks."""
    path = str(tmp_path_factory.mktemp("plans") / "s.db")

    async def fill() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            for n in range(600):
                refused = n % 20 == 0
                await store.record(
                    rec(
                        webhook=f"ci/hook-{n % 3}",
                        status="rejected" if refused else "accepted",
                        http_status=401 if refused else 202,
                        event_type=None if n % 2 else "github.push/v1",
                        dedup_key=f"key-{n}",
                    )
                )
        finally:
            await store.close()

    asyncio.run(fill())
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("ANALYZE")
    return path


CURSOR = encode_cursor(T0 + timedelta(seconds=30), "01HZZZZZZZZZZZZZZZZZZZZZZZ")


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "deliveries_newest"),
        ({"cursor": CURSOR}, "deliveries_newest"),
        ({"status": "rejected"}, "deliveries_newest"),
        ({"webhook": "ci/hook-1"}, "deliveries_webhook_newest"),
        ({"webhook": "ci/hook-1", "status": "accepted"}, "deliveries_webhook_newest"),
        ({"webhook": "ci/hook-1", "status": "rejected"}, "deliveries_webhook_refused_newest"),
        ({"webhook": "ci/hook-1", "status": "filtered"}, "deliveries_webhook_refused_newest"),
        (
            {"webhook": "ci/hook-1", "status": "rejected", "cursor": CURSOR, "since": T0},
            "deliveries_webhook_refused_newest",
        ),
        ({"event_type": "github.push/v1"}, "deliveries_event_type_newest"),
        ({"event_type": "github.push/v1", "cursor": CURSOR}, "deliveries_event_type_newest"),
    ],
)
def test_every_listing_reads_an_index_in_order(
    analysed_store: str, filters: dict[str, Any], index: str
) -> None:
    # The partial indexes are used only when the query states their condition: a
    # listing that fell back to a scan and a sort would still pass every other test.
    plan = _plan(analysed_store, DeliveryQuery(**filters))
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives the order
