"""The ingest pipeline over real HTTP: every auth type, every answer, deduplication,
and what each request leaves in the delivery log."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from tests.receiver.conftest import SECRETS, START, Receiver
from tests.support.signing import basic_header, github_headers, hmac_signature, standard_headers

BODY = json.dumps({"action": "completed", "id": "evt-1", "run": "r1"}).encode()


async def _accepted(receiver: Receiver, path: str, body: bytes = BODY, /, **headers: str) -> str:
    response = await receiver.post(path, body, **headers)
    payload = await response.json()
    assert response.status == 202, payload
    assert set(payload) == {"deliveryId"}
    delivery_id: str = payload["deliveryId"]
    return delivery_id


async def _refused(
    receiver: Receiver, path: str, status: int, code: str, body: bytes = BODY, /, **headers: str
) -> dict[str, Any]:
    response = await receiver.post(path, body, **headers)
    assert response.content_type == "application/json"
    payload: dict[str, Any] = await response.json()
    assert (response.status, payload["error"]) == (status, code), payload
    assert payload["message"]
    return payload


def _hm_headers(body: bytes, at: float, secret: str = SECRETS["hm"]) -> dict[str, str]:
    ts = int(at)
    sig = hmac_signature(secret.encode(), body, timestamp=ts, algorithm="sha512")
    return {"X-Sig": f"v1={sig}", "X-Ts": str(ts), "Content-Type": "application/json"}


# --- every auth type: valid, invalid, missing, expired ---------------------------------


async def test_github(receiver: Receiver) -> None:
    secret = SECRETS["gh"].encode()
    await _accepted(receiver, "gh", **github_headers(secret, BODY, "d-1"))
    bad = github_headers(b"other-secret", BODY, "d-2")
    await _refused(receiver, "gh", 401, "bad_signature", **bad)
    tampered = github_headers(secret, BODY, "d-3")
    await _refused(receiver, "gh", 401, "bad_signature", BODY + b" ", **tampered)
    missing = github_headers(secret, BODY, "d-4")
    del missing["X-Hub-Signature-256"]
    await _refused(receiver, "gh", 401, "missing_credentials", **missing)


async def test_hmac_with_timestamp(receiver: Receiver) -> None:
    await _accepted(receiver, "hm", **_hm_headers(BODY, START))
    body2 = json.dumps({"id": "evt-2"}).encode()
    await _refused(receiver, "hm", 401, "bad_signature", body2, **_hm_headers(BODY, START))
    await _refused(receiver, "hm", 401, "bad_signature", body2, **_hm_headers(body2, START, "x"))
    await _refused(receiver, "hm", 401, "expired", body2, **_hm_headers(body2, START - 301))
    await _refused(receiver, "hm", 401, "expired", body2, **_hm_headers(body2, START + 301))
    no_sig = _hm_headers(body2, START)
    del no_sig["X-Sig"]
    await _refused(receiver, "hm", 401, "missing_credentials", body2, **no_sig)


async def test_standard_webhooks(receiver: Receiver) -> None:
    secret = SECRETS["sw"]
    await _accepted(receiver, "sw", **standard_headers(secret, BODY, "msg_1", START))
    wrong = standard_headers("whsec_" + base64.b64encode(b"x" * 24).decode(), BODY, "msg_2", START)
    await _refused(receiver, "sw", 401, "bad_signature", **wrong)
    old = standard_headers(secret, BODY, "msg_3", START - 301)
    await _refused(receiver, "sw", 401, "expired", **old)
    missing = standard_headers(secret, BODY, "msg_4", START)
    del missing["webhook-signature"]
    await _refused(receiver, "sw", 401, "missing_credentials", **missing)


async def test_basic(receiver: Receiver) -> None:
    await _accepted(receiver, "basic", **basic_header("bob", SECRETS["basic"]))
    response = await receiver.post("basic", BODY, **basic_header("bob", "wrong"))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    await _refused(
        receiver, "basic", 401, "bad_credentials", **basic_header("eve", SECRETS["basic"])
    )
    await _refused(receiver, "basic", 401, "missing_credentials")


async def test_bearer(receiver: Receiver) -> None:
    await _accepted(receiver, "bearer", Authorization=f"Bearer {SECRETS['bearer']}")
    await _refused(receiver, "bearer", 401, "bad_credentials", Authorization="Bearer nope")
    await _refused(receiver, "bearer", 401, "missing_credentials")


async def test_api_key(receiver: Receiver) -> None:
    await _accepted(receiver, "apikey", **{"X-Key": SECRETS["apikey"]})
    await _refused(receiver, "apikey", 401, "bad_credentials", **{"X-Key": "nope"})
    await _refused(receiver, "apikey", 401, "missing_credentials")


async def test_none_accepts_anything(receiver: Receiver) -> None:
    await _accepted(receiver, "open", b"not even json")


# --- every error status ----------------------------------------------------------------


async def test_unknown_path_is_404_json(receiver: Receiver) -> None:
    await _refused(receiver, "nope", 404, "unknown_webhook")
    response = await receiver.ingest.get("/elsewhere")
    assert response.status == 404 and (await response.json())["error"] == "not_found"


async def test_wrong_method_is_405_and_recorded(receiver: Receiver) -> None:
    response = await receiver.ingest.get("/hooks/open")
    payload = await response.json()
    assert (response.status, payload["error"]) == (405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
    record = await receiver.delivery(payload["deliveryId"])
    assert (record["status"], record["reason"]) == ("rejected", "method_not_allowed")


async def test_source_not_allowed_is_403(receiver: Receiver) -> None:
    payload = await _refused(receiver, "cidr", 403, "source_not_allowed")
    record = await receiver.delivery(payload["deliveryId"])
    assert record["sourceIP"] == "127.0.0.1" and record["bodyKept"] is False


async def test_source_allowed_through_trusted_proxy(receiver: Receiver) -> None:
    import ipaddress

    receiver.state.settings.trusted_proxies = (ipaddress.ip_network("127.0.0.0/8"),)
    forwarded = {"X-Forwarded-For": "203.0.113.9, 10.1.2.3"}
    delivery_id = await _accepted(receiver, "cidr", **forwarded)
    assert (await receiver.delivery(delivery_id))["sourceIP"] == "10.1.2.3"
    # A caller cannot smuggle an allowed address in front of its own.
    await _refused(
        receiver, "cidr", 403, "source_not_allowed", **{"X-Forwarded-For": "10.0.0.1, 198.51.100.7"}
    )


async def test_rate_limit_is_429_with_retry_after_and_recovers(receiver: Receiver) -> None:
    await _accepted(receiver, "limited")
    await _accepted(receiver, "limited")  # burst of 2
    response = await receiver.post("limited", BODY)
    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"] == "rate_limited"
    receiver.monotonic.advance(1.0)  # one token back at 1 request/s
    await _accepted(receiver, "limited")
    await _refused(receiver, "limited", 429, "rate_limited")


async def test_too_large_is_413_and_body_not_kept(receiver: Receiver) -> None:
    payload = await _refused(receiver, "small", 413, "payload_too_large", b"x" * 101)
    record = await receiver.delivery(payload["deliveryId"])
    assert record["bodyKept"] is False and record["body"] is None
    await _accepted(receiver, "small", b"x" * 100)


async def test_too_large_without_content_length_stops_reading(receiver: Receiver) -> None:
    async def chunks() -> Any:
        for _ in range(50):
            yield b"y" * 64

    response = await receiver.ingest.post("/hooks/small", data=chunks())
    assert response.status == 413


async def test_body_arriving_in_pieces_is_read_whole(receiver: Receiver) -> None:
    # With a Content-Length, the receiver takes what is buffered and waits for the
    # rest; without one (chunked), it reads chunk by chunk. Both keep every byte.
    body = b"".join(bytes([65 + i]) * 37 for i in range(20))

    async def pieces() -> Any:
        for start in range(0, len(body), 37):
            yield body[start : start + 37]
            await asyncio.sleep(0.01)

    for headers in ({"Content-Length": str(len(body))}, {}):
        response = await receiver.ingest.post("/hooks/open", data=pieces(), headers=headers)
        payload = await response.json()
        assert response.status == 202, payload
        record = await receiver.delivery(payload["deliveryId"])
        assert record["body"] == body.decode()


async def test_not_json_is_415_and_bad_json_400(receiver: Receiver) -> None:
    await _refused(
        receiver, "json", 415, "unsupported_media_type", BODY, **{"Content-Type": "text/plain"}
    )
    await _refused(
        receiver, "json", 400, "invalid_json", b"{oops", **{"Content-Type": "application/json"}
    )
    for not_json in (b'{"total": NaN}', b'{"total": Infinity}'):
        await _refused(
            receiver, "json", 400, "invalid_json", not_json, **{"Content-Type": "application/json"}
        )
    await _accepted(receiver, "json", BODY, **{"Content-Type": "application/cloudevents+json"})


async def test_store_that_cannot_commit_is_503_never_2xx(receiver: Receiver, tmp_path: Any) -> None:
    import sqlite3

    # A real failure: another process holds the database's write lock.
    blocker = sqlite3.connect(tmp_path / "hookline.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        await _refused(
            receiver, "open", 503, "store_unavailable", BODY, **{"Idempotency-Key": "k-503"}
        )
    finally:
        blocker.rollback()
        blocker.close()
    # Once the store answers again the same delivery is taken, not seen as a duplicate.
    await _accepted(receiver, "open", BODY, **{"Idempotency-Key": "k-503"})


# --- deduplication ---------------------------------------------------------------------


async def _duplicate_of(
    receiver: Receiver, original: str, path: str, body: bytes, /, **headers: str
) -> None:
    response = await receiver.post(path, body, **headers)
    assert response.status == 200
    assert await response.json() == {"deliveryId": original, "duplicate": True}


async def test_dedup_by_github_delivery(receiver: Receiver) -> None:
    headers = github_headers(SECRETS["gh"].encode(), BODY, "same-delivery")
    first = await _accepted(receiver, "gh", **headers)
    await _duplicate_of(receiver, first, "gh", BODY, **headers)
    page = await (await receiver.admin.get("/api/v1/deliveries?webhook=t/gh")).json()
    assert [item["id"] for item in page["items"]] == [first]


async def test_dedup_by_standard_webhook_id(receiver: Receiver) -> None:
    headers = standard_headers(SECRETS["sw"], BODY, "msg_same", START)
    first = await _accepted(receiver, "sw", **headers)
    await _duplicate_of(receiver, first, "sw", BODY, **headers)


async def test_dedup_by_idempotency_key_header_and_path(receiver: Receiver) -> None:
    first = await _accepted(receiver, "open", b"a", **{"Idempotency-Key": "k1"})
    await _duplicate_of(receiver, first, "open", b"b", **{"Idempotency-Key": "k1"})
    await _accepted(receiver, "open", b"a", **{"Idempotency-Key": "k2"})
    await _accepted(receiver, "open", b"a")  # no key: never a duplicate
    await _accepted(receiver, "open", b"a")
    first_hm = await _accepted(receiver, "hm", **_hm_headers(BODY, START))
    await _duplicate_of(receiver, first_hm, "hm", BODY, **_hm_headers(BODY, START + 10))


async def test_refused_request_does_not_burn_a_delivery_id(receiver: Receiver) -> None:
    forged = github_headers(b"wrong", BODY, "d-shared")
    await _refused(receiver, "gh", 401, "bad_signature", **forged)
    await _accepted(receiver, "gh", **github_headers(SECRETS["gh"].encode(), BODY, "d-shared"))


# --- the record ------------------------------------------------------------------------


async def test_record_contents_and_redaction(receiver: Receiver) -> None:
    headers = github_headers(SECRETS["gh"].encode(), BODY, "d-rec", event="workflow_run")
    delivery_id = await _accepted(receiver, "gh", **headers)
    record = await receiver.delivery(delivery_id)
    assert record["id"] == delivery_id
    assert record["webhook"] == "t/gh"
    assert record["status"] == "accepted" and record["httpStatus"] == 202
    assert record["receivedAt"] == "2027-01-15T08:00:00Z"
    assert record["sourceIP"] == "127.0.0.1"
    assert record["userAgent"] == "GitHub-Hookshot/abc123"
    assert record["body"] == BODY.decode() and record["bodyEncoding"] == "utf-8"
    assert record["dedupKey"] == "d-rec"
    assert record["headers"]["X-Hub-Signature-256"] == "[redacted]"
    assert record["headers"]["X-GitHub-Event"] == "workflow_run"
    assert record["processingMs"] >= 0
    assert record["expiresAt"] == "2027-01-15T09:00:00Z"  # retention 1h


async def test_credentials_never_stored(receiver: Receiver) -> None:
    ids = [
        await _accepted(receiver, "bearer", Authorization=f"Bearer {SECRETS['bearer']}"),
        await _accepted(receiver, "apikey", **{"X-Key": SECRETS["apikey"]}),
        await _accepted(receiver, "basic", **basic_header("bob", SECRETS["basic"])),
        (await _refused(receiver, "bearer", 401, "bad_credentials", Authorization="Bearer guess"))[
            "deliveryId"
        ],
    ]
    for delivery_id in ids:
        text = json.dumps(await receiver.delivery(delivery_id))
        for secret in SECRETS.values():
            assert secret not in text
        assert "guess" not in text
        assert base64.b64encode(f"bob:{SECRETS['basic']}".encode()).decode() not in text


async def test_binary_body_is_kept_as_base64(receiver: Receiver) -> None:
    delivery_id = await _accepted(receiver, "open", b"\xff\x00\xfe")
    record = await receiver.delivery(delivery_id)
    assert record["bodyEncoding"] == "base64"
    assert base64.b64decode(record["body"]) == b"\xff\x00\xfe"


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_every_refusal_leaves_a_record(receiver: Receiver, method: str) -> None:
    response = await receiver.ingest.request(method, "/hooks/gh", data=BODY)
    delivery_id = (await response.json())["deliveryId"]
    assert (await receiver.delivery(delivery_id))["httpStatus"] == 405
