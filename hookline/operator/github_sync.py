"""One check of a Webhook's upstream GitHub hook (issue 12): plain functions, no kopf.

`sync_hook` makes the hook be as the spec says — adopt one that points at us rather than
make a second, recreate one deleted by hand, PATCH back one edited by hand or whose
secret was rotated, ping a new one, ask GitHub to redeliver what the receiver missed —
and returns a `HookReport`: what the GitHubHookReady condition and `status.github` say.
Every GitHub answer is classified where it happens (hookline.github.client) into a
reason of hookline.github.reasons; nothing here raises for GitHub's sake.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..api.webhook import GitHubHook
from ..github import hooks as plan
from ..github import reasons as r
from ..github.client import GitHubClient, GitHubError, HookNotFound, HookTarget

log = logging.getLogger(__name__)

# Which X-GitHub-Delivery ids the receiver's store holds, of those asked; None when the
# receiver cannot say (it is down: the redelivery waits for the next check).
StoredDeliveries = Callable[[list[str]], Awaitable[set[str] | None]]


# Seconds before a Webhook not Ready yet is looked at again, at the latest: the
# reconciler wakes the check as soon as Ready turns True.
NOT_READY_RETRY = 30.0


@dataclass(frozen=True)
class HookReport:
    """The outcome of one check, for the reconciler to write (it is the one writer of
    statuses: hookline.operator.status)."""

    generation: int
    status: str  # "True" | "False"
    reason: str
    message: str
    github: dict[str, Any] = field(default_factory=dict)  # status.github, camelCase
    retry_after: float | None = None  # seconds; None: the resync interval
    redelivered: int = 0  # asked for again in this check (for an Event)

    @property
    def ready(self) -> bool:
        return self.status == "True"


def target_of(hook: GitHubHook) -> HookTarget:
    return HookTarget(repository=hook.repository, organization=hook.organization)


def where(hook: GitHubHook) -> str:
    return (
        f"repository {hook.repository}" if hook.repository else f"organization {hook.organization}"
    )


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def failed(
    generation: int, previous: Mapping[str, Any], reason: str, message: str, retry: float | None
) -> HookReport:
    """False with `reason`; what status.github knew stays (the hook id above all)."""
    return HookReport(generation, "False", reason, message, dict(previous), retry)


async def sync_hook(
    client: GitHubClient,
    hook: GitHubHook,
    *,
    generation: int,
    url: str,
    secret: bytes,
    previous: Mapping[str, Any],
    now: datetime,
    window: timedelta,
    stored: StoredDeliveries | None,
    serving: bool = True,
) -> HookReport:
    """Check the hook once and put it right; never raises for a GitHub answer.
    `serving`: whether the receiver serves the Webhook yet (no hook is made before)."""
    try:
        return await _sync(
            client,
            hook,
            generation=generation,
            url=url,
            secret=secret,
            previous=previous,
            now=now,
            window=window,
            stored=stored,
            serving=serving,
        )
    except GitHubError as exc:
        retry = exc.retry_after if exc.reason in (r.RATE_LIMITED, r.GITHUB_UNAVAILABLE) else None
        return failed(generation, previous, exc.reason, f"{where(hook)}: {exc}", retry)


async def _sync(
    client: GitHubClient,
    hook: GitHubHook,
    *,
    generation: int,
    url: str,
    secret: bytes,
    previous: Mapping[str, Any],
    now: datetime,
    window: timedelta,
    stored: StoredDeliveries | None,
    serving: bool,
) -> HookReport:
    target = target_of(hook)
    text_secret = secret.decode()
    known_id = previous.get("hookID")
    digest = previous.get("secretDigest")
    current: dict[str, Any] | None = None
    if isinstance(known_id, int):
        try:
            # Conditional (If-None-Match): unchanged, GitHub answers 304, which costs no
            # rate limit — the common case of every resync.
            current = await client.get_hook(target, known_id)
        except HookNotFound:
            log.info("GitHub hook %s on %s is gone; recreating it", known_id, where(hook))
    adopted = created = False
    if current is None:
        hooks = await client.list_hooks(target)
        current, duplicates = plan.choose_hook(
            hooks, url, known_id if isinstance(known_id, int) else None
        )
        for duplicate in duplicates:
            # Several hooks deliver every event several times; dedup would absorb it,
            # GitHub's rate limit and delivery log would not.
            await client.delete_hook(target, int(duplicate["id"]))
        if current is not None:
            adopted = True
        elif not serving:
            return failed(
                generation,
                previous,
                r.WEBHOOK_NOT_READY,
                f"{where(hook)}: no hook is created until the Webhook is Ready (served by "
                "the receiver), so that GitHub's first ping is answered",
                NOT_READY_RETRY,
            )
        else:
            current = await client.create_hook(
                target,
                plan.create_body(url, text_secret, hook.events, hook.active, hook.insecure_ssl),
            )
            created = True
            digest = plan.secret_digest(secret)
    if not created:
        # GitHub never returns a secret: whether the hook has the current one is known
        # only from the digest of what was last set. An adopted hook's is unknown.
        secret_changed = adopted or not plan.secret_matches(secret, digest)
        patch = plan.drift_patch(
            current,
            url=url,
            events=hook.events,
            active=hook.active,
            insecure_ssl=hook.insecure_ssl,
            secret=text_secret,
            secret_changed=secret_changed,
        )
        if patch is not None:
            current = await client.update_hook(target, int(current["id"]), patch)
            if "config" in patch:
                digest = plan.secret_digest(secret)
    hook_id = int(current["id"])
    github: dict[str, Any] = {
        "hookID": hook_id,
        "secretDigest": digest,
        "lastCheckedAt": _time(now),
        "lastPingAt": previous.get("lastPingAt"),
        "lastResponse": plan.last_response(current),
        "redelivered": int(previous.get("redelivered") or 0),
    }
    if created:
        # GitHub sends `ping` on creation too; asking makes lastPingAt true (issue 12).
        await client.ping_hook(target, hook_id)
        github["lastPingAt"] = _time(now)
    redelivered = 0
    if stored is not None and (
        plan.delivery_failed(current.get("last_response"))
        or plan.delivery_failed(previous.get("lastResponse"))
    ):
        # GitHub's last delivery failed (now, or at the last check: the outage may have
        # ended since): the receiver was unreachable or refused. GitHub never retries by
        # itself, so ask for every failed or missing one (issue 12). Only then: an
        # unchanged hook costs one conditional GET, not a listing of its deliveries.
        redelivered = await redeliver_missed(client, target, hook_id, now, window, stored)
        github["redelivered"] += redelivered
    message = plan.hook_summary(current)
    if adopted:
        message += " (adopted: it already pointed at this Webhook)"
    return HookReport(generation, "True", r.HOOK_ACTIVE, message, github, None, redelivered)


async def redeliver_missed(
    client: GitHubClient,
    target: HookTarget,
    hook_id: int,
    now: datetime,
    window: timedelta,
    stored: StoredDeliveries,
) -> int:
    deliveries = await client.list_deliveries(target, hook_id, since=now - window)
    guids = sorted({str(d.get("guid")) for d in deliveries if d.get("guid")})
    have = await stored(guids) if guids else set()
    if have is None:
        return 0
    missed = plan.missed_deliveries(deliveries, have, now, window)
    for delivery in missed:
        await client.redeliver(target, hook_id, int(delivery["id"]))
    return len(missed)


async def delete_hook(
    client: GitHubClient, hook: GitHubHook, hook_id: int | None, url: str | None
) -> int:
    """Delete the hook (by id, or every one pointing at `url`); the number deleted.
    A hook already gone counts as deleted (issue 12: removed even if GitHub answers 404)."""
    target = target_of(hook)
    if hook_id is not None:
        await client.delete_hook(target, hook_id)
        return 1
    if url is None:
        return 0
    deleted = 0
    for found in await client.list_hooks(target):
        if (found.get("config") or {}).get("url") == url:
            await client.delete_hook(target, int(found["id"]))
            deleted += 1
    return deleted
