"""Where the PostgreSQL used by tests is: HOOKLINE_TEST_POSTGRES_DSN, else the server
CI's machine runs on 127.0.0.1:5432 (scripts/postgres.sh starts one when absent)."""

from __future__ import annotations

import os

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_dsn() -> str:
    return os.environ.get("HOOKLINE_TEST_POSTGRES_DSN", DEFAULT_DSN)
