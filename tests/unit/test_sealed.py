"""The seal of the stored pushed configuration (issue 6 review): AES-256-GCM under a
key derived from the admin token with HKDF-SHA256, the version as associated data."""

from __future__ import annotations

import pytest

from hookline.receiver.admin_auth import AdminToken
from hookline.receiver.sealed import (
    KEY_BYTES,
    NONCE_BYTES,
    Unsealable,
    config_key,
    seal,
    unseal,
)

TOKEN = b"admin-token-9f8e7d6c5b4a"
BUNDLE = b'{"resources": [], "secrets": [{"data": {"secret": "c2VjcmV0"}}]}'


def test_round_trip() -> None:
    key = config_key(TOKEN)
    nonce, ciphertext = seal(key, "v1", BUNDLE)
    assert len(nonce) == NONCE_BYTES
    assert len(ciphertext) == len(BUNDLE) + 16  # the GCM tag
    assert BUNDLE not in ciphertext and b"c2VjcmV0" not in ciphertext
    assert unseal(key, "v1", nonce, ciphertext) == BUNDLE
    assert unseal(key, "v1", *seal(key, "v1", b"")) == b""


def test_the_key_derives_from_the_token_alone() -> None:
    key = config_key(TOKEN)
    assert len(key) == KEY_BYTES
    assert config_key(TOKEN) == key  # every replica with the token derives it
    assert config_key(TOKEN + b"x") != key
    assert TOKEN not in key
    with pytest.raises(ValueError):
        config_key(b"")


def test_every_seal_takes_a_new_nonce() -> None:
    key = config_key(TOKEN)
    first, second = seal(key, "v1", BUNDLE), seal(key, "v1", BUNDLE)
    assert first[0] != second[0] and first[1] != second[1]


def test_another_key_does_not_open_it() -> None:
    nonce, ciphertext = seal(config_key(TOKEN), "v1", BUNDLE)
    with pytest.raises(Unsealable) as refused:
        unseal(config_key(b"rotated-token"), "v1", nonce, ciphertext)
    message = str(refused.value)
    assert "v1" in message and "rotated" in message
    assert TOKEN.decode() not in message and "secret" not in message


@pytest.mark.parametrize("position", [0, 7, len(BUNDLE) - 1, len(BUNDLE), len(BUNDLE) + 15])
def test_a_tampered_ciphertext_or_tag_does_not_open(position: int) -> None:
    key = config_key(TOKEN)
    nonce, ciphertext = seal(key, "v1", BUNDLE)
    tampered = bytearray(ciphertext)
    tampered[position] ^= 0x01
    with pytest.raises(Unsealable):
        unseal(key, "v1", nonce, bytes(tampered))
    with pytest.raises(Unsealable):
        unseal(key, "v1", nonce, ciphertext[:-1])  # truncated


def test_a_tampered_nonce_does_not_open() -> None:
    key = config_key(TOKEN)
    nonce, ciphertext = seal(key, "v1", BUNDLE)
    with pytest.raises(Unsealable):
        unseal(key, "v1", bytes([nonce[0] ^ 1]) + nonce[1:], ciphertext)
    with pytest.raises(Unsealable, match="nonce"):
        unseal(key, "v1", nonce[:8], ciphertext)


def test_the_version_is_bound_as_associated_data() -> None:
    # A row whose version column was rewritten (or another row's ciphertext) fails.
    key = config_key(TOKEN)
    nonce, ciphertext = seal(key, "v1", BUNDLE)
    with pytest.raises(Unsealable):
        unseal(key, "v2", nonce, ciphertext)
    with pytest.raises(Unsealable):
        unseal(key, "", nonce, ciphertext)


def test_the_admin_token_gives_the_key_and_no_token_none() -> None:
    assert AdminToken(token=TOKEN).config_key() == config_key(TOKEN)
    assert AdminToken().config_key() is None
