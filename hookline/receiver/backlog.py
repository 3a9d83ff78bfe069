"""A bound on each destination's outbox backlog (issue 11 §4).

While ingest saturates the receiver's core, its dispatcher gets little of it: the
benchmark of issue 5 saw ~150 deliveries a second forwarded against ~1,200 accepted, so
above ~490 a second the outbox grew without bound while every answer stayed fast. With
a bound (`--max-outbox-backlog N`), a delivery that would put one of its destinations
over N pending rows waits a moment for the dispatcher to make room, and is otherwise
answered 503 with Retry-After: the sender keeps it and tries again, and nothing already
accepted is lost or delayed further.

Counting is in memory, per (webhook, destination), so the ingest path never runs a
COUNT: `committed` are rows the store holds as pending, `reserved` are rows of
deliveries admitted but not yet committed (so concurrent requests cannot all slip in
under the bound at once). The dispatcher reports each row it settles (delivered,
failed, dead-lettered). `seed()` replaces `committed` with the store's own pending
counters, at start, on every configuration change and every few seconds: that corrects
what this process cannot see (rows other replicas settled or a replay added).

A resync races the commits and finishes in flight: the store's answer may or may not
include them. Each race is settled towards counting too many (a few rows refused early,
until the next resync), never too few, so one receiver's backlog never passes the bound:
rows committed during the read are added on top of it, and a row whose finish began
before a read ended is not taken off again after it (the read may already lack it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..store.base import StoreUnavailable

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (webhook "<namespace>/<name>", destination name)

# Default of --max-outbox-backlog: at the ~700 deliveries a second one receiver forwards
# (docs/benchmarks.md, SQLite) two to three minutes of work for one destination: far
# above what a burst leaves behind, small enough that a destination that stopped
# answering is refused new work long before its rows outlive their retry window.
DEFAULT_BOUND = 100_000
# How long a delivery that finds its destination full waits for room before the 503.
DEFAULT_WAIT_SECONDS = 1.0
# How often the counts are re-read from the store (see the module's docstring), and
# how soon after one a request that found a destination full may ask for the next.
RESYNC_SECONDS = 5.0
RESYNC_MIN_GAP = 0.5


@dataclass(frozen=True)
class BacklogReport:
    """What the stats and the metrics show."""

    backlog: dict[str, dict[str, int]]  # webhook -> destination -> rows counted
    bound: int
    waiting: int


@dataclass
class Backlog:
    bound: int = DEFAULT_BOUND  # 0: no bound (nothing is counted)
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    committed: dict[Key, int] = field(default_factory=dict)
    reserved: dict[Key, int] = field(default_factory=dict)
    waiting: int = 0  # requests waiting for room now
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    # Rows committed while a resync reads the store: the read may or may not include
    # them, so seed() adds them on top. Counting a few twice until the next resync
    # keeps the backlog under the bound; dropping them would let it overshoot.
    _committed_during_read: dict[Key, int] | None = None
    # Resyncs begun and ended: odd while one reads the store.
    _epoch: int = 0
    # Set by a request that found a destination full: the next resync comes at once,
    # so rows another replica settled are not mistaken for a full backlog for long.
    resync_wanted: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def enabled(self) -> bool:
        return self.bound > 0

    def count(self, key: Key) -> int:
        return self.committed.get(key, 0) + self.reserved.get(key, 0)

    def full(self, keys: Iterable[Key]) -> Key | None:
        """The first of `keys` that has no room for one more row, or None."""
        for key in keys:
            if self.count(key) >= self.bound:
                return key
        return None

    def try_reserve(self, keys: tuple[Key, ...]) -> bool:
        """Reserve one row for each of `keys` if all have room; else reserve nothing."""
        if not self.enabled:
            return True
        if self.full(keys) is not None:
            return False
        for key in keys:
            self.reserved[key] = self.reserved.get(key, 0) + 1
        return True

    async def reserve(self, keys: tuple[Key, ...]) -> bool:
        """try_reserve, waiting up to wait_seconds for room; False if none came."""
        if self.try_reserve(keys):
            return True
        self.resync_wanted.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        self.waiting += 1
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return False
                room = self._room
                try:
                    await asyncio.wait_for(room.wait(), left)
                except TimeoutError:
                    return self.try_reserve(keys)
                if self.try_reserve(keys):
                    return True
        finally:
            self.waiting -= 1

    def commit(self, keys: Iterable[Key]) -> None:
        """The reserved rows are now in the store (pending)."""
        during = self._committed_during_read
        for key in keys:
            self._take(self.reserved, key)
            self.committed[key] = self.committed.get(key, 0) + 1
            if during is not None:
                during[key] = during.get(key, 0) + 1

    def release(self, keys: Iterable[Key]) -> None:
        """The reserved rows were not written (a duplicate, a failed commit)."""
        for key in keys:
            self._take(self.reserved, key)
        self._wake()

    def settling(self, webhook: str, destination: str) -> Callable[[], None]:
        """A pending row of the destination is being finished as delivered, failed or
        dead-lettered: call what this returns once the store has it."""
        began = self._epoch

        def settled() -> None:
            if not self.enabled:
                return
            if began == self._epoch and began % 2 == 0:
                self._take(self.committed, (webhook, destination))
            # else a resync read the store meanwhile, perhaps already without this row:
            # counted until the next one (see the module's docstring)
            self._wake()

        return settled

    def reading(self) -> None:
        """A resync starts reading the store's counts (see _committed_during_read)."""
        self._committed_during_read = {}
        self._epoch += 1

    def seed(self, pending: Mapping[Key, int] | None) -> None:
        """Take the store's pending counts as the committed rows, plus the rows
        committed since reading() (None: the read failed, keep the counts)."""
        during, self._committed_during_read = self._committed_during_read or {}, None
        self._epoch += self._epoch % 2  # even again: the read is over
        if pending is None:
            return
        counts = dict(pending)
        for key, n in during.items():
            counts[key] = counts.get(key, 0) + n
        self.committed = {key: n for key, n in counts.items() if n > 0}
        self._wake()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """webhook -> destination -> rows counted (pending and reserved)."""
        out: dict[str, dict[str, int]] = {}
        for key in sorted(set(self.committed) | set(self.reserved)):
            out.setdefault(key[0], {})[key[1]] = self.count(key)
        return out

    def report(self) -> BacklogReport:
        return BacklogReport(self.snapshot(), self.bound, self.waiting)

    def _wake(self) -> None:
        # Every waiter looks again; a new event for the next ones to wait on.
        if self.waiting:
            room, self._room = self._room, asyncio.Event()
            room.set()

    @staticmethod
    def _take(counts: dict[Key, int], key: Key) -> None:
        left = counts.get(key, 0) - 1
        if left > 0:
            counts[key] = left
        else:
            counts.pop(key, None)


PendingReader = Callable[[], Awaitable[Mapping[Key, int]]]


async def seed_from(backlog: Backlog, read: PendingReader) -> None:
    """One resync; a store that does not answer leaves the counts as they are."""
    backlog.resync_wanted.clear()  # a wish made during the read asks for another
    backlog.reading()
    pending: Mapping[Key, int] | None = None
    try:
        pending = await read()
    except StoreUnavailable as exc:
        log.warning("cannot read the outbox backlog, will retry: %s", exc)
    finally:
        backlog.seed(pending)


async def keep_in_step(
    backlog: Backlog,
    read: PendingReader,
    interval: float = RESYNC_SECONDS,
    min_gap: float = RESYNC_MIN_GAP,
) -> None:
    """Resync every `interval` seconds, or sooner when asked, until cancelled."""
    while True:
        await asyncio.sleep(min_gap)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(backlog.resync_wanted.wait(), max(0.0, interval - min_gap))
        await seed_from(backlog, read)
