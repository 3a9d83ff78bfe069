"""The operator's own Events against the strict KMock emulator over real HTTP (issue 14:
"could not post Event Ready on bars/wr: 409 Object Already Exists"): each Event has a name
of its own, a taken name is retried with a fresh one, and giving up is a WARNING."""

from __future__ import annotations

import functools
import itertools
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import kopf
import pytest

from hookline.api.common import NAME_PATTERN
from hookline.operator.kube import EVENT_NAME_ATTEMPTS, MAX_NAME, KubeClient, event_name
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import create, events_for, secret

NS = "bars"
INSTANT = 1_750_000_000 * 10**9  # one nanosecond (June 2025), the same for every name below


def involved(name: str = "wr") -> dict[str, Any]:
    """An object to post Events on, as the reconciler passes one (kind and apiVersion set)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}}


def tokens() -> Iterator[str]:
    """The random part, counted instead: the names are known before they are tried."""
    return (f"{i:08x}" for i in itertools.count())


class Names:
    """The real name function at one instant, with counted tokens; records what it gave."""

    def __init__(self) -> None:
        self._tokens = tokens()
        self.given: list[str] = []

    def __call__(self, object_name: str) -> str:
        name = event_name(object_name, now_ns=lambda: INSTANT, token=lambda: next(self._tokens))
        self.given.append(name)
        return name

    @staticmethod
    def nth(object_name: str, n: int) -> str:
        return event_name(object_name, now_ns=lambda: INSTANT, token=lambda: f"{n:08x}")


@pytest.fixture
async def client_for(
    k8s: StrictEmulator,
) -> AsyncIterator[Callable[[Callable[[str], str]], KubeClient]]:
    """A KubeClient on the emulator's URL with the name function a test gives it."""
    info = kopf.ConnectionInfo(server=str(k8s.url).rstrip("/"), insecure=True)
    async with aiohttp.ClientSession() as session:
        yield lambda names: KubeClient(info, session, event_names=names)


async def pre_create(k: StrictEmulator, name: str) -> None:
    """An Event already there under `name` (another poster's, in the same instant)."""
    await create(
        k,
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"kind": "Secret", "name": "other", "namespace": NS},
            "reason": "Earlier",
        },
    )


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_two_events_in_the_same_instant_get_distinct_names(
    k8s: StrictEmulator,
    client_for: Callable[[Callable[[str], str]], KubeClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The real random part; only the clock stands still.
    client = client_for(functools.partial(event_name, now_ns=lambda: INSTANT))
    await create(k8s, secret(NS, "wr"))
    for reason in ("Ready", "DeadLettered"):
        await client.post_event(involved(), type="Normal", reason=reason, message=reason)
    posted = events_for(k8s, "wr", NS)
    assert sorted(e["reason"] for e in posted) == ["DeadLettered", "Ready"]
    names = {e["metadata"]["name"] for e in posted}
    assert len(names) == 2
    assert all(re.fullmatch(rf"wr\.{INSTANT:x}[0-9a-f]{{8}}", n) for n in names), names
    assert not warnings(caplog)


@pytest.mark.parametrize("taken", [1, EVENT_NAME_ATTEMPTS - 1])
async def test_a_taken_name_is_retried_with_a_fresh_one(
    k8s: StrictEmulator,
    client_for: Callable[[Callable[[str], str]], KubeClient],
    caplog: pytest.LogCaptureFixture,
    taken: int,
) -> None:
    for n in range(taken):
        await pre_create(k8s, Names.nth("wr", n))
    names = Names()
    await client_for(names).post_event(involved(), type="Normal", reason="Ready", message="ok")
    assert names.given == [Names.nth("wr", n) for n in range(taken + 1)]
    [ours] = events_for(k8s, "wr", NS)
    assert ours["metadata"]["name"] == Names.nth("wr", taken)
    assert ours["reason"] == "Ready"
    # The Events already there are left as they were.
    for n in range(taken):
        assert (k8s.get("v1/events", NS, Names.nth("wr", n)) or {})["reason"] == "Earlier"
    assert not warnings(caplog)


async def test_five_taken_names_give_up_with_a_warning(
    k8s: StrictEmulator,
    client_for: Callable[[Callable[[str], str]], KubeClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert EVENT_NAME_ATTEMPTS == 5
    for n in range(EVENT_NAME_ATTEMPTS + 1):  # one more than is tried: the 6th is never asked
        await pre_create(k8s, Names.nth("wr", n))
    names = Names()
    await client_for(names).post_event(involved(), type="Normal", reason="Ready", message="ok")
    assert len(names.given) == EVENT_NAME_ATTEMPTS
    assert not events_for(k8s, "wr", NS)
    [warning] = warnings(caplog)
    assert warning.startswith("could not post Event Ready on bars/wr: 5 names tried, all taken")
    assert "409" in warning


async def test_the_longest_object_name_still_makes_a_valid_event_name(
    k8s: StrictEmulator, client_for: Callable[[Callable[[str], str]], KubeClient]
) -> None:
    # 253 characters, the most an object name can have; a "-" where the name is cut
    # (253 - 1 - 24 characters kept: 16 hex of the time, 8 random), which must not end it.
    long = "a" * 227 + "-" + "b" * 25
    assert len(long) == MAX_NAME
    await create(k8s, secret(NS, long))
    client = client_for(event_name)  # the default: the real clock and random part
    await client.post_event(involved(long), type="Normal", reason="Ready", message="ok")
    [ours] = events_for(k8s, long, NS)
    name = ours["metadata"]["name"]
    assert len(name) <= MAX_NAME
    assert re.fullmatch(NAME_PATTERN, name), name
    assert name.startswith("a" * 227 + ".")
