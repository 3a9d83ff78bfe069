"""What to do with a repository's or organization's hooks (issue 12): pure functions over
GitHub's hook JSON as its REST API documents it ({id, name: "web", active, events,
config: {url, content_type, insecure_ssl: "0"|"1", secret?}, last_response, ...}).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

# scrypt with N=2^12, r=8, p=1: about 4 ms and 4 MiB per digest here, so a resync of 100
# hooks spends well under a second on it, while guessing a secret from the digest in
# status (readable by whoever may read the Webhook) costs an attacker the same per guess.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**12, 8, 1
SALT_BYTES = 16


def _flag(value: bool) -> str:
    return "1" if value else "0"


def desired_config(url: str, secret: str, insecure_ssl: bool) -> dict[str, Any]:
    return {
        "url": url,
        "content_type": "json",
        "insecure_ssl": _flag(insecure_ssl),
        "secret": secret,
    }


def create_body(
    url: str, secret: str, events: list[str], active: bool, insecure_ssl: bool
) -> dict[str, Any]:
    return {
        "name": "web",
        "active": active,
        "events": list(events),
        "config": desired_config(url, secret, insecure_ssl),
    }


def hook_url(hook: Mapping[str, Any]) -> str | None:
    config = hook.get("config")
    url = config.get("url") if isinstance(config, Mapping) else None
    return url if isinstance(url, str) else None


def choose_hook(
    hooks: Iterable[Mapping[str, Any]], url: str, known_id: int | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The hook to keep among those pointing at `url` (exactly as GitHub stores it: a
    URL with another trailing slash is another endpoint, and someone else's hook), and
    the others, to delete. Hooks pointing elsewhere are never touched."""
    ours = sorted((dict(h) for h in hooks if hook_url(h) == url), key=lambda h: int(h["id"]))
    if not ours:
        return None, []
    keep = next((h for h in ours if h["id"] == known_id), ours[0])
    return keep, [h for h in ours if h is not keep]


def _same_events(have: Any, want: Iterable[str]) -> bool:
    return isinstance(have, list) and set(have) == set(want)


def drift_patch(
    hook: Mapping[str, Any],
    *,
    url: str,
    events: list[str],
    active: bool,
    insecure_ssl: bool,
    secret: str,
    secret_changed: bool,
) -> dict[str, Any] | None:
    """The PATCH body that puts a hand-edited hook back; None when it is as it should be.

    GitHub documents that a `config` sent in a PATCH replaces the hook's config, and that
    a secret not sent again is removed: so any body with `config` carries the secret,
    and a rotated secret alone sends the whole config."""
    patch: dict[str, Any] = {}
    if not _same_events(hook.get("events"), events):
        patch["events"] = list(events)
    if hook.get("active") is not active:
        patch["active"] = active
    config = hook.get("config") if isinstance(hook.get("config"), Mapping) else {}
    assert isinstance(config, Mapping)
    config_drift = (
        config.get("url") != url
        or config.get("content_type") != "json"
        or str(config.get("insecure_ssl", "0")) != _flag(insecure_ssl)
    )
    if config_drift or secret_changed:
        patch["config"] = desired_config(url, secret, insecure_ssl)
    return patch or None


def secret_digest(secret: bytes, *, salt: bytes | None = None) -> str:
    """A salted, slow digest of the hook's secret, kept in status.github.secretDigest:
    it tells whether the hook has the Secret's current value (GitHub never returns it)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(secret, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def secret_matches(secret: bytes, digest: str | None) -> bool:
    """Whether `digest` (from secret_digest) is of `secret`; False for anything malformed."""
    if not isinstance(digest, str):
        return False
    parts = digest.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        # Our own parameters only: a digest edited into status must not make the operator
        # spend seconds or gigabytes on one check.
        if (n, r, p) != (SCRYPT_N, SCRYPT_R, SCRYPT_P):
            return False
        salt = base64.urlsafe_b64decode(parts[4])
        want = base64.urlsafe_b64decode(parts[5])
    except ValueError:
        return False
    got = hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=len(want) or 32)
    return hmac.compare_digest(got, want)


def _delivered_at(delivery: Mapping[str, Any]) -> datetime | None:
    raw = delivery.get("delivered_at")
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ok(code: Any) -> bool:
    return isinstance(code, int) and 200 <= code < 300


def missed_deliveries(
    deliveries: Iterable[Mapping[str, Any]],
    stored_ids: set[str],
    now: datetime,
    window: timedelta,
) -> list[dict[str, Any]]:
    """The deliveries to ask GitHub to redeliver: one (the newest attempt) per
    X-GitHub-Delivery guid within `window` that no attempt delivered (2xx) and the
    receiver's store does not hold. A guid with a redelivery already is skipped: each
    missed delivery is asked for once, never in a loop. Pings are not events."""
    attempts: dict[str, list[Mapping[str, Any]]] = {}
    for delivery in deliveries:
        guid = delivery.get("guid")
        at = _delivered_at(delivery)
        if not isinstance(guid, str) or at is None or now - at > window:
            continue
        attempts.setdefault(guid, []).append(delivery)
    missed = []
    for guid, tries in attempts.items():
        if guid in stored_ids or any(_ok(t.get("status_code")) for t in tries):
            continue
        if any(t.get("redelivery") for t in tries) or any(t.get("event") == "ping" for t in tries):
            continue
        newest = max(tries, key=lambda t: (_delivered_at(t) or now, int(t.get("id") or 0)))
        missed.append(dict(newest))
    return sorted(missed, key=lambda d: int(d.get("id") or 0))


def delivery_failed(response: Any) -> bool:
    """Whether a hook's last_response (GitHub's or status.github's) is of a delivery that
    did not get a 2xx. A new hook's is {code: null, status: "unused"}: nothing failed."""
    if not isinstance(response, Mapping):
        return False
    code, status = response.get("code"), response.get("status")
    if code is None and status in (None, "unused", "active"):
        return False
    return not _ok(code)


def hook_summary(hook: Mapping[str, Any]) -> str:
    events = ", ".join(sorted(str(e) for e in hook.get("events") or []))
    state = "active" if hook.get("active") else "inactive"
    return f"hook {hook.get('id')} {state}, events: {events or 'none'}"


def last_response(hook: Mapping[str, Any]) -> dict[str, Any] | None:
    """GitHub's record of its last delivery to the hook, as status.github.lastResponse."""
    response = hook.get("last_response")
    if not isinstance(response, Mapping):
        return None
    out = {k: response.get(k) for k in ("code", "status", "message")}
    return out if any(v is not None for v in out.values()) else None
