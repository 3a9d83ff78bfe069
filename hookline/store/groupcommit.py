"""Group commit: many concurrent callers, one transaction per batch.

A durable commit (fsync in SQLite, a WAL flush in PostgreSQL) costs about the same for
one row as for hundreds, so committing each request on its own would cap ingest at the
disk's flush rate. Instead every caller queues its item and waits; one writer task takes
everything queued (up to `max_batch`), commits it in one transaction, and answers each
caller. While that commit runs, new items accumulate and form the next batch, so batching
needs no timer: at low load a lone item is committed at once, under load batches grow by
themselves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from hookline.store.base import StoreUnavailable

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_BATCH = 500


class GroupCommitter(Generic[T, R]):
    """Queue items from many tasks and commit them in batches through `commit_batch`.

    `commit_batch(items)` must commit all items in ONE transaction and return one result
    per item, in order; if it raises, nothing of the batch may have been committed as far
    as the callers know, and every caller of that batch gets StoreUnavailable.
    """

    def __init__(
        self,
        commit_batch: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._commit_batch = commit_batch
        self._max_batch = max_batch
        self._name = name
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Observability (and the tests' proof that batching happens).
        self.committed_batches = 0
        self.committed_items = 0
        self.failed_batches = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the writer task on the running loop (idempotent)."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def submit(self, item: T) -> R:
        """Queue `item`; return its result once its batch is committed.

        Raises StoreUnavailable if the batch could not be committed or the committer is
        closed: a caller never sees a result for an item that was not committed.
        """
        if self._closed or self._task is None:
            raise StoreUnavailable("the store is not open")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wakeup.set()
        # A cancelled caller (client went away) does not withdraw its item: it may already
        # be in the transaction being committed, and recording it is harmless either way.
        return await future

    async def close(self) -> None:
        """Commit what is queued, then stop the writer. Later submits fail."""
        self._closed = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closed:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                count = min(len(self._queue), self._max_batch)
                batch = [self._queue.popleft() for _ in range(count)]
                await self._commit(batch)
        except asyncio.CancelledError:
            # The loop is shutting down: nobody will drain the queue any more, so fail
            # the waiting callers rather than leave them hanging.
            self._fail_all(StoreUnavailable("the store writer was stopped"))
            raise

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._commit_batch(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"commit_batch returned {len(results)} results for {len(items)} items"
                )
        except asyncio.CancelledError:
            for _, future in batch:
                _fail(future, StoreUnavailable("the store writer was stopped"))
            raise
        except Exception as exc:
            self.failed_batches += 1
            for _, future in batch:
                _fail(future, _unavailable(exc))
            return
        self.committed_batches += 1
        self.committed_items += len(items)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _fail_all(self, exc: StoreUnavailable) -> None:
        while self._queue:
            _, future = self._queue.popleft()
            _fail(future, StoreUnavailable(str(exc)))


def _unavailable(exc: BaseException) -> StoreUnavailable:
    # A fresh exception per caller: one instance raised in many tasks would collect all
    # their tracebacks.
    if isinstance(exc, StoreUnavailable):
        err = StoreUnavailable(*exc.args)
        err.__cause__ = exc.__cause__ or exc
    else:
        err = StoreUnavailable(f"commit failed: {type(exc).__name__}: {exc}")
        err.__cause__ = exc
    return err


def _fail(future: asyncio.Future[R], exc: StoreUnavailable) -> None:
    if not future.done():
        future.set_exception(exc)
        # Mark it retrieved: a caller that was cancelled will never read it, and the
        # loop would otherwise log "exception was never retrieved".
        future.exception()
