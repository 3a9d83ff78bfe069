"""A push-mode receiver keeps the operator's last push in its store, sealed, and serves
it after a restart while the operator is down (issue 6 review). Real receivers over
loopback HTTP, on real SQLite and PostgreSQL stores: a restart on the same store is
ready at once with the pushed routes and secrets; another admin token opens nothing and
leaks nothing; the stored row holds no secret and no route in the clear; without a
token nothing is stored; a new PostgreSQL replica starts from what another received."""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hookline.receiver.sealed import config_key, unseal
from tests.receiver.conftest import MakeClient, Receiver, _webhook
from tests.receiver.test_config_push import (
    AUTH,
    NEW,
    OLD,
    SECRET_VALUES,
    TOKEN,
    _bundle,
    _gh,
    _post_gh,
    _push,
    start_push_receiver,
)
from tests.support.postgres import fresh_database

OTHER_TOKEN = "rotated-admin-token-1a2b3c4d"


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """One store for every receiver of the test, as a pod's volume or a shared
    database outlives the pod."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hookline.db'}"
    else:
        async with fresh_database() as dsn:
            yield dsn


async def stored_rows(store_url: str) -> list[tuple[str, bytes, bytes]]:
    """The receiver_config table as the database holds it, read past the store."""
    sql = "SELECT version, nonce, ciphertext FROM receiver_config"
    if store_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as lite:
            return [(v, bytes(n), bytes(c)) for v, n, c in lite.execute(sql).fetchall()]
    conn = await asyncpg.connect(store_url)
    try:
        return [(r["version"], r["nonce"], r["ciphertext"]) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def restart(
    receiver: Receiver,
    tmp_path: Path,
    aiohttp_client: MakeClient,
    store_url: str,
    token: str | None = TOKEN,
) -> Receiver:
    """Stop the receiver (its store closes) and start a new one on the same store."""
    await receiver.admin.close()
    await receiver.ingest.close()
    return await start_push_receiver(tmp_path, aiohttp_client, token=token, store_url=store_url)


async def _json(receiver: Receiver, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
    response = await receiver.admin.get(path, headers=headers)
    payload: dict[str, Any] = await response.json()
    return response.status, payload


def _leaks(text: str, values: list[bytes]) -> list[bytes]:
    return [
        value
        for value in values
        if value.decode() in text or base64.b64encode(value).decode() in text
    ]


async def test_a_restarted_receiver_serves_the_last_push_at_once(
    store_url: str, tmp_path: Path, aiohttp_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first = await start_push_receiver(tmp_path, aiohttp_client, store_url=store_url)
    pushed = await _push(first, _gh(OLD))
    assert await _post_gh(first, OLD, "d-1") == 202

    # The operator is down: nothing pushes to the new receiver.
    second = await restart(first, tmp_path, aiohttp_client, store_url)
    assert await _json(second, "/readyz") == (
        200,
        {"status": "ready", "configVersion": pushed["version"], "source": "stored"},
    )
    status, described = await _json(second, "/api/v1/config", **AUTH)
    assert status == 200 and described["source"] == "stored" and described["configured"]
    assert (described["version"], described["routes"]) == (pushed["version"], pushed["routes"])
    assert await _post_gh(second, OLD, "d-2") == 202  # the pushed secret, from the store
    assert await _post_gh(second, NEW, "d-3") == 401
    served = f"serving the stored configuration {pushed['version']} until the operator pushes"
    assert served in caplog.text

    # The operator is back: its push replaces the stored one, and is stored in turn.
    newer = await _push(second, _gh(NEW))
    assert newer["source"] == "push" and newer["version"] != pushed["version"]
    assert (await _json(second, "/readyz"))[1]["source"] == "push"
    assert await _post_gh(second, NEW, "d-4") == 202
    third = await restart(second, tmp_path, aiohttp_client, store_url)
    status, described = await _json(third, "/api/v1/config", **AUTH)
    assert (described["version"], described["source"]) == (newer["version"], "stored")
    assert await _post_gh(third, NEW, "d-5") == 202
    assert await _post_gh(third, OLD, "d-6") == 401
    assert _leaks(caplog.text, SECRET_VALUES) == []


async def test_another_admin_token_opens_nothing_and_leaks_nothing(
    store_url: str, tmp_path: Path, aiohttp_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = await start_push_receiver(tmp_path, aiohttp_client, store_url=store_url)
    await _push(first, _gh(NEW, previous=OLD))

    # The token was rotated while the receiver was down: the row no longer opens.
    second = await restart(first, tmp_path, aiohttp_client, store_url, token=OTHER_TOKEN)
    other = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    bodies: list[str] = []
    ready = await second.admin.get("/readyz")
    bodies.append(await ready.text())
    assert ready.status == 503 and (await ready.json())["error"] == "not_configured"
    _, described = await _json(second, "/api/v1/config", **other)
    bodies.append(str(described))
    assert (described["configured"], described["source"], described["routes"]) == (
        False,
        "push",
        {},
    )
    refused = await second.post("gh", b"{}")
    bodies.append(await refused.text())
    assert refused.status == 404
    assert "does not open with this admin token's key" in caplog.text
    assert [r.levelname for r in caplog.records if "does not open" in r.message] == ["WARNING"]
    everything = "\n".join(bodies) + "\n" + caplog.text
    assert _leaks(everything, [*SECRET_VALUES, OTHER_TOKEN.encode()]) == []

    # The operator, with the new token, pushes: served, and stored under the new key.
    response = await second.admin.put("/api/v1/config", json=_gh(NEW), headers=other)
    assert response.status == 200
    third = await restart(second, tmp_path, aiohttp_client, store_url, token=OTHER_TOKEN)
    assert (await _json(third, "/readyz"))[1]["source"] == "stored"
    assert await _post_gh(third, NEW, "d-1") == 202


async def test_the_stored_row_holds_no_secret_and_no_route_in_the_clear(
    store_url: str, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    ledger_secret = b"ledger-secret-5c1d8e0f9a7b3e2d"
    path = "payments/live-ledger-events"
    ledger = _webhook(
        "ledger-hook",
        path,
        {"type": "github", "secretRef": {"name": "ledger-credentials", "key": "secret"}},
    )
    receiver = await start_push_receiver(tmp_path, aiohttp_client, store_url=store_url)
    answer = await _push(
        receiver, _bundle([ledger], {"ledger-credentials": {"secret": ledger_secret}})
    )
    assert answer["routes"] == {path: "t/ledger-hook"}
    rows = await stored_rows(store_url)
    assert len(rows) == 1
    version, nonce, ciphertext = rows[0]
    assert version == answer["version"] and len(nonce) == 12
    clear = [
        ledger_secret,
        base64.b64encode(ledger_secret),
        path.encode(),
        b"ledger-hook",
        b"ledger-credentials",
        b"Webhook",
        TOKEN.encode(),
    ]
    row = version.encode() + nonce + ciphertext
    assert [value for value in clear if value in row] == []
    if store_url.startswith("sqlite:///"):
        # Nor anywhere in the database's files (the WAL included).
        db = Path(store_url.removeprefix("sqlite:///"))
        files = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        assert [value for value in clear if value in files] == []
    # Yet it is all there for the holder of the token.
    opened = unseal(config_key(TOKEN.encode()), version, nonce, ciphertext)
    assert path.encode() in opened and base64.b64encode(ledger_secret) in opened


async def test_without_a_token_nothing_is_stored(
    store_url: str, tmp_path: Path, aiohttp_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    receiver = await start_push_receiver(tmp_path, aiohttp_client, token=None, store_url=store_url)
    await _push(receiver, _gh(OLD))
    await _push(receiver, _gh(NEW))
    assert await _post_gh(receiver, NEW, "d-1") == 202
    assert await stored_rows(store_url) == []
    # Said once, at start-up, with the reason; not once a push.
    assert caplog.text.count("pushed configurations are not stored") == 1
    assert "the token" in caplog.text
    again = await restart(receiver, tmp_path, aiohttp_client, store_url, token=None)
    assert (await again.admin.get("/readyz")).status == 503


async def test_a_new_postgres_replica_starts_from_what_another_received(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    async with fresh_database() as dsn:
        first = await start_push_receiver(tmp_path, aiohttp_client, store_url=dsn)
        pushed = await _push(first, _gh(OLD))
        # Scaled up while the operator is down: the new replica reads the shared row.
        second = await start_push_receiver(tmp_path, aiohttp_client, store_url=dsn)
        assert await _json(second, "/readyz") == (
            200,
            {"status": "ready", "configVersion": pushed["version"], "source": "stored"},
        )
        assert await _post_gh(second, OLD, "d-1") == 202
        # The newest push to any replica is what the next one starts from.
        newer = await _push(first, _gh(NEW))
        third = await start_push_receiver(tmp_path, aiohttp_client, store_url=dsn)
        _, described = await _json(third, "/api/v1/config", **AUTH)
        assert (described["version"], described["source"]) == (newer["version"], "stored")
        assert await _post_gh(third, NEW, "d-2") == 202
        for receiver in (first, second, third):
            await receiver.admin.close()
            await receiver.ingest.close()


async def test_a_failed_save_does_not_fail_the_push(
    tmp_path: Path, aiohttp_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    receiver = await start_push_receiver(tmp_path, aiohttp_client)
    database = tmp_path / "hookline.db"
    with closing(sqlite3.connect(database)) as conn:
        conn.execute(
            """CREATE TRIGGER hl_fail BEFORE INSERT ON receiver_config
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END"""
        )
    answer = await _push(receiver, _gh(OLD))  # 200: the push took effect
    assert answer["source"] == "push"
    assert await _post_gh(receiver, OLD, "d-1") == 202
    assert (await receiver.admin.get("/readyz")).status == 200
    failed = [r for r in caplog.records if "could not be stored" in r.message]
    assert [r.levelname for r in failed] == ["ERROR"]
    assert await stored_rows(f"sqlite:///{database}") == []
    assert _leaks(caplog.text, SECRET_VALUES) == []
    with closing(sqlite3.connect(database)) as conn:
        conn.execute("DROP TRIGGER hl_fail")
    # The operator repeats the push (same version): this time it is stored.
    await _push(receiver, _gh(OLD))
    assert [row[0] for row in await stored_rows(f"sqlite:///{database}")] == [answer["version"]]


async def test_a_repeated_push_is_not_written_again(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    receiver = await start_push_receiver(tmp_path, aiohttp_client)
    url = f"sqlite:///{tmp_path / 'hookline.db'}"
    await _push(receiver, _gh(OLD))
    first = await stored_rows(url)
    await _push(receiver, _gh(OLD))  # the operator's periodic verify-and-push
    assert await stored_rows(url) == first  # same nonce: not sealed and written again
    await _push(receiver, _gh(NEW))
    assert (await stored_rows(url))[0][1] != first[0][1]


async def test_an_altered_row_leaves_the_receiver_waiting(
    tmp_path: Path, aiohttp_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = f"sqlite:///{tmp_path / 'hookline.db'}"
    first = await start_push_receiver(tmp_path, aiohttp_client)
    await _push(first, _gh(OLD))
    with closing(sqlite3.connect(tmp_path / "hookline.db")) as conn:
        conn.execute("UPDATE receiver_config SET version = 'forged'")
        conn.commit()
    second = await restart(first, tmp_path, aiohttp_client, url)
    assert (await second.admin.get("/readyz")).status == 503
    assert "stored configuration 'forged' does not open" in caplog.text
    assert "serving the stored configuration" not in caplog.text
    await _push(second, _gh(OLD))  # the operator's push heals it
    third = await restart(second, tmp_path, aiohttp_client, url)
    assert (await _json(third, "/readyz"))[1]["source"] == "stored"
