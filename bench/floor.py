"""The durable floor for bench/ingest.py: the baseline (a bare aiohttp handler that reads
the body) plus the one thing an ingest path cannot skip — committing the body durably
before the answer — and nothing else: no route table, auth, record, deduplication,
metrics or index but SQLite's rowid. The same storage hookline's embedded store uses:
SQLite in WAL mode with synchronous = FULL, 16 KiB pages, one writer thread, group commit
(every request that arrives during a commit goes into the next one).

Its ratio to the baseline, measured in the same run, is a ceiling for any design of this
shape (one process, one core, durable commit in SQLite before the answer): issue 3's
target of 0.5 is to be read against it (docs/benchmarks.md).

    python bench/floor.py --port 9000 --database /tmp/floor.db [--lz4]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lz4.block
from aiohttp import web


class Floor:
    """Group commit of (rowid, body) rows on one writer thread."""

    def __init__(self, path: Path, *, compress: bool) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="floor-writer")
        self._compress = compress
        self._queue: list[tuple[bytes, asyncio.Future[int]]] = []
        self._writing = False
        self._drainer: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA page_size = 16384")  # the store's, on a new file
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, body BLOB)")
        # Ids go on from what the file holds: a reused database does not collide.
        self._next_id: int = self._conn.execute(
            "SELECT coalesce(max(id), 0) + 1 FROM bodies"
        ).fetchone()[0]

    async def commit(self, body: bytes) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.append((body, future))
        if not self._writing:
            self._writing = True
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                first = self._next_id
                self._next_id += len(batch)
                try:
                    await loop.run_in_executor(self._pool, self._write, first, batch)
                except Exception as exc:  # every waiter hears of it; none hangs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for offset, (_, future) in enumerate(batch):
                    future.set_result(first + offset)
        finally:
            self._writing = False

    def _write(self, first: int, batch: list[tuple[bytes, asyncio.Future[int]]]) -> None:
        rows = [
            (first + n, lz4.block.compress(body) if self._compress else body)
            for n, (body, _) in enumerate(batch)
        ]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT INTO bodies (id, body) VALUES (?, ?)", rows)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise


DATABASE = web.AppKey("database", Floor)


async def receive(request: web.Request) -> web.Response:
    delivery = await request.app[DATABASE].commit(await request.read())
    return web.json_response({"deliveryId": str(delivery)}, status=202)


def create_app(path: Path, *, compress: bool) -> web.Application:
    app = web.Application()
    app[DATABASE] = Floor(path, compress=compress)
    app.router.add_route("*", "/hooks/{path:.+}", receive)  # the baseline's route
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--lz4", action="store_true", help="store bodies LZ4-compressed")
    args = parser.parse_args()
    app = create_app(args.database, compress=args.lz4)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
