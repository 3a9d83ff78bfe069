"""The pushed configuration, sealed for the store (issue 6 review).

A receiver in push mode keeps what the operator sent in its store, so that a replica
restarted while the operator is down serves the last configuration instead of staying
not-ready (GitHub does not retry a delivery that met a 503). The bundle holds Secret
values, and DESIGN.md keeps those out of anything stored in the clear: it is sealed
with AES-256-GCM under a key derived from the admin token (HKDF-SHA256). Only holders
of the token — the operator and the receivers — can read it; a database dump alone
cannot.

The configuration's version is the associated data: a row whose version column was
changed, or whose ciphertext came from another row, does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Versioned: a later scheme derives another key, so it can never misread this one's rows.
KEY_INFO = b"hookline receiver config v1"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per save (one key seals few rows)


class Unsealable(ValueError):
    """The sealed configuration does not open: another key (the admin token was
    rotated) or altered data. The message says which row, never a key or content."""


def config_key(token: bytes) -> bytes:
    """The 256-bit key of stored configurations, derived from the admin token.

    No salt: the token is a random secret already (HKDF's extract step needs none), and
    every replica sharing a PostgreSQL store must derive the same key from it."""
    if not token:
        raise ValueError("no admin token to derive a key from")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=KEY_INFO).derive(token)


def seal(key: bytes, version: str, plaintext: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext with its 16-byte tag) of `plaintext`, bound to `version`."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, version.encode("utf-8"))


def unseal(key: bytes, version: str, nonce: bytes, ciphertext: bytes) -> bytes:
    """The plaintext `seal` was given, or Unsealable."""
    if len(nonce) != NONCE_BYTES:
        raise Unsealable(f"stored configuration {version!r}: the nonce is not {NONCE_BYTES} bytes")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, version.encode("utf-8"))
    except InvalidTag:
        raise Unsealable(
            f"stored configuration {version!r} does not open with this admin token's key "
            "(the token was rotated, or the row was altered)"
        ) from None
