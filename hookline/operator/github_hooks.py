"""What a managed GitHub hook's daemon does with the operator's context (issue 12): read
the credentials and the Webhook's secret from the Secrets index, keep one GitHub client
per credential (its ETag and App-token caches live in it), and run one check or the
deletion. The decisions are in github_sync and hookline.github.hooks.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from ..api.webhook import GitHubHook, Webhook
from ..github import reasons as r
from ..github.client import AppCredentials, GitHubClient, GitHubError, TokenCredentials
from ..receiver.client import ReceiverError, ReceiverUnavailable
from .context import OperatorContext
from .evaluate import parse, with_generated_secret
from .github_sync import HookReport, StoredDeliveries, delete_hook, failed, sync_hook, where
from .kube import KubeError, KubeUnavailable

log = logging.getLogger(__name__)

# Seconds before a check is tried again when what it needs is about to exist (the
# Webhook's generated Secret is made by its create handler, moments after the Webhook).
SOON = 5.0

SecretsIndex = Mapping[Any, Any]
MAX_KNOWN_IDS = 1000  # per request to the receiver (hookline.receiver.admin_known)


def secret_data(index: SecretsIndex, namespace: str, name: str) -> dict[str, bytes] | None:
    """A Secret's decoded data from the operator's Secrets index; None when absent."""
    for _key, data in index.get((namespace, name), ()):
        return dict(data)
    return None


class Missing(Exception):
    """A Secret or key the check needs is not there; the message names it, never a value."""


def credentials(
    hook: GitHubHook, namespace: str, index: SecretsIndex
) -> TokenCredentials | AppCredentials:
    field_path, ref = hook.credential_ref
    data = secret_data(index, namespace, ref.name)
    if data is None:
        raise Missing(f"{field_path}: Secret {namespace}/{ref.name} not found")
    value = data.get(ref.key)
    if not value:
        raise Missing(f"{field_path}: Secret {namespace}/{ref.name} has no key {ref.key!r}")
    if hook.app is not None:
        return AppCredentials(
            app_id=hook.app.app_id,
            installation_id=hook.app.installation_id,
            private_key=value.decode(),
        )
    return TokenCredentials(token=value.decode().strip())


def webhook_secret(webhook: Webhook, index: SecretsIndex) -> bytes:
    """The secret the hook signs with: the Webhook's auth secret (its generated one when
    it names none)."""
    ref = with_generated_secret(webhook).spec.auth.secret_ref
    namespace = webhook.metadata.namespace or "default"
    assert ref is not None  # auth type github needs a secret
    data = secret_data(index, namespace, ref.name)
    if data is None or not data.get(ref.key):
        raise Missing(
            f"spec.auth.secretRef: Secret {namespace}/{ref.name} key {ref.key!r} not found"
        )
    return data[ref.key]


@dataclass
class ClientCache:
    """One client per API URL and credential: a rotated token gets a new client (and
    drops the old one's caches), an unchanged one keeps its ETags and App token."""

    key: str = ""
    client: GitHubClient | None = None

    def get(
        self, ctx: OperatorContext, hook: GitHubHook, creds: TokenCredentials | AppCredentials
    ) -> GitHubClient:
        # Not repr(creds): it leaves the token out (so that no log shows it), and a
        # rotated token must make a new client.
        secret = creds.token if isinstance(creds, TokenCredentials) else creds.private_key
        ids = (creds.app_id, creds.installation_id) if isinstance(creds, AppCredentials) else ()
        material = repr((hook.api_url, ids)).encode() + b"\0" + secret.encode()
        key = hashlib.sha256(material).hexdigest()
        if self.client is None or key != self.key:
            assert ctx.session is not None
            self.client = GitHubClient(ctx.session, hook.api_url, creds)
            self.key = key
        return self.client


def stored_deliveries(ctx: OperatorContext, webhook_key: str) -> StoredDeliveries:
    async def ask(ids: list[str]) -> set[str] | None:
        try:
            admin = await ctx.receiver_admin()
            known: set[str] = set()
            for start in range(0, len(ids), MAX_KNOWN_IDS):
                known |= await admin.known_deliveries(
                    webhook_key, ids[start : start + MAX_KNOWN_IDS]
                )
        except (ReceiverUnavailable, ReceiverError, KubeError, KubeUnavailable) as exc:
            # Without the receiver nothing can be told missing, and a redelivery to it
            # would fail again: the next check asks again (GitHub's last_response still
            # shows the failure until a delivery gets through).
            log.info("missed deliveries of %s not checked: %s", webhook_key, exc)
            return None
        return known

    return ask


async def check(
    ctx: OperatorContext,
    body: Mapping[str, Any],
    index: SecretsIndex,
    cache: ClientCache,
    *,
    previous: Mapping[str, Any] | None = None,
) -> HookReport:
    """One check of the Webhook's hook, as a report; never raises for the user's or
    GitHub's sake (those are reasons in the report). `previous` is what the last check
    found (default: the Webhook's status.github)."""
    webhook, error = parse(Webhook, body)
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    if previous is None:
        previous = (body.get("status") or {}).get("github") or {}
    previous = dict(previous)
    if webhook is None or not isinstance(webhook, Webhook) or webhook.spec.github is None:
        return failed(
            generation, previous, r.INVALID_CONFIG, f"the spec does not parse: {error}", None
        )
    hook = webhook.spec.github
    namespace, name = webhook.metadata.namespace or "default", webhook.metadata.name
    url = ctx.config.webhook_url(webhook.spec.path or f"{namespace}/{name}")
    if url is None:
        return failed(
            generation,
            previous,
            r.INVALID_CONFIG,
            "no public URL to point the hook at: set HOOKLINE_PUBLIC_BASE_URL (chart: "
            "publicBaseURL) or an Ingress host, so that status.url is set",
            None,
        )
    try:
        creds = credentials(hook, namespace, index)
        secret = webhook_secret(webhook, index)
    except Missing as exc:
        return failed(generation, previous, r.CREDENTIALS_NOT_FOUND, str(exc), SOON)
    ready = next(
        (
            c
            for c in (body.get("status") or {}).get("conditions") or []
            if isinstance(c, Mapping) and c.get("type") == "Ready"
        ),
        None,
    )
    return await sync_hook(
        cache.get(ctx, hook, creds),
        hook,
        generation=generation,
        url=url,
        secret=secret,
        previous=previous,
        now=ctx.now(),
        window=ctx.config.github_redelivery_window,
        stored=stored_deliveries(ctx, f"{namespace}/{name}"),
        serving=ready is not None and ready.get("status") == "True",
    )


async def remove(
    ctx: OperatorContext,
    body: Mapping[str, Any],
    index: SecretsIndex,
    runtime: float,
    *,
    why: str,
) -> None:
    """Delete the Webhook's GitHub hook; kopf retries on TemporaryError. After
    HOOKLINE_GITHUB_DELETE_TIMEOUT it gives up with a Warning Event naming the hook, so a
    Webhook whose credentials are gone never holds its namespace's deletion for ever."""
    webhook, _ = parse(Webhook, body)
    if not isinstance(webhook, Webhook) or webhook.spec.github is None:
        return
    hook = webhook.spec.github
    namespace, name = webhook.metadata.namespace or "default", webhook.metadata.name
    hook_id = ((body.get("status") or {}).get("github") or {}).get("hookID")
    url = ctx.config.webhook_url(webhook.spec.path or f"{namespace}/{name}")
    described = f"GitHub hook {hook_id or 'for ' + str(url)} on {where(hook)}"
    involved = {**body, "kind": "Webhook"}
    try:
        creds = credentials(hook, namespace, index)
        deleted = await delete_hook(
            ClientCache().get(ctx, hook, creds),
            hook,
            hook_id if isinstance(hook_id, int) else None,
            url,
        )
    except (Missing, GitHubError) as exc:
        retry = getattr(exc, "retry_after", None) or 30.0
        if runtime + retry <= ctx.config.github_delete_timeout:
            raise kopf.TemporaryError(f"{described} not deleted yet: {exc}", delay=retry) from None
        await ctx.kube.post_event(
            involved,
            type="Warning",
            reason="GitHubHookNotDeleted",
            message=(
                f"{described} was not deleted ({exc}) and is left behind after "
                f"{ctx.config.github_delete_timeout:.0f} s; delete it on GitHub by hand"
            )[:1024],
        )
        log.warning("%s of %s/%s left behind (%s): %s", described, namespace, name, why, exc)
        return
    await ctx.kube.post_event(
        involved,
        type="Normal",
        reason="GitHubHookDeleted",
        message=f"{described} deleted ({why})" if deleted else f"{described} was already gone",
    )
