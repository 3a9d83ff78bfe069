"""Fixtures for the store contract suite: every test runs against SQLite and PostgreSQL.

PostgreSQL comes from HOOKLINE_TEST_POSTGRES_DSN (default: CI's service on
127.0.0.1:5432). Each test gets its own schema, dropped afterwards. When the server does
not answer the PostgreSQL half FAILS: a skipped backend would let CI pass untested.
scripts/postgres.sh starts a throwaway server when none is running.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from hookline.store import PostgresStore, SQLiteStore, Store
from tests.support.postgres import postgres_dsn

# Triggers that make the next commits fail, and the statements that remove them. In
# PostgreSQL the trigger is deferred to COMMIT: the hardest case, where every statement
# of the batch succeeded and only the commit itself fails.
SQLITE_FAIL = """CREATE TRIGGER hl_fail BEFORE INSERT ON deliveries
    BEGIN SELECT RAISE(ABORT, 'injected failure'); END"""
SQLITE_HEAL = "DROP TRIGGER hl_fail"
POSTGRES_FAIL = """
    CREATE FUNCTION hl_fail() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
    CREATE CONSTRAINT TRIGGER hl_fail AFTER INSERT ON deliveries
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hl_fail();
"""
POSTGRES_HEAL = "DROP TRIGGER hl_fail ON deliveries; DROP FUNCTION hl_fail()"


def with_search_path(dsn: str, schema: str) -> str:
    # asyncpg turns unknown DSN query parameters into server settings.
    parts = urlsplit(dsn)
    query = [*parse_qsl(parts.query), ("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def redacted(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class Backend:
    """One database for a test, and what the tests do to it besides using a store."""

    name: str
    make: Callable[[], Store]  # a new, unopened store on this test's database
    execute: Callable[[str], Awaitable[None]]  # raw SQL on the same database
    fail_sql: str
    heal_sql: str
    location: str  # the SQLite file, or the PostgreSQL DSN (with the test's schema)
    _opened: list[Store] = field(default_factory=list)

    async def open_store(self) -> Store:
        """Another opened store on the same database, closed at teardown."""
        store = self.make()
        await store.open()
        self._opened.append(store)
        return store

    async def fail_commits(self) -> None:
        await self.execute(self.fail_sql)

    async def heal(self) -> None:
        await self.execute(self.heal_sql)

    async def close_stores(self) -> None:
        for store in self._opened:
            await store.close()


_postgres_problem: str | None = None


async def connect_postgres() -> asyncpg.Connection:
    """An admin connection, or a test failure that says what to do."""
    global _postgres_problem
    dsn = postgres_dsn()
    if _postgres_problem is None:
        try:
            return await asyncpg.connect(dsn, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            # Remembered, so that each further test fails at once instead of waiting.
            _postgres_problem = (
                f"PostgreSQL is not reachable at {redacted(dsn)}: {type(exc).__name__}: "
                f"{exc}. The store suite runs against PostgreSQL and never skips it: start "
                "a server (CI: the service on 127.0.0.1:5432, trust auth, database 'test'), "
                "point HOOKLINE_TEST_POSTGRES_DSN at one, or run scripts/test.sh, whose "
                "scripts/postgres.sh provisions a throwaway server."
            )
    pytest.fail(_postgres_problem, pytrace=False)


def _sqlite_executor(path: Path) -> Callable[[str], Awaitable[None]]:
    async def execute(sql: str) -> None:
        conn = sqlite3.connect(path, timeout=5)
        try:
            conn.executescript(sql)
        finally:
            conn.close()

    return execute


@asynccontextmanager
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Backend]:
    path = tmp_path / "deliveries.db"
    backend = Backend(
        "sqlite",
        lambda: SQLiteStore(str(path)),
        _sqlite_executor(path),
        SQLITE_FAIL,
        SQLITE_HEAL,
        location=str(path),
    )
    try:
        yield backend
    finally:
        await backend.close_stores()


@asynccontextmanager
async def postgres_database() -> AsyncIterator[Backend]:
    """A fresh schema on the test server; the stores' DSN selects it as search_path."""
    admin = await connect_postgres()
    schema = f"hookline_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        await admin.execute(f'SET search_path TO "{schema}"')
        dsn = with_search_path(postgres_dsn(), schema)

        async def execute(sql: str) -> None:
            await admin.execute(sql)

        backend = Backend(
            "postgres",
            lambda: PostgresStore(dsn),
            execute,
            POSTGRES_FAIL,
            POSTGRES_HEAL,
            location=dsn,
        )
        try:
            yield backend
        finally:
            await backend.close_stores()
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The database under test, once per store implementation."""
    database = sqlite_database(tmp_path) if request.param == "sqlite" else postgres_database()
    async with database as backend:
        yield backend


@pytest.fixture
async def store(backend: Backend) -> Store:
    """An opened store of the backend under test (closed with the backend)."""
    return await backend.open_store()


@pytest.fixture
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    async with sqlite_database(tmp_path) as backend:
        yield backend


@pytest.fixture
async def postgres_backend() -> AsyncIterator[Backend]:
    async with postgres_database() as backend:
        yield backend
