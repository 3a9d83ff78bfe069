"""The delivery log and its outbox: SQLite (embedded default, one replica) or PostgreSQL
(replicas).

`open_store(url)` picks the implementation from the `--store` URL; call `await
store.open()` before use and `await store.close()` after.
"""

from __future__ import annotations

from hookline.store.base import (
    STATUSES,
    CorruptRecord,
    DeliveryQuery,
    DeliveryRecord,
    DeliveryStatus,
    RecordResult,
    ResourceCounters,
    Store,
    StoreUnavailable,
    Tally,
    WebhookCounters,
    decode_cursor,
    encode_cursor,
    new_delivery_id,
)
from hookline.store.outbox import (
    AGING_SECONDS,
    OUTBOX_STATES,
    PRIORITIES,
    Attempt,
    DestinationCounters,
    OutboxItem,
    OutboxRow,
    OutboxState,
    OutboxTask,
    Outcome,
    Replay,
    ReplayRefused,
    ReplaySelector,
)
from hookline.store.postgres import PostgresStore
from hookline.store.sqlite import SQLiteStore

__all__ = [
    "AGING_SECONDS",
    "OUTBOX_STATES",
    "PRIORITIES",
    "STATUSES",
    "Attempt",
    "CorruptRecord",
    "DeliveryQuery",
    "DeliveryRecord",
    "DeliveryStatus",
    "DestinationCounters",
    "OutboxItem",
    "OutboxRow",
    "OutboxState",
    "OutboxTask",
    "Outcome",
    "PostgresStore",
    "RecordResult",
    "Replay",
    "ReplayRefused",
    "ReplaySelector",
    "ResourceCounters",
    "SQLiteStore",
    "Store",
    "StoreUnavailable",
    "Tally",
    "WebhookCounters",
    "decode_cursor",
    "encode_cursor",
    "new_delivery_id",
    "open_store",
    "sqlite_path",
]


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite store URL, or None when `url` is not one.

    SQLAlchemy's convention: `sqlite:///rel/path.db` is relative to the working
    directory, `sqlite:////abs/path.db` absolute. A plain path is accepted too.
    """
    if url.startswith("sqlite:"):
        rest = url.removeprefix("sqlite:")
        if not rest.startswith("///") or len(rest) == 3 or "?" in rest:
            raise ValueError(
                f"store URL {url!r}: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db (a file; in-memory and query options are "
                "not supported)"
            )
        return rest[3:]
    if "://" not in url and url.strip():
        return url
    return None


def open_store(url: str) -> Store:
    """A store for `url`, not yet opened. Raises ValueError for an unsupported URL."""
    path = sqlite_path(url)
    if path is not None:
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ValueError(
        f"store URL scheme {scheme!r} is not supported: use sqlite:///path/to/file.db "
        "(embedded, one replica) or postgresql://user@host:port/database (replicas)"
    )
