"""Where the PostgreSQL used by tests is: HOOKLINE_TEST_POSTGRES_DSN, else the server
CI's machine runs on 127.0.0.1:5432 (scripts/postgres.sh starts one when absent)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_dsn() -> str:
    return os.environ.get("HOOKLINE_TEST_POSTGRES_DSN", DEFAULT_DSN)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A database of its own on the test server, dropped afterwards: for a receiver
    run as a subprocess, which cannot be handed an isolated schema."""
    base = postgres_dsn()
    name = f"hookline_test_{uuid.uuid4().hex[:8]}"

    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(postgres_dsn())
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """fresh_postgres_database for async tests."""
    name = f"hookline_test_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_dsn().rsplit("/", 1)[0] + f"/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
