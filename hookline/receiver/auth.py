"""Caller authentication: one verifier per Webhook, built once, run on every request.

`build_verifier` does the expensive part up front (keyed HMAC objects, decoded
`whsec_` keys, the expected Basic credentials) so that `Verifier.verify` on the hot
path only hashes the body and compares. Every comparison is constant-time
(`hmac.compare_digest`) and runs over the raw body bytes exactly as received: a body
that was parsed and re-serialised would no longer match the sender's signature.

An `AuthFailure` carries a stable `code` for the receiver's JSON answer and a message
for a person. Messages name the header involved but never contain a secret, the
expected signature or the credential the caller sent (which may be a valid secret of
some other endpoint).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from hookline.api.common import parse_duration
from hookline.api.webhook import AuthType, WebhookAuth

__all__ = [
    "AuthFailure",
    "Verifier",
    "build_verifier",
    "credential_headers",
    "redact_headers",
]

MISSING = "missing_credentials"
BAD_CREDENTIALS = "bad_credentials"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
MALFORMED = "malformed_credentials"

DEFAULT_HMAC_HEADER = "X-Signature"
DEFAULT_API_KEY_HEADER = "X-API-Key"
DEFAULT_TOLERANCE = "5m"
GITHUB_HEADER = "X-Hub-Signature-256"
REDACTED = "[redacted]"

# Headers that carry credentials under any auth type; a record must never store them.
ALWAYS_SENSITIVE = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-hub-signature",
        "x-hub-signature-256",
        "webhook-signature",
    }
)

# Standard Webhooks spec, "Verifying webhooks": symmetric signatures are "v1,<base64>".
_SW_ID, _SW_TIMESTAMP, _SW_SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
_SW_SECRET_PREFIX = "whsec_"
# Unix seconds: ten digits today; anything far longer is not a timestamp.
_MAX_TIMESTAMP_DIGITS = 15


class AuthFailure(Exception):
    """The caller did not prove who it is; the receiver answers 401 with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Verifier(Protocol):
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Return if the request is authentic; raise AuthFailure otherwise."""


_Headers = Mapping[str, str]


def _ci(headers: _Headers) -> _Headers:
    # aiohttp passes a CIMultiDictProxy; anything else (a plain dict from a caller or
    # a test) is wrapped so that header names match regardless of case (RFC 9110 5.1).
    if isinstance(headers, CIMultiDict | CIMultiDictProxy):
        return headers
    return CIMultiDict(headers)


def _raw(value: str) -> bytes:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape; this restores them.
    return value.encode("utf-8", "surrogateescape")


def _require(headers: _Headers, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise AuthFailure(MISSING, f"{name} header is missing")
    return value


def _unix_seconds(value: str, name: str) -> int:
    # Both the Standard Webhooks spec and the hmac scheme send integer Unix seconds.
    # str.isdigit alone would accept non-ASCII digits, int() would accept "+1" or "1_0".
    if not (value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS):
        raise AuthFailure(MALFORMED, f"{name} is not an integer Unix timestamp in seconds")
    return int(value)


def _check_fresh(timestamp: int, now: float, tolerance: float, name: str, text: str) -> None:
    # Refusing old (replayed) and far-future timestamps alike, as the Standard Webhooks
    # reference does ("too old" / "too new"); the exact boundary still passes.
    skew = now - timestamp
    if skew > tolerance:
        raise AuthFailure(EXPIRED, f"{name} is {skew:.0f}s old, beyond the {text} tolerance")
    if -skew > tolerance:
        raise AuthFailure(
            EXPIRED, f"{name} is {-skew:.0f}s in the future, beyond the {text} tolerance"
        )


def _decoder(encoding: str) -> Callable[[str], bytes]:
    if encoding == "base64":
        return lambda text: base64.b64decode(text, validate=True)
    return binascii.unhexlify


@dataclass(frozen=True, slots=True)
class _NoAuth:
    def verify(self, headers: _Headers, body: bytes, now: float) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _HmacVerifier:
    """github and hmac: one header holding [prefix] + encoded HMAC of [timestamp.]body.

    GitHub ("Validating webhook deliveries"): X-Hub-Signature-256 is "sha256=" followed
    by the hex HMAC-SHA256 of the payload keyed with the webhook secret.
    """

    keys: tuple[hmac.HMAC, ...] = field(repr=False)
    header: str
    prefix: str
    encoding: str
    decode: Callable[[str], bytes]
    timestamp_header: str | None
    tolerance: float
    tolerance_text: str

    def verify(self, headers: _Headers, body: bytes, now: float) -> None:
        headers = _ci(headers)
        value = _require(headers, self.header)
        stamp = b""
        if self.timestamp_header is not None:
            text = _require(headers, self.timestamp_header)
            seconds = _unix_seconds(text, self.timestamp_header)
            stamp = _raw(text) + b"."
        if not value.startswith(self.prefix):
            raise AuthFailure(MALFORMED, f"{self.header} must start with {self.prefix!r}")
        try:
            received = self.decode(value[len(self.prefix) :])
        except (binascii.Error, ValueError):
            raise AuthFailure(MALFORMED, f"{self.header} is not {self.encoding}-encoded") from None
        if self.timestamp_header is not None:
            _check_fresh(seconds, now, self.tolerance, self.timestamp_header, self.tolerance_text)
        for key in self.keys:
            mac = key.copy()
            # The signed content is the header's timestamp exactly as sent, ".", the body.
            if stamp:
                mac.update(stamp)
            mac.update(body)
            if hmac.compare_digest(mac.digest(), received):
                return
        signed = f"{self.timestamp_header} and the body" if stamp else "the body"
        raise AuthFailure(BAD_SIGNATURE, f"{self.header} does not match {signed}")


@dataclass(frozen=True, slots=True)
class _StandardWebhooksVerifier:
    """The Standard Webhooks spec, "Symmetric signatures": HMAC-SHA256 keyed with the
    base64-decoded secret over the id, timestamp and payload joined by "." (the payload
    as the exact bytes received), sent base64-encoded as "v1,<signature>"."""

    keys: tuple[hmac.HMAC, ...] = field(repr=False)
    tolerance: float
    tolerance_text: str

    def verify(self, headers: _Headers, body: bytes, now: float) -> None:
        headers = _ci(headers)
        msg_id = _require(headers, _SW_ID)
        stamp = _require(headers, _SW_TIMESTAMP)
        signatures = _require(headers, _SW_SIGNATURE)
        # The reference checks the timestamp before any signature: a stale message is
        # refused however it is signed.
        seconds = _unix_seconds(stamp, _SW_TIMESTAMP)
        _check_fresh(seconds, now, self.tolerance, _SW_TIMESTAMP, self.tolerance_text)
        # "webhook-signature" is a space-delimited list of "<version>,<signature>" so a
        # sender can sign with several keys during a rotation; any one matching is enough
        # and versions other than v1 (e.g. v1a, asymmetric) are ignored.
        received: list[bytes] = []
        for entry in signatures.split(" "):
            version, _, encoded = entry.partition(",")
            if version != "v1":
                continue
            try:
                received.append(base64.b64decode(encoded, validate=True))
            except binascii.Error:
                continue
        if not received:
            raise AuthFailure(MALFORMED, f"{_SW_SIGNATURE} holds no v1,<base64> signature")
        prefix = _raw(msg_id) + b"." + _raw(stamp) + b"."
        for key in self.keys:
            mac = key.copy()
            mac.update(prefix)
            mac.update(body)
            expected = mac.digest()
            for candidate in received:
                if hmac.compare_digest(expected, candidate):
                    return
        raise AuthFailure(
            BAD_SIGNATURE, f"{_SW_SIGNATURE} does not match {_SW_ID}, {_SW_TIMESTAMP} and the body"
        )


def _authorization(headers: _Headers, scheme: str) -> str:
    # RFC 9110 11.1: the auth scheme is case-insensitive ("basic", "BEARER").
    value = _require(headers, "Authorization")
    name, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if name.lower() != scheme.lower() or not credentials:
        raise AuthFailure(MALFORMED, f"Authorization is not {scheme} credentials")
    return credentials


@dataclass(frozen=True, slots=True)
class _BasicVerifier:
    # b"user:password", one per valid secret; kept out of repr() and so out of logs.
    expected: tuple[bytes, ...] = field(repr=False)

    def verify(self, headers: _Headers, body: bytes, now: float) -> None:
        credentials = _authorization(_ci(headers), "Basic")
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except binascii.Error:
            raise AuthFailure(MALFORMED, "Authorization Basic credentials are not base64") from None
        if b":" not in decoded:
            raise AuthFailure(MALFORMED, "Authorization Basic credentials lack 'user:password'")
        # The whole "user:password" in one comparison (RFC 7617), so neither a wrong user
        # nor a wrong password answers faster.
        if not any(hmac.compare_digest(decoded, expected) for expected in self.expected):
            raise AuthFailure(BAD_CREDENTIALS, "Authorization has a wrong user name or password")


@dataclass(frozen=True, slots=True)
class _TokenVerifier:
    """bearer (RFC 6750 Authorization: Bearer <token>) and api-key (a header's value)."""

    header: str | None  # None: Authorization: Bearer
    expected: tuple[bytes, ...] = field(repr=False)

    def verify(self, headers: _Headers, body: bytes, now: float) -> None:
        headers = _ci(headers)
        if self.header is None:
            value, name = _authorization(headers, "Bearer"), "Authorization Bearer token"
        else:
            value, name = _require(headers, self.header), self.header
        received = _raw(value)
        if not any(hmac.compare_digest(received, expected) for expected in self.expected):
            raise AuthFailure(BAD_CREDENTIALS, f"{name} is not valid")


def standard_webhooks_key(secret: bytes) -> bytes:
    """The HMAC key of a Standard Webhooks secret, decoded as the reference library does.

    The spec's secrets are "whsec_" + base64 of the key; the reference also takes the
    base64 without the prefix, pads it and decodes leniently. A secret that is not ASCII
    cannot be base64 and is used as the key itself (the reference's bytes form).
    """
    try:
        text = secret.decode("ascii")
    except UnicodeDecodeError:
        return secret
    try:
        key = base64.b64decode(text.removeprefix(_SW_SECRET_PREFIX) + "==")
    except binascii.Error:
        raise ValueError(
            "standard-webhooks secret is not base64; expected whsec_ followed by base64"
        ) from None
    if not key:
        raise ValueError("standard-webhooks secret decodes to an empty key")
    return key


def build_verifier(auth: WebhookAuth, secrets: Sequence[bytes]) -> Verifier:
    """A verifier for `auth` accepting any of `secrets` (several during a rotation)."""
    if auth.type is AuthType.NONE:
        return _NoAuth()
    if not secrets:
        raise ValueError(f"auth type {auth.type.value} needs a secret and none was given")
    if any(not secret for secret in secrets):
        raise ValueError(f"auth type {auth.type.value} was given an empty secret")
    tolerance_text = auth.tolerance or DEFAULT_TOLERANCE
    tolerance = parse_duration(tolerance_text).total_seconds()

    if auth.type is AuthType.GITHUB:
        return _HmacVerifier(
            keys=tuple(hmac.new(s, digestmod=hashlib.sha256) for s in secrets),
            header=GITHUB_HEADER,
            prefix="sha256=",
            encoding="hex",
            decode=_decoder("hex"),
            timestamp_header=None,
            tolerance=0.0,
            tolerance_text="",
        )
    if auth.type is AuthType.HMAC:
        digest = hashlib.sha512 if auth.algorithm == "sha512" else hashlib.sha256
        encoding = auth.encoding or "hex"
        return _HmacVerifier(
            keys=tuple(hmac.new(s, digestmod=digest) for s in secrets),
            header=auth.header or DEFAULT_HMAC_HEADER,
            prefix=auth.prefix or "",
            encoding=encoding,
            decode=_decoder(encoding),
            timestamp_header=auth.timestamp_header,
            tolerance=tolerance,
            tolerance_text=tolerance_text,
        )
    if auth.type is AuthType.STANDARD_WEBHOOKS:
        return _StandardWebhooksVerifier(
            keys=tuple(
                hmac.new(standard_webhooks_key(s), digestmod=hashlib.sha256) for s in secrets
            ),
            tolerance=tolerance,
            tolerance_text=tolerance_text,
        )
    if auth.type is AuthType.BASIC:
        if auth.username is None:  # the model refuses this; kept for type narrowing
            raise ValueError("auth type basic needs a username")
        user = auth.username.encode()
        return _BasicVerifier(expected=tuple(user + b":" + s for s in secrets))
    if auth.type is AuthType.BEARER:
        return _TokenVerifier(expected=tuple(secrets), header=None)
    if auth.type is AuthType.API_KEY:
        return _TokenVerifier(expected=tuple(secrets), header=auth.header or DEFAULT_API_KEY_HEADER)
    raise ValueError(f"unknown auth type {auth.type!r}")


def credential_headers(auth: WebhookAuth) -> frozenset[str]:
    """Lower-case names of the headers whose values a stored record must not keep."""
    extra: set[str] = set()
    if auth.type is AuthType.HMAC:
        extra.add((auth.header or DEFAULT_HMAC_HEADER).lower())
    elif auth.type is AuthType.API_KEY:
        extra.add((auth.header or DEFAULT_API_KEY_HEADER).lower())
    return ALWAYS_SENSITIVE | extra


def redact_headers(headers: Mapping[str, str], sensitive: frozenset[str]) -> dict[str, str]:
    """A plain dict copy of `headers` with the values of `sensitive` ones replaced.

    A header sent more than once (a multidict) is kept as one comma-joined value
    (RFC 9110 5.3), under the spelling of its first occurrence.
    """
    result: dict[str, str] = {}
    spelling: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        shown = REDACTED if lower in sensitive else value
        if lower in spelling:
            if lower not in sensitive:
                result[spelling[lower]] += ", " + value
            continue
        spelling[lower] = name
        result[name] = shown
    return result
