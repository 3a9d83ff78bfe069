"""The outbox contract (issue 5); each test runs on SQLite and PostgreSQL unless named.

Time is never waited for: every call takes `now`, and the tests move it by hand.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from hookline.store import (
    AGING_SECONDS,
    PRIORITIES,
    Attempt,
    DeliveryRecord,
    DestinationCounters,
    OutboxItem,
    OutboxTask,
    Outcome,
    RecordResult,
    ReplayRefused,
    ReplaySelector,
    Store,
    StoreUnavailable,
    new_delivery_id,
)
from tests.store.conftest import Backend

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LEASE = 30.0
_seq = itertools.count()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rec(*destinations: str | OutboxItem, **overrides: Any) -> DeliveryRecord:
    """An accepted record at T0 + n ms (n increasing per call) going to `destinations`."""
    received = overrides.pop("received_at", T0 + timedelta(milliseconds=next(_seq)))
    fields: dict[str, Any] = {
        "id": new_delivery_id(received.timestamp()),
        "webhook": "ci/runs",
        "received_at": received,
        "status": "accepted",
        "http_status": 202,
        "outbox": tuple(d if isinstance(d, OutboxItem) else OutboxItem(d) for d in destinations),
    }
    fields.update(overrides)
    return DeliveryRecord(**fields)


async def record_all(store: Store, records: Sequence[DeliveryRecord]) -> list[RecordResult]:
    return list(await asyncio.gather(*(store.record(r) for r in records)))


async def claim(
    store: Store,
    now: datetime,
    limit: int = 100,
    owner: str = "w1",
    skip: Sequence[tuple[str, str]] = (),
) -> list[OutboxTask]:
    return await store.claim_tasks(owner, now, limit, LEASE, skip)


def attempt(
    task: OutboxTask,
    started: datetime,
    status: int | None = 200,
    *,
    error: str = "",
    response: bytes = b"ok",
    outcome: Outcome = "delivered",
) -> Attempt:
    return Attempt(
        task_id=task.id,
        delivery_id=task.delivery_id,
        destination=task.destination,
        number=task.attempts + 1,
        started_at=started,
        duration_ms=12.5,
        status_code=status,
        error=error,
        response=response,
        outcome=outcome,
    )


async def deliver(store: Store, task: OutboxTask, now: datetime, owner: str = "w1") -> bool:
    return await store.finish_task(task, owner, "delivered", now=now, attempt=attempt(task, now))


async def dead_letter(store: Store, task: OutboxTask, now: datetime, owner: str = "w1") -> bool:
    tried = attempt(task, now, 503, error="HTTP 503", outcome="dead_lettered")
    return await store.finish_task(task, owner, "dead_lettered", now=now, attempt=tried)


async def counters(store: Store, destination: str, webhook: str = "ci/runs") -> tuple[int, ...]:
    c = (await store.destination_counters()).get((webhook, destination), DestinationCounters())
    return (c.pending, c.delivered, c.failed, c.dead_lettered)


# Rows written with the record


async def test_rows_are_written_with_the_record(store: Store) -> None:
    record = rec("ci-bot", OutboxItem("audit", PRIORITIES["critical"]), received_at=at(0))
    assert await store.record(record) == RecordResult(record.id)
    rows = await store.outbox_rows(record.id)
    assert [(r.destination, r.priority) for r in rows] == [("ci-bot", 1), ("audit", 3)]
    for row in rows:
        assert (row.delivery_id, row.webhook, row.state, row.attempts) == (
            record.id,
            "ci/runs",
            "pending",
            0,
        )
        assert row.created_at == row.next_attempt_at == row.updated_at == at(0)
        assert (row.last_status, row.last_error, row.replay_id) == (None, "", None)
    assert len({r.id for r in rows}) == 2
    assert await counters(store, "ci-bot") == (1, 0, 0, 0)
    assert await counters(store, "audit") == (1, 0, 0, 0)
    plain = rec()  # no destinations: no rows
    await store.record(plain)
    assert await store.outbox_rows(plain.id) == []


async def test_duplicates_write_no_rows(store: Store) -> None:
    first = rec("ci-bot", dedup_key="gh-1")
    await store.record(first)
    again = rec("ci-bot", "audit", dedup_key="gh-1")
    assert await store.record(again) == RecordResult(first.id, duplicate=True)
    assert await store.outbox_rows(again.id) == []
    # Many copies of one key in one batch: one delivery, one set of rows.
    copies = [rec("ci-bot", dedup_key="gh-2") for _ in range(30)]
    results = await record_all(store, copies)
    kept = {r.id for r in results}
    assert len(kept) == 1
    assert len(await store.outbox_rows(kept.pop())) == 1
    assert await counters(store, "ci-bot") == (2, 0, 0, 0)
    assert await counters(store, "audit") == (0, 0, 0, 0)
    assert len(await claim(store, at(3600))) == 2


async def test_a_failed_commit_writes_no_rows(backend: Backend, store: Store) -> None:
    await backend.fail_commits()
    doomed = [rec("ci-bot") for _ in range(10)]
    outcomes = await asyncio.gather(*(store.record(r) for r in doomed), return_exceptions=True)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert await claim(store, at(3600)) == []
    assert await store.destination_counters() == {}
    await backend.heal()
    await store.record(doomed[0])
    assert [t.delivery_id for t in await claim(store, at(3600))] == [doomed[0].id]


async def test_only_accepted_deliveries_have_destinations(store: Store) -> None:
    with pytest.raises(ValueError, match="filtered"):
        await store.record(rec("ci-bot", status="filtered"))
    ok = rec("ci-bot")
    assert await store.record(ok) == RecordResult(ok.id)  # the refusal failed alone


# Claim order


async def test_claims_go_by_priority_then_due_time_then_id(store: Store) -> None:
    low = rec(OutboxItem("d", PRIORITIES["low"]), received_at=at(0))
    normal_late = rec(OutboxItem("d", PRIORITIES["normal"]), received_at=at(2))
    normal_early = rec(OutboxItem("d", PRIORITIES["normal"]), received_at=at(1))
    critical = rec(OutboxItem("d", PRIORITIES["critical"]), received_at=at(3))
    high = rec(OutboxItem("d", PRIORITIES["high"]), received_at=at(3))
    twins = [rec(OutboxItem("d", 1), received_at=at(2)) for _ in range(3)]  # id decides
    await record_all(store, [low, normal_late, normal_early, critical, high, *twins])
    tasks = await claim(store, at(4))
    twin_ids = sorted(r.id for r in (normal_late, *twins))
    expected = [critical.id, high.id, normal_early.id, *twin_ids, low.id]
    # (twins and normal_late share priority and due time: by outbox row id, which is
    # made in record() order; compare sets for them and order for the rest.)
    got = [t.delivery_id for t in tasks]
    assert got[:3] == expected[:3] and got[-1] == low.id
    assert set(got[3:7]) == set(twin_ids)
    assert [t.id for t in tasks[3:7]] == sorted(t.id for t in tasks[3:7])
    assert [t.priority for t in tasks] == [3, 2, 1, 1, 1, 1, 1, 0]


async def test_aging_bounds_the_wait_of_low_priority(store: Store) -> None:
    now = at(1000)
    span = 3 * AGING_SECONDS  # low + 3 levels = critical
    old_low = rec(OutboxItem("d", PRIORITIES["low"]), received_at=now - timedelta(seconds=span + 1))
    young_low = rec(
        OutboxItem("d", PRIORITIES["low"]), received_at=now - timedelta(seconds=span - 1)
    )
    fresh_critical = rec(OutboxItem("d", PRIORITIES["critical"]), received_at=now)
    await record_all(store, [old_low, young_low, fresh_critical])
    got = [t.delivery_id for t in await claim(store, now)]
    assert got == [old_low.id, fresh_critical.id, young_low.id]


async def test_rows_are_claimed_when_due_and_limit_holds(store: Store) -> None:
    later = rec("d", received_at=at(10))
    records = [rec("d", received_at=at(i)) for i in range(5)]
    await record_all(store, [later, *records])
    first = await claim(store, at(4), limit=2)
    assert [t.delivery_id for t in first] == [r.id for r in records[:2]]
    rest = await claim(store, at(4), limit=10)
    assert [t.delivery_id for t in rest] == [r.id for r in records[2:]]  # not `later`
    assert await claim(store, at(9.999)) == []
    assert [t.delivery_id for t in await claim(store, at(10))] == [later.id]  # due: <= now
    assert await claim(store, at(10), limit=0) == []


async def test_skipped_destinations_are_left_alone(store: Store) -> None:
    a = rec("down")
    b = rec("up")
    c = rec("down", webhook="ci/other")  # same name, another Webhook: not skipped
    await record_all(store, [a, b, c])
    tasks = await claim(store, at(60), skip=[("ci/runs", "down")])
    assert {(t.webhook, t.destination) for t in tasks} == {("ci/runs", "up"), ("ci/other", "down")}
    assert [t.delivery_id for t in await claim(store, at(60))] == [a.id]


async def test_tasks_carry_what_a_worker_needs(store: Store) -> None:
    record = rec(OutboxItem("ci-bot", 2), received_at=at(0))
    await store.record(record)
    (task,) = await claim(store, at(5))
    assert (task.delivery_id, task.webhook, task.destination, task.priority) == (
        record.id,
        "ci/runs",
        "ci-bot",
        2,
    )
    assert (task.attempts, task.created_at, task.next_attempt_at) == (0, at(0), at(0))
    assert (task.replay_id, task.body) == (None, None)


# Leases


async def test_a_lease_keeps_others_off_until_it_expires(store: Store) -> None:
    record = rec("d", received_at=at(0))
    await store.record(record)
    (mine,) = await claim(store, at(0), owner="a")
    assert await claim(store, at(10), owner="b") == []
    assert await claim(store, at(LEASE), owner="b") == []  # lease_until is not < now yet
    (theirs,) = await claim(store, at(LEASE + 1), owner="b")
    assert theirs.id == mine.id
    # The first owner lost the row: its finish changes nothing.
    assert not await deliver(store, mine, at(LEASE + 2), owner="a")
    assert await store.attempts(record.id) == []
    (row,) = await store.outbox_rows(record.id)
    assert (row.state, row.attempts, row.updated_at) == ("pending", 0, at(0))
    assert await counters(store, "d") == (1, 0, 0, 0)
    assert await deliver(store, theirs, at(LEASE + 3), owner="b")
    assert await counters(store, "d") == (0, 1, 0, 0)
    assert not await deliver(store, theirs, at(LEASE + 4), owner="b")  # once only


async def test_a_stale_task_of_an_owner_holding_the_row_again_is_refused(store: Store) -> None:
    # The owner's name alone cannot tell its old claim from its new one; the tries
    # made since can.
    record = rec("d", received_at=at(0))
    await store.record(record)
    (stale,) = await claim(store, at(0), owner="a")
    (taken,) = await claim(store, at(LEASE + 1), owner="b")
    tried = attempt(taken, at(LEASE + 1), 502, outcome="retry")
    assert await store.finish_task(
        taken, "b", "retry", now=at(LEASE + 2), attempt=tried, next_attempt_at=at(LEASE + 3)
    )
    (current,) = await claim(store, at(LEASE + 3), owner="a")
    assert not await deliver(store, stale, at(LEASE + 4), owner="a")
    assert await deliver(store, current, at(LEASE + 4), owner="a")
    assert [a.number for a in await store.attempts(record.id)] == [1, 2]


async def test_an_expired_lease_nobody_took_can_still_be_finished(store: Store) -> None:
    await store.record(rec("d", received_at=at(0)))
    (task,) = await claim(store, at(0))
    assert await deliver(store, task, at(LEASE * 10))


async def test_concurrent_claims_in_one_store_never_overlap(store: Store) -> None:
    await record_all(store, [rec("d", received_at=at(i % 7)) for i in range(120)])
    batches = await asyncio.gather(
        *(claim(store, at(60), limit=9, owner=f"w{i}") for i in range(20))
    )
    ids = [t.id for batch in batches for t in batch]
    assert len(ids) == len(set(ids)) == 120


# Finishing


async def test_delivered(store: Store) -> None:
    record = rec("d", received_at=at(0))
    await store.record(record)
    (task,) = await claim(store, at(1))
    assert await deliver(store, task, at(2))
    (row,) = await store.outbox_rows(record.id)
    assert (row.state, row.attempts, row.next_attempt_at, row.updated_at) == (
        "delivered",
        1,
        None,
        at(2),
    )
    assert (row.last_status, row.last_error) == (200, "")
    assert await counters(store, "d") == (0, 1, 0, 0)
    assert await claim(store, at(3600)) == []


async def test_retry_waits_for_its_time_and_counts_the_attempt(store: Store) -> None:
    record = rec("d", received_at=at(0))
    await store.record(record)
    (task,) = await claim(store, at(1), owner="a")
    tried = attempt(task, at(1), 503, error="HTTP 503 Service Unavailable", outcome="retry")
    assert await store.finish_task(
        task, "a", "retry", now=at(2), attempt=tried, next_attempt_at=at(60)
    )
    (row,) = await store.outbox_rows(record.id)
    assert (row.state, row.attempts, row.next_attempt_at, row.last_status) == (
        "pending",
        1,
        at(60),
        503,
    )
    assert row.last_error == "HTTP 503 Service Unavailable"
    assert await counters(store, "d") == (1, 0, 0, 0)
    c = (await store.destination_counters())[("ci/runs", "d")]
    assert (c.last_error, c.last_error_at) == ("HTTP 503 Service Unavailable", at(2))
    # The lease is released: due again at 60 s for anyone, not after the lease.
    assert await claim(store, at(59), owner="b") == []
    (again,) = await claim(store, at(60), owner="b")
    assert (again.id, again.attempts, again.next_attempt_at) == (task.id, 1, at(60))
    assert not await deliver(store, task, at(61), owner="a")  # the old task is stale
    assert await deliver(store, again, at(61), owner="b")
    assert [a.number for a in await store.attempts(record.id)] == [1, 2]


async def test_failed_and_dead_lettered(store: Store) -> None:
    bad, gone = rec("d", received_at=at(0)), rec("d", received_at=at(1))
    await record_all(store, [bad, gone])
    first, second = await claim(store, at(2))
    tried = attempt(first, at(2), 400, response=b'{"error": "bad"}', outcome="failed")
    assert await store.finish_task(first, "w1", "failed", now=at(3), attempt=tried)
    assert await dead_letter(store, second, at(4))
    states = [(await store.outbox_rows(r.id))[0] for r in (bad, gone)]
    assert [(s.state, s.attempts, s.next_attempt_at) for s in states] == [
        ("failed", 1, None),
        ("dead_lettered", 1, None),
    ]
    assert await counters(store, "d") == (0, 0, 1, 1)
    c = (await store.destination_counters())[("ci/runs", "d")]
    assert (c.last_error, c.last_error_at) == ("HTTP 503", at(4))
    assert await claim(store, at(3600)) == []


async def test_dead_lettered_without_a_try(store: Store) -> None:
    # Out of time while the breaker was open: no attempt to record, none counted.
    record = rec("d", received_at=at(0))
    await store.record(record)
    (task,) = await claim(store, at(1))
    assert await store.finish_task(task, "w1", "dead_lettered", now=at(2))
    (row,) = await store.outbox_rows(record.id)
    assert (row.state, row.attempts) == ("dead_lettered", 0)
    assert await store.attempts(record.id) == []
    assert await counters(store, "d") == (0, 0, 0, 1)


async def test_deferred_keeps_the_attempt_count(store: Store) -> None:
    record = rec("d", received_at=at(0))
    await store.record(record)
    (task,) = await claim(store, at(1))
    assert await store.finish_task(task, "w1", "deferred", now=at(2), next_attempt_at=at(30))
    (row,) = await store.outbox_rows(record.id)
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 0, at(30))
    assert await store.attempts(record.id) == []
    assert await counters(store, "d") == (1, 0, 0, 0)
    assert (await store.destination_counters())[("ci/runs", "d")].last_error is None
    (again,) = await claim(store, at(30), owner="w2")
    assert again.attempts == 0


async def test_nonsense_finishes_are_refused_before_anything_changes(store: Store) -> None:
    record = rec("d", received_at=at(0))
    await store.record(record)
    (task,) = await claim(store, at(1))
    with pytest.raises(ValueError, match="next_attempt_at"):
        await store.finish_task(task, "w1", "retry", now=at(2), attempt=attempt(task, at(1)))
    with pytest.raises(ValueError, match="deferred"):
        await store.finish_task(
            task, "w1", "deferred", now=at(2), attempt=attempt(task, at(1)), next_attempt_at=at(9)
        )
    other = replace(task, id="01OTHERTASK000000000000000")
    with pytest.raises(ValueError, match="attempt of"):
        await store.finish_task(task, "w1", "delivered", now=at(2), attempt=attempt(other, at(1)))
    with pytest.raises(ValueError, match="timezone"):
        await store.finish_task(task, "w1", "delivered", now=datetime(2024, 5, 1, 12))
    with pytest.raises(ValueError, match="outcome"):
        await store.finish_task(task, "w1", "lost", now=at(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease_seconds"):
        await store.claim_tasks("w1", at(1), 10, 0)
    (row,) = await store.outbox_rows(record.id)
    assert (row.state, row.attempts) == ("pending", 0)
    assert await deliver(store, task, at(3))  # still leased to w1


async def test_attempts_are_kept_oldest_first_with_the_response(store: Store) -> None:
    record = rec("a", "b", received_at=at(0))
    await store.record(record)
    ta, tb = sorted(await claim(store, at(1)), key=lambda t: t.destination)
    big = bytes(range(256)) * 8  # 2 KiB, not UTF-8
    timeout = attempt(ta, at(1), None, error="timeout after 10s", response=b"", outcome="retry")
    assert await store.finish_task(ta, "w1", "retry", now=at(11), attempt=timeout,
                                   next_attempt_at=at(20))  # fmt: skip
    assert await store.finish_task(tb, "w1", "delivered", now=at(3),
                                   attempt=attempt(tb, at(2), 200, response=big))  # fmt: skip
    (ta2,) = await claim(store, at(20))
    assert await deliver(store, ta2, at(21))
    kept = await store.attempts(record.id)
    assert [(k.destination, k.number, k.started_at) for k in kept] == [
        ("a", 1, at(1)),
        ("b", 1, at(2)),
        ("a", 2, at(21)),
    ]
    assert kept[0] == timeout
    assert kept[0].status_code is None
    assert kept[1].response == big[:1024]  # the first KiB
    assert (kept[1].duration_ms, kept[1].outcome, kept[1].status_code) == (12.5, "delivered", 200)


# Replay


async def test_replay_starts_new_chains_and_is_audited(store: Store) -> None:
    record = rec("a", "b", received_at=at(0), body=b'{"n": 1}')
    await store.record(record)
    for task in await claim(store, at(1)):
        assert await dead_letter(store, task, at(2))
    replay = await store.replay(
        record.id,
        destinations=[OutboxItem("a", 3), OutboxItem("a", 1)],  # one chain per destination
        requested_by="alice@example.com",
        reason="ci-bot was down",
        now=at(100),
        body=b'{"n": 2}',
    )
    assert (replay.delivery_id, replay.requested_at, replay.destinations) == (
        record.id,
        at(100),
        ("a",),
    )
    assert (replay.requested_by, replay.reason, replay.body_modified) == (
        "alice@example.com",
        "ci-bot was down",
        True,
    )
    assert await store.replays(record.id) == [replay]
    rows = await store.outbox_rows(record.id)
    assert [(r.destination, r.state, r.replay_id) for r in rows] == [
        ("a", "dead_lettered", None),
        ("b", "dead_lettered", None),
        ("a", "pending", replay.id),
    ]
    assert (rows[2].created_at, rows[2].next_attempt_at, rows[2].priority) == (at(100), at(100), 3)
    assert await counters(store, "a") == (1, 0, 0, 1)
    (task,) = await claim(store, at(100))
    assert (task.replay_id, task.body, task.attempts, task.created_at) == (
        replay.id,
        b'{"n": 2}',
        0,
        at(100),
    )
    assert await deliver(store, task, at(101))
    assert await counters(store, "a") == (0, 1, 0, 1)
    # Without a body, the chain sends the delivery's own.
    plain = await store.replay(
        record.id, destinations=[OutboxItem("b")], requested_by="bob", reason="", now=at(200)
    )
    assert not plain.body_modified
    (task,) = await claim(store, at(200))
    assert (task.replay_id, task.body) == (plain.id, None)
    assert [r.id for r in await store.replays(record.id)] == [replay.id, plain.id]


async def test_replay_is_refused_for_unknown_deliveries_and_over_the_cap(store: Store) -> None:
    with pytest.raises(ReplayRefused, match="no delivery 01NOSUCH0000000000000000000 is kept"):
        await store.replay(
            "01NOSUCH0000000000000000000",
            destinations=[OutboxItem("a")],
            requested_by="x",
            reason="",
            now=at(1),
        )
    record = rec("a")
    await store.record(record)
    for i in range(2):
        await store.replay(
            record.id,
            destinations=[OutboxItem("a")],
            requested_by="x",
            reason="",
            now=at(i),
            max_replays=2,
        )
    message = f"delivery {record.id} was replayed 2 times already \\(limit 2\\)"
    with pytest.raises(ReplayRefused, match=message):
        await store.replay(
            record.id,
            destinations=[OutboxItem("a")],
            requested_by="x",
            reason="",
            now=at(9),
            max_replays=2,
        )
    with pytest.raises(ReplayRefused, match="no destination"):
        await store.replay(record.id, destinations=[], requested_by="x", reason="", now=at(9))
    assert len(await store.replays(record.id)) == 2
    assert len(await store.outbox_rows(record.id)) == 3
    assert await counters(store, "a") == (3, 0, 0, 0)


async def test_concurrent_replays_cannot_race_past_the_cap(backend: Backend) -> None:
    one, two = await backend.open_store(), await backend.open_store()
    record = rec("a")
    await one.record(record)

    async def replay(store: Store, i: int) -> str:
        try:
            await store.replay(
                record.id,
                destinations=[OutboxItem("a"), OutboxItem("b")],
                requested_by=f"user-{i}",
                reason="race",
                now=at(i),
                max_replays=3,
            )
        except ReplayRefused:
            return "refused"
        return "replayed"

    outcomes = await asyncio.gather(*(replay(one if i % 2 else two, i) for i in range(16)))
    assert Counter(outcomes) == {"replayed": 3, "refused": 13}
    assert len(await one.replays(record.id)) == 3
    assert len(await one.outbox_rows(record.id)) == 1 + 3 * 2
    assert await counters(one, "a") == (4, 0, 0, 0)
    assert await counters(one, "b") == (3, 0, 0, 0)


# Selecting deliveries for a batch replay


async def test_select_for_replay(store: Store) -> None:
    push = rec("a", "b", received_at=at(0), event_type="push")
    run = rec("a", received_at=at(10), event_type="workflow_run")
    other = rec("a", received_at=at(20), webhook="ci/other")
    filtered = rec(received_at=at(30), status="filtered")
    rejected = rec(received_at=at(40), status="rejected", http_status=401)
    await record_all(store, [push, run, other, filtered, rejected])
    tasks = {(t.delivery_id, t.destination): t for t in await claim(store, at(50))}
    assert await dead_letter(store, tasks[(push.id, "b")], at(51))
    assert await deliver(store, tasks[(push.id, "a")], at(51))
    assert await dead_letter(store, tasks[(run.id, "a")], at(51))
    assert await deliver(store, tasks[(other.id, "a")], at(51))

    async def ids(**selector: Any) -> list[str]:
        return await store.select_for_replay(ReplaySelector(**selector))

    everything = [rejected.id, filtered.id, other.id, run.id, push.id]
    assert await ids() == everything  # newest first
    assert await ids(limit=2) == everything[:2]
    assert await ids(webhook="ci/runs", status="accepted") == [run.id, push.id]
    assert await ids(status="rejected") == [rejected.id]
    assert await ids(event_type="push") == [push.id]
    assert await ids(since=at(10), until=at(30)) == [other.id, run.id]  # [since, until)
    assert await ids(destination_state="dead_lettered") == [run.id, push.id]
    assert await ids(destination_state="dead_lettered", destination="b") == [push.id]
    assert await ids(destination_state="delivered", destination="a") == [other.id, push.id]
    assert await ids(destination_state="failed") == []
    assert await ids(destination="b") == [push.id]
    # The latest chain of each destination decides: once a replay of run is under way
    # (and then delivered), run is no longer dead-lettered.
    await store.replay(run.id, destinations=[OutboxItem("a")], requested_by="x", reason="",
                       now=at(60))  # fmt: skip
    assert await ids(destination_state="dead_lettered") == [push.id]
    assert await ids(destination_state="pending") == [run.id]
    (task,) = await claim(store, at(60))
    assert await deliver(store, task, at(61))
    assert await ids(destination_state="dead_lettered") == [push.id]
    assert await ids(destination_state="delivered") == [other.id, run.id, push.id]
    with pytest.raises(ValueError, match="destination state"):
        await ids(destination_state="lost")


# Counters and purge


async def test_destination_counters_follow_every_move(store: Store) -> None:
    records = [rec("a", "b", received_at=at(i)) for i in range(6)]
    await record_all(store, records)
    await store.record(rec("a", webhook="ci/other"))
    assert await counters(store, "a") == (6, 0, 0, 0)
    tasks = [t for t in await claim(store, at(10)) if t.webhook == "ci/runs"]
    by_dest = {d: [t for t in tasks if t.destination == d] for d in ("a", "b")}
    for task in by_dest["a"][:3]:
        assert await deliver(store, task, at(11))
    late = attempt(by_dest["a"][3], at(12), 500, error="boom", outcome="failed")
    assert await store.finish_task(by_dest["a"][3], "w1", "failed", now=at(12), attempt=late)
    early = attempt(by_dest["a"][4], at(11), 502, outcome="retry")
    # An error stamped earlier than the kept one does not replace it.
    assert await store.finish_task(by_dest["a"][4], "w1", "retry", now=at(11), attempt=early,
                                   next_attempt_at=at(99))  # fmt: skip
    for task in by_dest["b"]:
        assert await dead_letter(store, task, at(13))
    got = await store.destination_counters()
    assert got[("ci/runs", "a")] == DestinationCounters(
        pending=2, delivered=3, failed=1, last_error="boom", last_error_at=at(12)
    )
    assert got[("ci/runs", "b")] == DestinationCounters(
        dead_lettered=6, last_error="HTTP 503", last_error_at=at(13)
    )
    assert got[("ci/other", "a")] == DestinationCounters(pending=1)


async def test_purge_takes_settled_deliveries_with_their_outbox(store: Store) -> None:
    now = at(86400)
    expired = now - timedelta(seconds=1)
    settled = rec("a", received_at=at(0), expires_at=expired)
    waiting = rec("a", received_at=at(1), expires_at=expired)  # still pending: kept
    fresh = rec("a", received_at=at(2), expires_at=now + timedelta(days=1))
    await record_all(store, [settled, waiting, fresh])
    tasks = {t.delivery_id: t for t in await claim(store, at(3))}
    assert await deliver(store, tasks[settled.id], at(4))
    assert await deliver(store, tasks[fresh.id], at(4))
    await store.replay(settled.id, destinations=[OutboxItem("a")], requested_by="x", reason="",
                       now=at(5))  # fmt: skip
    (replayed,) = await claim(store, at(5))
    assert await dead_letter(store, replayed, at(6))
    before = await counters(store, "a")
    assert before == (1, 2, 0, 1)
    assert await store.purge_expired(now) == 1
    assert await store.get(settled.id) is None
    assert await store.outbox_rows(settled.id) == []
    assert await store.attempts(settled.id) == []
    assert await store.replays(settled.id) == []
    assert await store.get(waiting.id) is not None  # its destination still needs it
    assert len(await store.outbox_rows(waiting.id)) == 1
    assert await counters(store, "a") == before  # counted since the store was created
    # Once its row settles, the waiting delivery goes too.
    (task,) = [t for t in await claim(store, at(LEASE * 100)) if t.delivery_id == waiting.id]
    assert await dead_letter(store, task, now, owner="w1")
    assert await store.purge_expired(now) == 1
    assert await store.get(waiting.id) is None
    assert await store.outbox_rows(waiting.id) == []
    assert await counters(store, "a") == (0, 2, 0, 2)
    assert await store.get(fresh.id) is not None


# Several workers


async def test_workers_on_two_stores_deliver_everything_once(backend: Backend) -> None:
    one, two = await backend.open_store(), await backend.open_store()
    records = [rec(OutboxItem("a", i % 4), received_at=at(i % 11)) for i in range(300)]
    await record_all(one, records)
    delivered: list[str] = []

    async def worker(store: Store, name: str) -> None:
        for _ in range(300):  # bounded: a broken lease must fail the test, not hang it
            tasks = await store.claim_tasks(name, at(60), 5, LEASE)
            if not tasks:
                return
            for task in tasks:
                assert await deliver(store, task, at(61), owner=name)
                delivered.append(task.id)

    await asyncio.gather(*(worker(one if i % 2 else two, f"w{i}") for i in range(8)))
    assert len(delivered) == len(set(delivered)) == 300
    assert await counters(one, "a") == (0, 300, 0, 0)
    assert await one.claim_tasks("late", at(3600), 100, LEASE) == []


async def test_postgres_replicas_never_share_a_row(postgres_backend: Backend) -> None:
    # Two stores, two pools: two receiver replicas on one database.
    one = await postgres_backend.open_store()
    two = await postgres_backend.open_store()
    records = [rec(OutboxItem("a", i % 4), received_at=at(i % 50)) for i in range(1000)]
    await record_all(one, records)
    claimed: dict[str, list[str]] = {}

    async def worker(store: Store, name: str) -> None:
        mine = claimed.setdefault(name, [])
        for _ in range(1000):  # bounded: a broken lease must fail the test, not hang it
            tasks = await store.claim_tasks(name, at(60), 7, 3600)
            if not tasks:
                return
            mine += [t.id for t in tasks]

    await asyncio.gather(*(worker(one if i % 2 else two, f"w{i}") for i in range(10)))
    everything = [row_id for ids in claimed.values() for row_id in ids]
    assert len(everything) == len(set(everything)) == 1000
    assert sum(1 for ids in claimed.values() if ids) > 2  # the work was shared
    assert await one.claim_tasks("late", at(60), 100, LEASE) == []


async def test_postgres_schema_is_version_5(postgres_backend: Backend) -> None:
    await postgres_backend.open_store()
    await postgres_backend.open_store()  # a second open migrates nothing
    conn = await asyncpg.connect(postgres_backend.location)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_version")]
        compression = await conn.fetchval(
            """SELECT attcompression FROM pg_attribute
            WHERE attrelid = 'deliveries'::regclass AND attname = 'body'"""
        )
        has_lz4 = await conn.fetchval(
            "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression'"
            " AND 'lz4' = ANY(enumvals)"
        )
    finally:
        await conn.close()
    assert versions == [1, 2, 3, 4, 5]  # 5: the stored receiver configuration
    # lz4 where the server was built with it (4: bodies compress at a quarter the CPU).
    assert compression == (b"l" if has_lz4 else b"\x00")
