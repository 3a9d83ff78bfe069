"""The pure part of the annotations (issue 6): parsing hookline.dev/replay, and the Secret
changes of hookline.dev/rotate-secret and of its overlap window ending. Explicit clocks."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from hookline.operator.annotations import (
    DEFAULT_OVERLAP,
    PREVIOUS_EXPIRES_ANNOTATION,
    REPLAY_ANNOTATION,
    ROTATE_ANNOTATION,
    AnnotationError,
    encode_secret,
    expired_previous,
    parse_replay,
    parse_time,
    previous_expires_at,
    rotate,
)
from hookline.receiver.config import PREVIOUS_SECRET_SUFFIX
from hookline.store.base import new_delivery_id

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def test_constants() -> None:
    assert REPLAY_ANNOTATION == "hookline.dev/replay"
    assert ROTATE_ANNOTATION == "hookline.dev/rotate-secret"
    assert PREVIOUS_EXPIRES_ANNOTATION == "hookline.dev/previous-secret-expires-at"
    assert DEFAULT_OVERLAP == timedelta(hours=24)


# --- hookline.dev/replay ---


def test_a_delivery_id() -> None:
    delivery_id = new_delivery_id(NOW.timestamp())
    request = parse_replay(delivery_id, now=NOW)
    assert request.kind == "delivery"
    assert request.delivery_id == delivery_id
    assert request.value == delivery_id
    assert request.destination_state is None
    assert request.describe() == f"delivery {delivery_id}"


def test_a_delivery_id_is_case_insensitive_and_trimmed() -> None:
    delivery_id = new_delivery_id(NOW.timestamp())
    request = parse_replay(f"  {delivery_id.lower()}\n", now=NOW)
    assert request.delivery_id == delivery_id  # the store keeps them upper case
    assert request.value == delivery_id.lower()


@pytest.mark.parametrize(
    ("value", "kind", "state"),
    [
        ("failed", "failed", "failed"),
        ("FAILED", "failed", "failed"),
        ("dead-lettered", "dead-lettered", "dead_lettered"),
        ("dead_lettered", "dead-lettered", "dead_lettered"),
    ],
)
def test_keywords(value: str, kind: str, state: str) -> None:
    request = parse_replay(value, now=NOW)
    assert request.kind == kind
    assert request.destination_state == state
    assert request.delivery_id is None and request.since is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("since=2026-11-25T10:00:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("since=2026-11-25t10:00:00z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("since=2026-11-25T12:00:00+02:00", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("since = 2026-11-25T10:00:00.5Z", datetime(2026, 11, 25, 10, 0, 0, 500000, tzinfo=UTC)),
        # RFC 3339 allows any number of fraction digits; Python takes six.
        (
            "since=2026-11-25T10:00:00.123456789Z",
            datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC),
        ),
        ("since=2026-11-25T12:00:00Z", NOW),  # now itself is not in the future
    ],
)
def test_since(value: str, expected: datetime) -> None:
    request = parse_replay(value, now=NOW)
    assert request.kind == "since"
    assert request.since == expected
    assert request.since is not None and request.since.tzinfo is UTC
    assert request.destination_state is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is empty"),
        ("   ", "is empty"),
        ("all", "is not understood"),
        ("replay please", "is not understood"),
        ("since", "write since=<RFC 3339 time>"),
        ("since 2026-11-25T10:00:00Z", "write since=<RFC 3339 time>"),
        ("since=", "since= needs a time"),
        ("since=yesterday", "is not an RFC 3339 time"),
        ("since=2026-11-25", "is not an RFC 3339 time"),
        ("since=2026-11-25T10:00:00", "has no time zone; add Z"),
        ("since=2026-02-30T10:00:00Z", "is not a valid time"),
        ("since=2026-11-25T12:00:01Z", "is in the future"),
        ("since=2027-01-01T00:00:00Z", "no delivery was received after it yet"),
        ("01JD3Z5Q4M8X6V0A2B9C7D1E5", "it has 25 characters, a delivery id has 26"),
        ("01JD3Z5Q4M8X6V0A2B9C7D1E5FF", "it has 27 characters"),
        ("01JD3Z5Q4M8X6V0A2B9C7D1E5U", "'U' is not in the Crockford base32 alphabet"),
        ("ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "overflow 128 bits"),
        ("8" + "0" * 25, "overflow 128 bits"),
        ("https://example.com/01JD3Z5Q4M8X6V0A2B9C7D1E5F", "is not understood"),
    ],
)
def test_bad_values_say_what_to_write(value: str | None, message: str) -> None:
    with pytest.raises(AnnotationError) as caught:
        parse_replay(value, now=NOW)
    assert message in str(caught.value)


def test_the_usage_is_in_the_message_for_nonsense() -> None:
    with pytest.raises(AnnotationError) as caught:
        parse_replay("everything", now=NOW)
    text = str(caught.value)
    assert "'failed'" in text and "'dead-lettered'" in text and "since=" in text


def test_a_long_value_is_not_quoted_whole() -> None:
    with pytest.raises(AnnotationError) as caught:
        parse_replay("x" * 5000, now=NOW)
    assert len(str(caught.value)) < 500


def test_since_is_described_in_utc() -> None:
    request = parse_replay("since=2026-11-25T12:00:00+02:00", now=NOW)
    assert request.describe() == "deliveries received since 2026-11-25T10:00:00Z"


def test_parse_time() -> None:
    assert parse_time("2026-11-25T10:00:00Z") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    with pytest.raises(AnnotationError):
        parse_time("2026-11-25 10:00:00Z")  # RFC 3339 date-time: a T


# --- hookline.dev/rotate-secret ---


def test_rotate_keeps_the_old_value_as_previous_until_the_overlap_ends() -> None:
    data = {"secret": b"old", "other": b"kept"}
    new_data, annotations = rotate(data, "secret", b"new", NOW, timedelta(hours=24))
    assert new_data == {"secret": b"new", "secret.previous": b"old", "other": b"kept"}
    assert annotations == {PREVIOUS_EXPIRES_ANNOTATION: "2026-11-26T12:00:00Z"}
    assert data == {"secret": b"old", "other": b"kept"}  # not changed in place
    assert PREVIOUS_SECRET_SUFFIX == ".previous"  # the receiver's spelling


def test_rotate_twice_replaces_the_previous_value() -> None:
    first, _ = rotate({"secret": b"one"}, "secret", b"two", NOW, DEFAULT_OVERLAP)
    kept = {k: v for k, v in first.items() if v is not None}
    later = NOW + timedelta(hours=1)
    second, annotations = rotate(kept, "secret", b"three", later, DEFAULT_OVERLAP)
    # The receiver accepts two values at most: the oldest goes.
    assert second == {"secret": b"three", "secret.previous": b"two"}
    assert annotations == {PREVIOUS_EXPIRES_ANNOTATION: "2026-11-26T13:00:00Z"}


def test_rotate_without_an_old_value_keeps_nothing() -> None:
    new_data, annotations = rotate({}, "secret", b"new", NOW, DEFAULT_OVERLAP)
    assert new_data == {"secret": b"new", "secret.previous": None}  # None: merge-patch delete
    assert annotations == {PREVIOUS_EXPIRES_ANNOTATION: None}


def test_rotate_without_overlap_keeps_nothing() -> None:
    new_data, annotations = rotate(
        {"secret": b"old", "secret.previous": b"older"}, "secret", b"new", NOW, timedelta(0)
    )
    assert new_data == {"secret": b"new", "secret.previous": None}
    assert annotations == {PREVIOUS_EXPIRES_ANNOTATION: None}


def test_rotate_refuses_an_empty_value() -> None:
    with pytest.raises(ValueError):
        rotate({"secret": b"old"}, "secret", b"", NOW, DEFAULT_OVERLAP)


# --- the overlap window ending ---


def secret(expires: str | None, data: dict[str, str] | None = None) -> dict[str, object]:
    annotations = {"other": "x"}
    if expires is not None:
        annotations[PREVIOUS_EXPIRES_ANNOTATION] = expires
    return {
        "metadata": {"name": "s", "annotations": annotations},
        "data": data if data is not None else {"secret": "bmV3", "secret.previous": "b2xk"},
    }


def test_nothing_to_do_while_the_window_is_open() -> None:
    body = secret("2026-11-25T12:00:01Z")
    assert previous_expires_at(body) == NOW + timedelta(seconds=1)
    assert expired_previous(body, NOW) is None


def test_nothing_to_do_without_a_window() -> None:
    assert expired_previous(secret(None), NOW) is None
    assert expired_previous({"metadata": {}}, NOW) is None
    assert expired_previous({}, NOW) is None


def test_the_window_ends() -> None:
    body = secret("2026-11-25T12:00:00Z")
    assert expired_previous(body, NOW) == {
        "metadata": {"annotations": {PREVIOUS_EXPIRES_ANNOTATION: None}},
        "data": {"secret.previous": None},
    }


def test_every_previous_key_goes() -> None:
    body = secret(
        "2026-11-24T00:00:00Z",
        {"a": "eA==", "a.previous": "eQ==", "b.previous": "eg==", "previous": "eA=="},
    )
    patch = expired_previous(body, NOW)
    assert patch is not None
    assert patch["data"] == {"a.previous": None, "b.previous": None}


def test_only_the_annotation_goes_when_no_previous_is_left() -> None:
    body = secret("2026-11-24T00:00:00Z", {"secret": "bmV3"})
    assert expired_previous(body, NOW) == {
        "metadata": {"annotations": {PREVIOUS_EXPIRES_ANNOTATION: None}}
    }


def test_an_unreadable_expiry_counts_as_expired() -> None:
    # An old secret must never stay valid for ever because the annotation was mangled.
    patch = expired_previous(secret("next tuesday"), NOW)
    assert patch is not None and patch["data"] == {"secret.previous": None}


def test_rotate_then_expire() -> None:
    new_data, annotations = rotate({"secret": b"old"}, "secret", b"new", NOW, timedelta(hours=1))
    body = {"metadata": {"annotations": annotations}, "data": new_data}
    assert expired_previous(body, NOW + timedelta(minutes=59, seconds=59)) is None
    assert expired_previous(body, NOW + timedelta(hours=1)) is not None


# --- the new value's encoding ---


def test_encode_secret() -> None:
    raw = bytes(range(250, 256)) * 5 + b"\xfb\xff"  # bytes whose base64 has + and /
    text = encode_secret(raw)
    assert len(encode_secret(b"\0" * 32)) == 43
    assert b"=" not in text and b"+" not in text and b"/" not in text
    assert base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4)) == raw


def test_encode_secret_for_standard_webhooks_follows_the_spec() -> None:
    raw = b"\xfb\xff" * 16
    text = encode_secret(raw, "standard-webhooks")
    assert text.startswith(b"whsec_")
    assert base64.b64decode(text.removeprefix(b"whsec_"), validate=True) == raw
