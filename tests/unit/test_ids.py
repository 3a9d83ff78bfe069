"""Delivery ids: ULIDs (Crockford base32), sortable by time, strictly increasing within
a process."""

from __future__ import annotations

import random

from hookline.store.base import encode_ulid, new_delivery_id

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _reference(value: int) -> str:
    # The ULID spec's encoding, five bits at a time from the least significant end.
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def test_encoding_matches_the_ulid_spec() -> None:
    rng = random.Random(1)
    for value in [0, 1, 31, 32, 2**80, 2**128 - 1, *(rng.getrandbits(128) for _ in range(2000))]:
        assert encode_ulid(value) == _reference(value)


def test_ids_sort_by_time_and_increase_within_a_millisecond() -> None:
    same_ms = [new_delivery_id(1_800_000_000.0) for _ in range(100)]
    assert same_ms == sorted(same_ms) and len(set(same_ms)) == 100
    later = new_delivery_id(1_800_000_001.0)
    assert later > same_ms[-1]
    assert len(later) == 26 and set(later) <= set(CROCKFORD)
