"""Sign requests the way real senders do, for tests: GitHub, generic HMAC, and the
Standard Webhooks reference library."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook as StandardWebhook


def github_headers(
    secret: bytes, body: bytes, delivery: str, event: str = "push"
) -> dict[str, str]:
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "123456",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def hmac_signature(
    secret: bytes, body: bytes, *, timestamp: int | None = None, algorithm: str = "sha256"
) -> str:
    content = body if timestamp is None else f"{timestamp}.".encode() + body
    return hmac.new(secret, content, getattr(hashlib, algorithm)).hexdigest()


def standard_headers(secret: str, body: bytes, msg_id: str, at: float) -> dict[str, str]:
    timestamp = datetime.fromtimestamp(at, UTC)
    signature = StandardWebhook(secret).sign(msg_id, timestamp, body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": signature,
    }


def basic_header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
