"""The in-memory counts behind --max-outbox-backlog (issue 11 §4)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from hookline.cli import build_parser, main
from hookline.receiver.backlog import DEFAULT_BOUND, Backlog, Key, keep_in_step, seed_from
from hookline.store.base import StoreUnavailable

A: Key = ("ns/hook", "a")
B: Key = ("ns/hook", "b")


def test_reserving_all_or_nothing_up_to_the_bound() -> None:
    backlog = Backlog(bound=2)
    assert backlog.try_reserve((A, B))
    assert backlog.try_reserve((A,))
    assert backlog.full((B, A)) == A
    assert not backlog.try_reserve((B, A))  # A is full: B is not reserved either
    assert (backlog.count(A), backlog.count(B)) == (2, 1)


def test_commit_release_and_settle_move_the_counts() -> None:
    backlog = Backlog(bound=5)
    backlog.try_reserve((A,))
    backlog.try_reserve((A,))
    backlog.commit((A,))  # stored
    backlog.release((A,))  # a duplicate: nothing stored
    assert (backlog.committed, backlog.reserved) == ({A: 1}, {})
    backlog.settling(*A)()
    backlog.settling(*A)()  # more than was counted (another replica's row): not below 0
    assert backlog.count(A) == 0
    assert backlog.snapshot() == {}


def test_seed_replaces_the_committed_counts_and_keeps_reservations() -> None:
    backlog = Backlog(bound=10)
    backlog.try_reserve((A,))
    backlog.commit((A,))
    backlog.try_reserve((B,))
    backlog.seed({A: 7, B: 0})
    assert backlog.snapshot() == {"ns/hook": {"a": 7, "b": 1}}
    report = backlog.report()
    assert (report.bound, report.waiting) == (10, 0)


def test_no_bound_counts_nothing() -> None:
    backlog = Backlog(bound=0)
    assert not backlog.enabled
    assert all(backlog.try_reserve((A,)) for _ in range(5))
    backlog.settling(*A)()
    assert backlog.snapshot() == {}


async def test_a_waiter_gets_the_room_a_settled_row_makes() -> None:
    backlog = Backlog(bound=1, wait_seconds=30.0)
    assert backlog.try_reserve((A,))
    backlog.commit((A,))
    waiter = asyncio.ensure_future(backlog.reserve((A,)))
    await asyncio.sleep(0)
    assert backlog.waiting == 1 and backlog.resync_wanted.is_set()
    backlog.settling(*A)()
    assert await asyncio.wait_for(waiter, 5)
    assert (backlog.count(A), backlog.waiting) == (1, 0)


async def test_a_waiter_gives_up_after_the_wait() -> None:
    backlog = Backlog(bound=1, wait_seconds=0.01)
    backlog.try_reserve((A,))
    assert not await backlog.reserve((A,))
    assert (backlog.count(A), backlog.waiting) == (1, 0)


async def test_seeding_reads_the_store_and_survives_it_failing() -> None:
    backlog = Backlog(bound=3)
    reads: list[Mapping[Key, int]] = [{A: 2}]

    async def read() -> Mapping[Key, int]:
        if not reads:
            raise StoreUnavailable("down")
        return reads.pop(0)

    await seed_from(backlog, read)
    assert backlog.count(A) == 2
    await seed_from(backlog, read)  # the store is down: the counts stay
    assert backlog.count(A) == 2


async def test_rows_committed_during_a_resync_are_not_lost() -> None:
    # The read may have happened before these commits: counted on top (a few too many
    # until the next resync), never too few, so the backlog cannot overshoot.
    backlog = Backlog(bound=10)

    async def read() -> Mapping[Key, int]:
        assert backlog.try_reserve((A,))
        backlog.commit((A,))
        return {A: 4}

    await seed_from(backlog, read)
    assert backlog.count(A) == 5
    backlog.try_reserve((A,))
    backlog.commit((A,))  # after the resync: in the next read, not added on top of it

    async def read_again() -> Mapping[Key, int]:
        return {A: 6}

    await seed_from(backlog, read_again)
    assert backlog.count(A) == 6


async def test_a_row_finished_across_a_resync_stays_counted() -> None:
    # Its finish may have reached the store before the read: taking it off again after
    # the resync could count it twice; left counted until the next resync instead.
    backlog = Backlog(bound=10)

    async def read() -> Mapping[Key, int]:
        return {A: 3}

    await seed_from(backlog, read)
    before = backlog.settling(*A)
    await seed_from(backlog, read)
    before()
    assert backlog.count(A) == 3
    after = backlog.settling(*A)
    after()
    assert backlog.count(A) == 2


async def test_keep_in_step_resyncs_when_asked() -> None:
    backlog = Backlog(bound=3)
    done = asyncio.Event()

    async def read() -> Mapping[Key, int]:
        done.set()
        return {B: 1}

    task = asyncio.create_task(keep_in_step(backlog, read, interval=3600, min_gap=0))
    backlog.resync_wanted.set()
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    assert backlog.count(B) == 1


def test_cli_default_is_the_receivers() -> None:
    args = build_parser().parse_args(["receiver"])
    assert args.max_outbox_backlog == DEFAULT_BOUND
    args = build_parser().parse_args(["receiver", "--max-outbox-backlog", "0"])
    assert args.max_outbox_backlog == 0


def test_cli_refuses_a_negative_bound(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["receiver", "--config-source", "push", "--max-outbox-backlog", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--max-outbox-backlog must be 0 (no bound) or more, not -1" in err
    with pytest.raises(SystemExit) as exited:
        main(["receiver", "--config-source", "push", "--max-outbox-backlog", "many"])
    assert exited.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err
