"""Reasons of the `GitHubHookReady` condition (issue 12).

A reason is a stable API (alerts and runbooks match on it), so the GitHub client
classifies each answer into one of these where it happens, and the operator writes it
into the condition unchanged.
"""

from __future__ import annotations

GITHUB_HOOK_READY = "GitHubHookReady"  # the condition type

HOOK_ACTIVE = "HookActive"  # True: the hook exists upstream as the spec says
UNAUTHORIZED = "Unauthorized"  # 401: the token / App credentials are not accepted
FORBIDDEN = "Forbidden"  # 403 (not a rate limit): the token may not manage hooks here
REPOSITORY_NOT_FOUND = "RepositoryNotFound"  # 404 on the repository / organization
RATE_LIMITED = "RateLimited"  # primary or secondary rate limit; retried after its delay
INVALID_CONFIG = "InvalidConfig"  # 422: GitHub refused the hook's configuration
CREDENTIALS_NOT_FOUND = "CredentialsNotFound"  # the token / private key Secret is missing
# The Webhook is not Ready (the receiver does not serve it yet): no hook is created, so
# GitHub's first ping is not answered 404; the reconciler wakes the check when it is.
WEBHOOK_NOT_READY = "WebhookNotReady"
GITHUB_UNAVAILABLE = "GitHubUnavailable"  # 5xx, timeouts, connection refused: retried
