"""Caller authentication: every auth type accepts what it should and refuses the rest
with a stable code, a message naming the header, and no secret in sight.

Standard Webhooks is checked against the spec's reference library, `standardwebhooks`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook as ReferenceWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from hookline.api.webhook import WebhookAuth
from hookline.receiver.auth import (
    AuthFailure,
    Verifier,
    build_verifier,
    credential_headers,
    redact_headers,
)

NOW = 1_700_000_000.0
TS = str(int(NOW))

# GitHub's "Validating webhook deliveries" test values.
GITHUB_DOC_SECRET = b"It's a Secret to Everybody"
GITHUB_DOC_BODY = b"Hello, World!"
GITHUB_DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

GH = b"gh-secret-1f9c7a"
GH_OLD = b"gh-secret-old-77d2"
HM = b"hmac-secret-4b1e0d"
HM_OLD = b"hmac-secret-old-a5c3"
PASSWORD = b"basic-pass-8e2f61"
PASSWORD_OLD = b"basic-pass-old-03bd"
TOKEN = b"bearer-token-c0ffee42"
TOKEN_OLD = b"bearer-token-old-9a9a"
API_KEY = b"api-key-5d7e19ab"
API_KEY_OLD = b"api-key-old-6f0c"
SW_KEY = hashlib.sha256(b"standard-webhooks key").digest()[:24]
SW_KEY_OLD = hashlib.sha256(b"standard-webhooks old key").digest()[:24]
SW_SECRET = "whsec_" + base64.b64encode(SW_KEY).decode()
SW_SECRET_OLD = "whsec_" + base64.b64encode(SW_KEY_OLD).decode()
OTHER = b"not-the-configured-secret-31a4"

ALL_SECRETS: tuple[bytes, ...] = (
    GH,
    GH_OLD,
    HM,
    HM_OLD,
    PASSWORD,
    PASSWORD_OLD,
    TOKEN,
    TOKEN_OLD,
    API_KEY,
    API_KEY_OLD,
    SW_KEY,
    SW_KEY_OLD,
    SW_SECRET.encode(),
    SW_SECRET_OLD.encode(),
)


def _workflow_run_body() -> bytes:
    # Shaped like GitHub's workflow_run delivery, with non-ASCII text and GitHub's
    # pretty-printed layout: the signature covers these exact bytes.
    payload: dict[str, Any] = {
        "action": "completed",
        "workflow_run": {
            "id": 7_412_038_114,
            "name": "Dispatch Webhook (0b7a3c1e-4f52-4d8e-9a61-2c9d0e5f1a77)",
            "head_branch": "main",
            "head_sha": "4e2f1c0b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
            "event": "workflow_dispatch",
            "status": "completed",
            "conclusion": "failure",
            "run_attempt": 1,
            "created_at": "2024-03-12T03:12:07Z",
            "display_title": "Déploiement — café ☕",
            "html_url": "https://github.com/acme/app/actions/runs/7412038114",
        },
        "repository": {"id": 1296269, "full_name": "acme/app", "private": True},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    }
    return json.dumps(payload, indent=2, ensure_ascii=False).encode()


BODY = _workflow_run_body()


def make_auth(type_: str, **fields: Any) -> WebhookAuth:
    data: dict[str, Any] = {"type": type_, **fields}
    if type_ != "none":
        data["secretRef"] = {"name": "caller-secret"}
    return WebhookAuth.model_validate(data)


def mac(secret: bytes, content: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret, content, algorithm).digest()


def github_signature(secret: bytes, body: bytes = BODY) -> str:
    return "sha256=" + mac(secret, body).hex()


def basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


def sw_sign(secret: str, msg_id: str, timestamp: int, body: bytes = BODY) -> str:
    """A `v1,<base64>` signature made by the reference library."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    signature: str = ReferenceWebhook(secret).sign(msg_id, when, body.decode())
    return signature


def sw_headers(
    secret: str = SW_SECRET, msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts: int = int(NOW)
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sw_sign(secret, msg_id, ts),
    }


def refuse(
    verifier: Verifier, headers: Mapping[str, str], body: bytes = BODY, now: float = NOW
) -> AuthFailure:
    with pytest.raises(AuthFailure) as info:
        verifier.verify(CIMultiDict(headers), body, now)
    failure = info.value
    for secret in ALL_SECRETS:
        assert secret.decode("latin-1") not in failure.message
    return failure


# --- AuthFailure -------------------------------------------------------------------


def test_auth_failure_carries_code_and_message() -> None:
    failure = AuthFailure("bad_signature", "X-Signature does not match the body")
    assert failure.code == "bad_signature"
    assert failure.message == "X-Signature does not match the body"
    assert str(failure) == failure.message


# --- the failure table: every type, every way to get it wrong -----------------------


@dataclass(frozen=True)
class Case:
    id: str
    auth: WebhookAuth
    secrets: Sequence[bytes]
    headers: Mapping[str, str]
    code: str
    names: str  # the header the message must name
    body: bytes = BODY
    now: float = NOW


HMAC_TS = make_auth("hmac", timestampHeader="X-Timestamp")
HMAC_512 = make_auth("hmac", algorithm="sha512", encoding="base64", prefix="sha512=")
SW = make_auth("standard-webhooks")


def _hmac_ts_headers(ts: str, secret: bytes = HM, signed_ts: str | None = None) -> dict[str, str]:
    content = (signed_ts if signed_ts is not None else ts).encode() + b"." + BODY
    return {"X-Signature": mac(secret, content).hex(), "X-Timestamp": ts}


def _sw_with(**overrides: str) -> dict[str, str]:
    headers = sw_headers()
    headers.update(overrides)
    return headers


def _without(headers: Mapping[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != name.lower()}


CASES: list[Case] = [
    # github
    Case("github-missing", make_auth("github"), [GH], {}, "missing_credentials",
         "X-Hub-Signature-256"),
    Case("github-only-sha1", make_auth("github"), [GH],
         {"X-Hub-Signature": "sha1=" + hmac.new(GH, BODY, "sha1").hexdigest()},
         "missing_credentials", "X-Hub-Signature-256"),
    Case("github-no-prefix", make_auth("github"), [GH],
         {"X-Hub-Signature-256": mac(GH, BODY).hex()}, "malformed_credentials",
         "X-Hub-Signature-256"),
    Case("github-not-hex", make_auth("github"), [GH],
         {"X-Hub-Signature-256": "sha256=not-hex-at-all"}, "malformed_credentials",
         "X-Hub-Signature-256"),
    Case("github-wrong-secret", make_auth("github"), [GH],
         {"X-Hub-Signature-256": github_signature(OTHER)}, "bad_signature",
         "X-Hub-Signature-256"),
    Case("github-tampered-body", make_auth("github"), [GH],
         {"X-Hub-Signature-256": github_signature(GH)}, "bad_signature",
         "X-Hub-Signature-256", body=BODY.replace(b"failure", b"success")),
    Case("github-rotation-neither", make_auth("github"), [GH, GH_OLD],
         {"X-Hub-Signature-256": github_signature(OTHER)}, "bad_signature",
         "X-Hub-Signature-256"),
    # hmac, defaults: X-Signature, sha256, hex
    Case("hmac-missing", make_auth("hmac"), [HM], {}, "missing_credentials", "X-Signature"),
    Case("hmac-not-hex", make_auth("hmac"), [HM], {"X-Signature": "zz" * 32},
         "malformed_credentials", "X-Signature"),
    Case("hmac-wrong-secret", make_auth("hmac"), [HM, HM_OLD],
         {"X-Signature": mac(OTHER, BODY).hex()}, "bad_signature", "X-Signature"),
    # hmac, sha512 + base64 + prefix
    Case("hmac512-wrong-prefix", HMAC_512, [HM],
         {"X-Signature": "sha256=" + base64.b64encode(mac(HM, BODY, "sha512")).decode()},
         "malformed_credentials", "X-Signature"),
    Case("hmac512-not-base64", HMAC_512, [HM], {"X-Signature": "sha512=%%%not base64%%%"},
         "malformed_credentials", "X-Signature"),
    Case("hmac512-sha256-digest", HMAC_512, [HM],
         {"X-Signature": "sha512=" + base64.b64encode(mac(HM, BODY)).decode()},
         "bad_signature", "X-Signature"),
    Case("hmac512-hex-not-base64-digest", HMAC_512, [HM],
         {"X-Signature": "sha512=" + mac(HM, BODY, "sha512").hex()},
         "bad_signature", "X-Signature"),
    # hmac with a timestamp header
    Case("hmac-ts-missing-timestamp", HMAC_TS, [HM],
         _without(_hmac_ts_headers(TS), "X-Timestamp"), "missing_credentials", "X-Timestamp"),
    Case("hmac-ts-missing-signature", HMAC_TS, [HM],
         _without(_hmac_ts_headers(TS), "X-Signature"), "missing_credentials", "X-Signature"),
    Case("hmac-ts-not-integer", HMAC_TS, [HM], _hmac_ts_headers(TS + ".5"),
         "malformed_credentials", "X-Timestamp"),
    Case("hmac-ts-iso-date", HMAC_TS, [HM], _hmac_ts_headers("2023-11-14T22:13:20Z"),
         "malformed_credentials", "X-Timestamp"),
    Case("hmac-ts-expired", HMAC_TS, [HM], _hmac_ts_headers(str(int(NOW) - 301)),
         "expired", "X-Timestamp"),
    Case("hmac-ts-future", HMAC_TS, [HM], _hmac_ts_headers(str(int(NOW) + 301)),
         "expired", "X-Timestamp"),
    Case("hmac-ts-custom-tolerance", make_auth("hmac", timestampHeader="X-Timestamp",
         tolerance="30s"), [HM], _hmac_ts_headers(str(int(NOW) - 31)), "expired", "X-Timestamp"),
    Case("hmac-ts-body-only-signed", HMAC_TS, [HM],
         {"X-Signature": mac(HM, BODY).hex(), "X-Timestamp": TS}, "bad_signature",
         "X-Signature"),
    Case("hmac-ts-replayed-new-timestamp", HMAC_TS, [HM],
         _hmac_ts_headers(str(int(NOW) - 10), signed_ts=str(int(NOW) - 200)), "bad_signature",
         "X-Signature"),
    # standard-webhooks
    *(
        Case(f"sw-missing-{name}", SW, [SW_SECRET.encode()], _without(sw_headers(), name),
             "missing_credentials", name)
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    ),
    Case("sw-empty-id", SW, [SW_SECRET.encode()], _sw_with(**{"webhook-id": ""}),
         "missing_credentials", "webhook-id"),
    Case("sw-float-timestamp", SW, [SW_SECRET.encode()],
         _sw_with(**{"webhook-timestamp": TS + ".0"}), "malformed_credentials",
         "webhook-timestamp"),
    Case("sw-expired", SW, [SW_SECRET.encode()], sw_headers(ts=int(NOW) - 301), "expired",
         "webhook-timestamp"),
    Case("sw-too-new", SW, [SW_SECRET.encode()], sw_headers(ts=int(NOW) + 301), "expired",
         "webhook-timestamp"),
    Case("sw-expired-custom-tolerance", make_auth("standard-webhooks", tolerance="10s"),
         [SW_SECRET.encode()], sw_headers(ts=int(NOW) - 11), "expired", "webhook-timestamp"),
    Case("sw-wrong-secret", SW, [SW_SECRET.encode()], sw_headers(secret=SW_SECRET_OLD),
         "bad_signature", "webhook-signature"),
    Case("sw-tampered-body", SW, [SW_SECRET.encode()], sw_headers(), "bad_signature",
         "webhook-signature", body=BODY + b" "),
    Case("sw-tampered-id", SW, [SW_SECRET.encode()], _sw_with(**{"webhook-id": "msg_other"}),
         "bad_signature", "webhook-signature"),
    Case("sw-tampered-timestamp", SW, [SW_SECRET.encode()],
         _sw_with(**{"webhook-timestamp": str(int(NOW) - 1)}), "bad_signature",
         "webhook-signature"),
    Case("sw-only-v1a", SW, [SW_SECRET.encode()],
         _sw_with(**{"webhook-signature": "v1a," + base64.b64encode(b"x" * 64).decode()}),
         "malformed_credentials", "webhook-signature"),
    Case("sw-bad-base64", SW, [SW_SECRET.encode()],
         _sw_with(**{"webhook-signature": "v1,%%%"}), "malformed_credentials",
         "webhook-signature"),
    Case("sw-no-comma", SW, [SW_SECRET.encode()],
         _sw_with(**{"webhook-signature": "garbage"}), "malformed_credentials",
         "webhook-signature"),
    # basic
    Case("basic-missing", make_auth("basic", username="ci"), [PASSWORD], {},
         "missing_credentials", "Authorization"),
    Case("basic-wrong-password", make_auth("basic", username="ci"), [PASSWORD, PASSWORD_OLD],
         {"Authorization": basic("ci", OTHER)}, "bad_credentials", "Authorization"),
    Case("basic-wrong-user", make_auth("basic", username="ci"), [PASSWORD],
         {"Authorization": basic("cj", PASSWORD)}, "bad_credentials", "Authorization"),
    Case("basic-password-as-user", make_auth("basic", username="ci"), [PASSWORD],
         {"Authorization": basic("ci:" + PASSWORD.decode(), b"")}, "bad_credentials",
         "Authorization"),
    Case("basic-bearer-scheme", make_auth("basic", username="ci"), [PASSWORD],
         {"Authorization": "Bearer " + PASSWORD.decode()}, "malformed_credentials",
         "Authorization"),
    Case("basic-not-base64", make_auth("basic", username="ci"), [PASSWORD],
         {"Authorization": "Basic ci:" + PASSWORD.decode()}, "malformed_credentials",
         "Authorization"),
    Case("basic-no-colon", make_auth("basic", username="ci"), [PASSWORD],
         {"Authorization": "Basic " + base64.b64encode(b"ci" + PASSWORD).decode()},
         "malformed_credentials", "Authorization"),
    # bearer
    Case("bearer-missing", make_auth("bearer"), [TOKEN], {}, "missing_credentials",
         "Authorization"),
    Case("bearer-wrong", make_auth("bearer"), [TOKEN, TOKEN_OLD],
         {"Authorization": "Bearer " + OTHER.decode()}, "bad_credentials", "Authorization"),
    Case("bearer-prefix-of-token", make_auth("bearer"), [TOKEN],
         {"Authorization": "Bearer " + TOKEN.decode()[:-1]}, "bad_credentials",
         "Authorization"),
    Case("bearer-no-token", make_auth("bearer"), [TOKEN], {"Authorization": "Bearer"},
         "malformed_credentials", "Authorization"),
    Case("bearer-basic-scheme", make_auth("bearer"), [TOKEN],
         {"Authorization": basic("ci", TOKEN)}, "malformed_credentials", "Authorization"),
    Case("bearer-bare-token", make_auth("bearer"), [TOKEN], {"Authorization": TOKEN.decode()},
         "malformed_credentials", "Authorization"),
    # api-key
    Case("api-key-missing", make_auth("api-key"), [API_KEY], {}, "missing_credentials",
         "X-API-Key"),
    Case("api-key-wrong", make_auth("api-key"), [API_KEY, API_KEY_OLD],
         {"X-API-Key": OTHER.decode()}, "bad_credentials", "X-API-Key"),
    Case("api-key-in-default-header-when-custom", make_auth("api-key", header="X-Gitlab-Token"),
         [API_KEY], {"X-API-Key": API_KEY.decode()}, "missing_credentials", "X-Gitlab-Token"),
    Case("api-key-custom-wrong", make_auth("api-key", header="X-Gitlab-Token"), [API_KEY],
         {"X-Gitlab-Token": API_KEY.decode() + "x"}, "bad_credentials", "X-Gitlab-Token"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_refused_with_stable_code_naming_the_header(case: Case) -> None:
    verifier = build_verifier(case.auth, case.secrets)
    failure = refuse(verifier, case.headers, case.body, case.now)
    assert failure.code == case.code, failure.message
    assert case.names.lower() in failure.message.lower()


def _forbidden(case: Case) -> set[str]:
    """Everything a failure message must not reveal: the secrets in every spelling, every
    signature the verifier could have expected, and the credentials the caller sent."""
    headers = CIMultiDict(case.headers)
    keys: list[bytes] = []
    found: set[str] = set()
    for secret in case.secrets:
        keys.append(secret)
        found |= {secret.decode("latin-1"), base64.b64encode(secret).decode(), secret.hex()}
        if secret.startswith(b"whsec_"):
            keys.append(base64.b64decode(secret[len(b"whsec_") :]))
    stamp = headers.get("X-Timestamp", headers.get("webhook-timestamp", TS))
    msg_id = headers.get("webhook-id", "")
    contents = [
        case.body,
        f"{stamp}.".encode() + case.body,
        f"{msg_id}.{stamp}.".encode() + case.body,
    ]
    for key in keys:
        for content in contents:
            for algorithm in ("sha256", "sha512"):
                digest = mac(key, content, algorithm)
                found |= {digest.hex(), base64.b64encode(digest).decode()}
    for name in credential_headers(case.auth):
        sent = headers.get(name, "")
        if len(sent) >= 8:
            found.add(sent)
    return found


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_failure_messages_reveal_no_secret_or_signature(case: Case) -> None:
    verifier = build_verifier(case.auth, case.secrets)
    with pytest.raises(AuthFailure) as info:
        verifier.verify(CIMultiDict(case.headers), case.body, case.now)
    shown = (info.value.message, str(info.value), repr(info.value))
    for secret in _forbidden(case):
        for text in shown:
            assert secret not in text


def test_every_type_and_every_code_is_covered() -> None:
    assert {c.auth.type.value for c in CASES} == {
        "github",
        "hmac",
        "standard-webhooks",
        "basic",
        "bearer",
        "api-key",
    }
    assert {c.code for c in CASES} == {
        "missing_credentials",
        "bad_credentials",
        "bad_signature",
        "expired",
        "malformed_credentials",
    }


# --- github --------------------------------------------------------------------------


def test_github_documented_example_verifies() -> None:
    verifier = build_verifier(make_auth("github"), [GITHUB_DOC_SECRET])
    headers = CIMultiDict({"X-Hub-Signature-256": GITHUB_DOC_SIGNATURE})
    verifier.verify(headers, GITHUB_DOC_BODY, NOW)
    assert refuse(verifier, headers, GITHUB_DOC_BODY + b"\n").code == "bad_signature"


def test_github_real_shaped_body_verifies_over_raw_bytes() -> None:
    verifier = build_verifier(make_auth("github"), [GH])
    headers = {"X-Hub-Signature-256": github_signature(GH), "X-GitHub-Event": "workflow_run"}
    verifier.verify(CIMultiDict(headers), BODY, NOW)
    # The same JSON re-serialised is different bytes, so it must not verify.
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    assert refuse(verifier, headers, reserialised).code == "bad_signature"


def test_github_has_no_time_window() -> None:
    verifier = build_verifier(make_auth("github"), [GH])
    verifier.verify({"X-Hub-Signature-256": github_signature(GH)}, BODY, NOW + 10 * 365 * 86400)


def test_header_names_are_case_insensitive_even_in_a_plain_dict() -> None:
    verifier = build_verifier(make_auth("github"), [GH])
    verifier.verify({"x-hub-signature-256": github_signature(GH)}, BODY, NOW)
    verifier.verify(CIMultiDict({"X-HUB-SIGNATURE-256": github_signature(GH)}), BODY, NOW)


def test_github_rotation_accepts_either_secret() -> None:
    verifier = build_verifier(make_auth("github"), [GH, GH_OLD])
    verifier.verify({"X-Hub-Signature-256": github_signature(GH)}, BODY, NOW)
    verifier.verify({"X-Hub-Signature-256": github_signature(GH_OLD)}, BODY, NOW)


@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        (make_auth("github"), GH),
        (make_auth("basic", username="ci"), PASSWORD),
        (make_auth("bearer"), TOKEN),
        (make_auth("api-key"), API_KEY),
        (SW, SW_SECRET.encode()),
    ],
    ids=lambda v: getattr(getattr(v, "type", None), "value", "secret"),
)
def test_verifier_repr_shows_no_secret(auth: WebhookAuth, secret: bytes) -> None:
    # A verifier ends up inside the compiled route config, which may be logged.
    text = repr(build_verifier(auth, [secret]))
    assert secret.decode() not in text
    assert repr(secret) not in text


def test_verifier_is_reusable_across_requests() -> None:
    # The precomputed HMAC objects must be copied, never updated in place.
    verifier = build_verifier(make_auth("github"), [GH])
    for body in (BODY, b"{}", BODY):
        verifier.verify({"X-Hub-Signature-256": github_signature(GH, body)}, body, NOW)


# --- hmac ----------------------------------------------------------------------------


def test_hmac_defaults_sha256_hex() -> None:
    verifier = build_verifier(make_auth("hmac"), [HM])
    verifier.verify({"X-Signature": mac(HM, BODY).hex()}, BODY, NOW)


def test_hmac_sha512_base64_prefix() -> None:
    verifier = build_verifier(HMAC_512, [HM])
    signature = "sha512=" + base64.b64encode(mac(HM, BODY, "sha512")).decode()
    verifier.verify({"X-Signature": signature}, BODY, NOW)


def test_hmac_custom_header_sha256_prefix() -> None:
    auth = make_auth("hmac", header="X-Shopify-Hmac-Sha256", encoding="base64")
    verifier = build_verifier(auth, [HM])
    verifier.verify({"x-shopify-hmac-sha256": base64.b64encode(mac(HM, BODY)).decode()}, BODY, NOW)
    assert refuse(verifier, {"X-Signature": "x"}).code == "missing_credentials"


def test_hmac_rotation_accepts_either_secret() -> None:
    verifier = build_verifier(make_auth("hmac", prefix="sha256="), [HM_OLD, HM])
    for secret in (HM, HM_OLD):
        verifier.verify({"X-Signature": "sha256=" + mac(secret, BODY).hex()}, BODY, NOW)


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_hmac_timestamp_within_tolerance(skew: int) -> None:
    verifier = build_verifier(HMAC_TS, [HM])
    verifier.verify(_hmac_ts_headers(str(int(NOW) + skew)), BODY, NOW)


def test_hmac_timestamp_rotation() -> None:
    verifier = build_verifier(HMAC_TS, [HM, HM_OLD])
    verifier.verify(_hmac_ts_headers(TS, secret=HM_OLD), BODY, NOW)


def test_hmac_timestamp_expired_before_signature_is_checked() -> None:
    # Validly signed but stale: refused as expired, not as a bad signature.
    verifier = build_verifier(HMAC_TS, [HM])
    stale = _hmac_ts_headers(str(int(NOW) - 3600))
    assert refuse(verifier, stale).code == "expired"


# --- standard-webhooks against the reference library --------------------------------


@pytest.mark.parametrize(
    ("signed_with", "configured"),
    [
        (SW_SECRET, SW_SECRET),
        (SW_SECRET.removeprefix("whsec_"), SW_SECRET.removeprefix("whsec_")),
        (SW_SECRET, SW_SECRET.removeprefix("whsec_")),
        (SW_SECRET.removeprefix("whsec_"), SW_SECRET),
        (SW_SECRET.rstrip("="), SW_SECRET),  # unpadded, which the reference also takes
    ],
    ids=["whsec", "raw", "whsec-signed-raw-configured", "raw-signed-whsec-configured", "unpadded"],
)
def test_standard_webhooks_library_signed_message_verifies(
    signed_with: str, configured: str
) -> None:
    verifier = build_verifier(SW, [configured.encode()])
    headers = sw_headers(secret=signed_with)
    verifier.verify(headers, BODY, NOW)
    verifier.verify(CIMultiDict({k.upper(): v for k, v in headers.items()}), BODY, NOW)


def test_standard_webhooks_several_signatures_one_right() -> None:
    verifier = build_verifier(SW, [SW_SECRET.encode()])
    headers = sw_headers()
    wrong = sw_sign(SW_SECRET_OLD, headers["webhook-id"], int(NOW))
    headers["webhook-signature"] = " ".join(
        [wrong, "v1a,AAAA", "junk", "v1,%%%", headers["webhook-signature"]]
    )
    verifier.verify(headers, BODY, NOW)


def test_standard_webhooks_rotation_sender_signs_with_either_key() -> None:
    verifier = build_verifier(SW, [SW_SECRET.encode(), SW_SECRET_OLD.encode()])
    verifier.verify(sw_headers(secret=SW_SECRET_OLD), BODY, NOW)
    verifier.verify(sw_headers(secret=SW_SECRET), BODY, NOW)


def test_standard_webhooks_non_v1_signature_is_ignored() -> None:
    verifier = build_verifier(SW, [SW_SECRET.encode()])
    headers = sw_headers()
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    assert refuse(verifier, headers).code == "malformed_credentials"


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_standard_webhooks_tolerance_boundary(skew: int) -> None:
    verifier = build_verifier(SW, [SW_SECRET.encode()])
    verifier.verify(sw_headers(ts=int(NOW) + skew), BODY, NOW)


def test_standard_webhooks_non_ascii_secret_is_the_key_itself() -> None:
    # Not ASCII, so not base64: used as the key as is, like the reference's bytes form.
    raw = "clé-brute".encode()
    msg_id, when = "msg_1", datetime.fromtimestamp(NOW, tz=UTC)
    signature = ReferenceWebhook(raw).sign(msg_id, when, BODY.decode())
    headers = {"webhook-id": msg_id, "webhook-timestamp": TS, "webhook-signature": signature}
    build_verifier(SW, [raw]).verify(headers, BODY, NOW)


def _lib_accepts(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    try:
        ReferenceWebhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def _tamper(
    name: str, headers: dict[str, str], body: bytes, ts: int
) -> tuple[dict[str, str], bytes]:
    if name == "body":
        return headers, body.replace(b"failure", b"success")
    if name == "id":
        return {**headers, "webhook-id": "msg_someone_else"}, body
    if name == "timestamp":
        return {**headers, "webhook-timestamp": str(ts + 60)}, body
    if name == "stale":
        return sw_headers(ts=ts - 301), body
    if name == "future":
        return sw_headers(ts=ts + 301), body
    if name == "other-key":
        return sw_headers(secret=SW_SECRET_OLD, ts=ts), body
    if name == "no-signature":
        return _without(headers, "webhook-signature"), body
    if name == "no-id":
        return _without(headers, "webhook-id"), body
    if name == "v2-only":
        return {
            **headers,
            "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,"),
        }, body
    assert name == "none"
    return headers, body


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("none", None),
        ("body", "bad_signature"),
        ("id", "bad_signature"),
        ("timestamp", "bad_signature"),
        ("stale", "expired"),
        ("future", "expired"),
        ("other-key", "bad_signature"),
        ("no-signature", "missing_credentials"),
        ("no-id", "missing_credentials"),
        ("v2-only", "malformed_credentials"),
    ],
)
def test_standard_webhooks_agrees_with_reference_library(tamper: str, code: str | None) -> None:
    # The reference reads the wall clock, so this test does too (and never sleeps).
    now = time.time()
    ts = int(now)
    headers, body = _tamper(tamper, sw_headers(ts=ts), BODY, ts)
    verifier = build_verifier(SW, [SW_SECRET.encode()])
    assert _lib_accepts(SW_SECRET, headers, body) is (code is None)
    if code is None:
        verifier.verify(headers, body, now)
    else:
        assert refuse(verifier, headers, body, now).code == code


# --- basic, bearer, api-key, none ----------------------------------------------------


def test_basic_valid_and_rotation() -> None:
    verifier = build_verifier(make_auth("basic", username="ci"), [PASSWORD, PASSWORD_OLD])
    verifier.verify({"Authorization": basic("ci", PASSWORD)}, BODY, NOW)
    verifier.verify({"authorization": basic("ci", PASSWORD_OLD)}, BODY, NOW)
    lower_scheme = basic("ci", PASSWORD).replace("Basic", "basic")
    verifier.verify({"Authorization": lower_scheme}, BODY, NOW)


def test_basic_password_may_contain_colons_and_unicode() -> None:
    password = "pa:ss:wörd".encode()
    verifier = build_verifier(make_auth("basic", username="ci"), [password])
    verifier.verify({"Authorization": basic("ci", password)}, BODY, NOW)


def test_bearer_valid_and_rotation() -> None:
    verifier = build_verifier(make_auth("bearer"), [TOKEN, TOKEN_OLD])
    verifier.verify({"Authorization": "Bearer " + TOKEN.decode()}, BODY, NOW)
    verifier.verify({"Authorization": "bearer " + TOKEN_OLD.decode()}, BODY, NOW)


def test_api_key_valid_default_and_custom_header_and_rotation() -> None:
    verifier = build_verifier(make_auth("api-key"), [API_KEY, API_KEY_OLD])
    verifier.verify({"X-API-Key": API_KEY.decode()}, BODY, NOW)
    verifier.verify({"x-api-key": API_KEY_OLD.decode()}, BODY, NOW)
    custom = build_verifier(make_auth("api-key", header="X-Gitlab-Token"), [API_KEY])
    custom.verify({"X-Gitlab-Token": API_KEY.decode()}, BODY, NOW)


def test_none_accepts_anything_without_a_secret() -> None:
    verifier = build_verifier(make_auth("none"), [])
    verifier.verify({}, b"", NOW)
    verifier.verify({"Authorization": "Bearer whatever"}, BODY, 0.0)


# --- building ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        make_auth("github"),
        make_auth("hmac"),
        SW,
        make_auth("basic", username="ci"),
        make_auth("bearer"),
        make_auth("api-key"),
    ],
    ids=lambda a: a.type.value,
)
def test_types_needing_a_secret_refuse_none_or_empty(auth: WebhookAuth) -> None:
    with pytest.raises(ValueError, match="needs a secret"):
        build_verifier(auth, [])
    with pytest.raises(ValueError, match="empty secret"):
        build_verifier(auth, [GH, b""])


@pytest.mark.parametrize("secret", [b"whsec_A", b"whsec_", b"whsec_===="])
def test_standard_webhooks_secret_that_is_not_a_key(secret: bytes) -> None:
    with pytest.raises(ValueError) as info:
        build_verifier(SW, [secret])
    assert secret.decode() not in str(info.value)


# --- redaction -----------------------------------------------------------------------

BASE_SENSITIVE = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-hub-signature",
    "x-hub-signature-256",
    "webhook-signature",
}


@pytest.mark.parametrize(
    ("auth", "extra"),
    [
        (make_auth("github"), set()),
        (make_auth("hmac"), {"x-signature"}),
        (make_auth("hmac", header="X-Shopify-Hmac-Sha256"), {"x-shopify-hmac-sha256"}),
        (SW, set()),
        (make_auth("basic", username="ci"), set()),
        (make_auth("bearer"), set()),
        (make_auth("api-key"), {"x-api-key"}),
        (make_auth("api-key", header="X-Gitlab-Token"), {"x-gitlab-token"}),
        (make_auth("none"), set()),
    ],
)
def test_credential_headers(auth: WebhookAuth, extra: set[str]) -> None:
    assert credential_headers(auth) == frozenset(BASE_SENSITIVE | extra)


def test_redact_headers_copies_and_redacts() -> None:
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": github_signature(GH),
        "AUTHORIZATION": "Bearer " + TOKEN.decode(),
        "Cookie": "session=abc",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }
    original = dict(headers)
    redacted = redact_headers(headers, credential_headers(make_auth("github")))
    assert type(redacted) is dict
    assert redacted == {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "[redacted]",
        "AUTHORIZATION": "[redacted]",
        "Cookie": "[redacted]",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }
    assert headers == original


def test_redact_headers_joins_repeated_headers() -> None:
    headers: CIMultiDict[str] = CIMultiDict(
        [("Accept", "a/b"), ("X-API-Key", "k1-secret"), ("accept", "c/d"), ("x-api-key", "k2")]
    )
    redacted = redact_headers(headers, credential_headers(make_auth("api-key")))
    assert redacted == {"Accept": "a/b, c/d", "X-API-Key": "[redacted]"}


def _valid_request(auth: WebhookAuth) -> tuple[list[bytes], dict[str, str]]:
    kind = auth.type.value
    if kind == "github":
        return [GH], {"X-Hub-Signature-256": github_signature(GH)}
    if kind == "hmac":
        return [HM], _hmac_ts_headers(TS)
    if kind == "standard-webhooks":
        return [SW_SECRET.encode()], sw_headers()
    if kind == "basic":
        return [PASSWORD], {"Authorization": basic("ci", PASSWORD)}
    if kind == "bearer":
        return [TOKEN], {"Authorization": "Bearer " + TOKEN.decode()}
    assert kind == "api-key"
    return [API_KEY], {"X-API-Key": API_KEY.decode()}


@pytest.mark.parametrize(
    "auth",
    [
        make_auth("github"),
        HMAC_TS,
        SW,
        make_auth("basic", username="ci"),
        make_auth("bearer"),
        make_auth("api-key"),
    ],
    ids=lambda a: a.type.value,
)
def test_accepted_request_redacts_every_credential(auth: WebhookAuth) -> None:
    secrets, headers = _valid_request(auth)
    headers = {**headers, "User-Agent": "GitHub-Hookshot/044aadd"}
    build_verifier(auth, secrets).verify(headers, BODY, NOW)
    stored = redact_headers(headers, credential_headers(auth))
    credentials = {k: v for k, v in headers.items() if k.lower() in credential_headers(auth)}
    assert credentials  # the request carried at least one credential
    for name, value in credentials.items():
        assert stored[name] == "[redacted]"
        assert value not in json.dumps(stored)
    assert stored["User-Agent"] == "GitHub-Hookshot/044aadd"
