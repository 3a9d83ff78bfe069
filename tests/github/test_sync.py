"""One check of a managed GitHub hook (hookline.operator.github_sync, issue 12) against
the local GitHub API: create, adopt, recreate, repair, rotate, delete, refusals, rate
limits, App tokens, Enterprise, missed deliveries. The operator's daemon runs exactly
this check (tests/operator/test_github_hooks.py drives it through kopf)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from hookline.api.webhook import GitHubHook
from hookline.github import hooks as plan
from hookline.github import reasons as r
from hookline.github.client import AppCredentials, GitHubClient, TokenCredentials
from hookline.operator.github_sync import HookReport, delete_hook, sync_hook
from tests.github.conftest import REPO, TOKEN, app_key
from tests.support.clock import FakeClock
from tests.support.github_api import FakeGitHub, Grant, Installation
from tests.support.sink import Sink

SECRET = b"s3cret-of-the-webhook"
WINDOW = timedelta(hours=72)


def spec(**fields: Any) -> GitHubHook:
    body = {"repository": REPO, "tokenSecretRef": {"name": "gh"}, **fields}
    return GitHubHook.model_validate(body)


class Checker:
    """Runs checks the way the daemon does: each with the previous one's status.github."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        github: FakeGitHub,
        receiver: Sink,
        clock: FakeClock,
        creds: TokenCredentials | AppCredentials | None = None,
    ) -> None:
        self.client = GitHubClient(
            session, github.url, creds or TokenCredentials(TOKEN), clock=clock
        )
        self.url = receiver.url("/hooks/acme/builds")
        self.receiver = receiver
        self.clock = clock
        self.previous: dict[str, Any] = {}

    def stored(self) -> set[str]:
        # The receiver's store: what it answered 2xx to (hookline's contract, issue 1).
        return {x.headers["X-GitHub-Delivery"] for x in self.receiver.received if x.status < 300}

    async def check(self, hook: GitHubHook | None = None, secret: bytes = SECRET) -> HookReport:
        async def stored(ids: list[str]) -> set[str]:
            return self.stored() & set(ids)

        report = await sync_hook(
            self.client,
            hook or spec(),
            generation=1,
            url=self.url,
            secret=secret,
            previous=self.previous,
            now=datetime.fromtimestamp(self.clock(), UTC),
            window=WINDOW,
            stored=stored,
        )
        self.previous = report.github
        return report


@pytest.fixture
def checker(
    session: aiohttp.ClientSession, github: FakeGitHub, receiver: Sink, clock: FakeClock
) -> Checker:
    return Checker(session, github, receiver, clock)


def signed(received: Any, secret: bytes) -> bool:
    want = "sha256=" + hmac.new(secret, received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers.get("X-Hub-Signature-256", ""), want)


async def test_create_pings_and_records_the_hook(checker: Checker, github: FakeGitHub) -> None:
    report = await checker.check(spec(events=["workflow_run", "push"]))
    assert (report.status, report.reason) == ("True", r.HOOK_ACTIVE), report.message
    (hook,) = github.hooks_of(REPO)
    assert report.github["hookID"] == hook.id
    assert hook.config == {
        "url": checker.url,
        "content_type": "json",
        "insecure_ssl": "0",
        "secret": SECRET.decode(),
    }
    assert sorted(hook.events) == ["push", "workflow_run"] and hook.active
    assert plan.secret_matches(SECRET, report.github["secretDigest"])
    assert report.github["lastPingAt"] is not None
    # GitHub's own ping on creation and the one asked for, both signed with the secret.
    pings = [x for x in checker.receiver.received if x.headers["X-GitHub-Event"] == "ping"]
    assert len(pings) == 2 and all(signed(x, SECRET) for x in pings)
    assert github.calls("POST", r"/pings$")


async def test_an_unchanged_hook_costs_one_conditional_get(
    checker: Checker, github: FakeGitHub
) -> None:
    await checker.check()
    await checker.check()  # the first GET: 200 with an ETag
    before = len(github.requests)
    remaining = github.remaining[TOKEN]
    for _ in range(3):
        report = await checker.check()
        assert report.ready, report.message
    assert (
        github.requests[before:]
        == [("GET", f"/repos/{REPO}/hooks/{report.github['hookID']}", 304)] * 3
    )
    assert github.remaining[TOKEN] == remaining  # a 304 costs no rate limit
    assert checker.client.not_modified == 3


async def test_adopts_one_of_several_and_deletes_the_others(
    checker: Checker, github: FakeGitHub
) -> None:
    ours = [github.add_hook(REPO, checker.url) for _ in range(3)]
    other = github.add_hook(REPO, checker.url + "/")  # another endpoint: someone else's
    report = await checker.check()
    assert report.ready and "adopted" in report.message
    assert report.github["hookID"] == ours[0].id
    assert {h.id for h in github.hooks_of(REPO)} == {ours[0].id, other.id}
    assert not github.calls("POST", r"/hooks$")
    # Adopted: its secret is unknown, so it is set, with the config put right.
    kept = github.hooks[ours[0].id]
    assert kept.config["secret"] == SECRET.decode() and kept.config["content_type"] == "json"
    assert kept.events == ["workflow_run"]
    assert github.hooks[other.id].config == {
        "url": other.config["url"],
        "content_type": "form",
        "insecure_ssl": "0",
    }


async def test_pages_of_hooks_are_followed(checker: Checker, github: FakeGitHub) -> None:
    for n in range(150):
        github.add_hook(REPO, f"https://elsewhere.example/{n}")
    mine = github.add_hook(REPO, checker.url)
    report = await checker.check()
    assert report.github["hookID"] == mine.id
    assert len(github.calls("GET", r"/hooks$")) == 2  # 100 + 51, by the Link header


async def test_a_hook_deleted_by_hand_is_recreated(checker: Checker, github: FakeGitHub) -> None:
    first = (await checker.check()).github["hookID"]
    del github.hooks[first]
    report = await checker.check()
    assert report.ready and report.github["hookID"] != first
    assert [h.id for h in github.hooks_of(REPO)] == [report.github["hookID"]]


async def test_a_hook_edited_by_hand_is_put_back(checker: Checker, github: FakeGitHub) -> None:
    hook_id = (await checker.check()).github["hookID"]
    hook = github.hooks[hook_id]
    hook.events, hook.active = ["push"], False
    hook.config = {"url": "https://attacker.example/", "content_type": "form", "insecure_ssl": "1"}
    report = await checker.check()
    assert report.ready
    hook = github.hooks[hook_id]
    assert (hook.events, hook.active) == (["workflow_run"], True)
    # A config sent replaces the hook's: the secret goes with it, or it would be lost.
    assert hook.config == {
        "url": checker.url,
        "content_type": "json",
        "insecure_ssl": "0",
        "secret": SECRET.decode(),
    }
    assert len(github.calls("PATCH")) == 1


async def test_a_rotated_secret_is_patched_once(checker: Checker, github: FakeGitHub) -> None:
    hook_id = (await checker.check()).github["hookID"]
    await checker.check(secret=b"rotated")
    assert github.hooks[hook_id].config["secret"] == "rotated"
    assert plan.secret_matches(b"rotated", checker.previous["secretDigest"])
    await checker.check(secret=b"rotated")
    assert len(github.calls("PATCH")) == 1
    assert "rotated" not in json.dumps(checker.previous)  # only a digest in status


@pytest.mark.parametrize(
    ("grant", "reason"),
    [
        (None, r.UNAUTHORIZED),
        (Grant(admin_hooks=False), r.FORBIDDEN),
        (Grant(repos={"acme/other"}), r.REPOSITORY_NOT_FOUND),
    ],
)
async def test_refusals_are_reasons(
    checker: Checker, github: FakeGitHub, grant: Grant | None, reason: str
) -> None:
    if grant is None:
        del github.tokens[TOKEN]
    else:
        github.tokens[TOKEN] = grant
    report = await checker.check()
    assert (report.status, report.reason) == ("False", reason)
    assert REPO in report.message and TOKEN not in report.message
    assert report.retry_after is None  # the resync interval: no hot loop on a 401


async def test_an_invalid_config_is_a_reason(checker: Checker, github: FakeGitHub) -> None:
    checker.url = ""
    report = await checker.check()
    assert (report.status, report.reason) == ("False", r.INVALID_CONFIG)
    assert "Validation Failed" in report.message


async def test_primary_rate_limit_waits_for_its_reset(
    checker: Checker, github: FakeGitHub, clock: FakeClock
) -> None:
    github.remaining[TOKEN] = 0
    github.reset_at = clock() + 1234
    report = await checker.check()
    assert (report.status, report.reason) == ("False", r.RATE_LIMITED)
    assert report.retry_after == pytest.approx(1234, abs=1)
    clock.advance(1235)  # the window resets
    assert (await checker.check()).ready


async def test_secondary_rate_limit_honours_retry_after(
    checker: Checker, github: FakeGitHub
) -> None:
    github.secondary, github.secondary_retry_after = 1, 90
    report = await checker.check()
    assert (report.reason, report.retry_after) == (r.RATE_LIMITED, 90)
    assert len(github.requests) == 1  # asked once, not in a loop
    assert (await checker.check()).ready


async def test_a_hook_already_gone_counts_as_deleted(checker: Checker, github: FakeGitHub) -> None:
    hook_id = (await checker.check()).github["hookID"]
    assert await delete_hook(checker.client, spec(), hook_id, checker.url) == 1
    assert github.hooks_of(REPO) == []
    assert await delete_hook(checker.client, spec(), hook_id, checker.url) == 1  # 404
    # Without an id (status lost): every hook pointing at us, none other.
    github.add_hook(REPO, checker.url)
    other = github.add_hook(REPO, "https://elsewhere.example/")
    assert await delete_hook(checker.client, spec(), None, checker.url) == 1
    assert [h.id for h in github.hooks_of(REPO)] == [other.id]


async def test_an_organization_hook(checker: Checker, github: FakeGitHub) -> None:
    report = await checker.check(spec(repository=None, organization="acme"))
    assert report.ready, report.message
    assert [h.id for h in github.hooks_of("org:acme")] == [report.github["hookID"]]
    assert (await checker.check(spec(repository=None, organization="acme"))).ready


async def test_github_app_tokens_are_minted_cached_and_renewed(
    session: aiohttp.ClientSession, github: FakeGitHub, receiver: Sink, clock: FakeClock
) -> None:
    private, public = app_key()
    github.apps[42] = public
    github.installations[7] = Installation(42, Grant(repos={REPO}))
    creds = AppCredentials(app_id=42, installation_id=7, private_key=private)
    checker = Checker(session, github, receiver, clock, creds)
    app = spec(
        tokenSecretRef=None,
        app={"appID": 42, "installationID": 7, "privateKeySecretRef": {"name": "app"}},
    )
    assert (await checker.check(app)).ready
    assert (await checker.check(app)).ready
    assert len(github.minted) == 1  # cached
    clock.advance(3600 - 300 + 1)  # within five minutes of its expiry
    assert (await checker.check(app)).ready
    assert len(github.minted) == 2
    # A token revoked early: one 401, a new token, the call made again.
    del github.tokens[github.minted[-1]]
    assert (await checker.check(app)).ready
    assert len(github.minted) == 3


async def test_a_wrong_app_key_is_unauthorized(
    session: aiohttp.ClientSession, github: FakeGitHub, receiver: Sink, clock: FakeClock
) -> None:
    private, _ = app_key()
    github.apps[42] = app_key.__wrapped__()[1]  # another key pair than the one signing
    github.installations[7] = Installation(42)
    checker = Checker(session, github, receiver, clock, AppCredentials(42, 7, private))
    report = await checker.check()
    assert (report.status, report.reason) == ("False", r.UNAUTHORIZED)
    assert "BEGIN" not in report.message


async def test_enterprise_server_api_url(
    session: aiohttp.ClientSession, enterprise: FakeGitHub, receiver: Sink, clock: FakeClock
) -> None:
    assert enterprise.url.endswith("/api/v3")
    checker = Checker(session, enterprise, receiver, clock)
    report = await checker.check(spec(apiURL=enterprise.url))
    assert report.ready, report.message
    assert enterprise.hooks_of(REPO) and all(
        not p.startswith("/api") for _, p, _ in enterprise.requests
    )


async def test_missed_deliveries_are_redelivered_exactly_once(
    checker: Checker, github: FakeGitHub, receiver: Sink, clock: FakeClock
) -> None:
    hook_id = (await checker.check()).github["hookID"]
    run = {"action": "completed", "workflow_run": {"id": 1}}
    delivered = await github.deliver(hook_id, "workflow_run", run)
    receiver.then(503, 2)  # the receiver is down for two deliveries
    missed = [await github.deliver(hook_id, "workflow_run", {**run, "n": n}) for n in range(2)]
    clock.advance(60)
    report = await checker.check()
    assert report.redelivered == 2 and report.github["redelivered"] == 2
    guids = [x.headers["X-GitHub-Delivery"] for x in receiver.received]
    assert guids.count(delivered.item["guid"]) == 1
    for m in missed:
        assert guids.count(m.item["guid"]) == 2  # the failed one and the redelivery
    assert all(signed(x, SECRET) for x in receiver.received)
    # Once: the next checks ask for nothing again.
    for _ in range(2):
        clock.advance(600)
        assert (await checker.check()).redelivered == 0
    assert len(github.calls("POST", r"/attempts$")) == 2


async def test_redelivery_stays_within_the_window(
    checker: Checker, github: FakeGitHub, receiver: Sink, clock: FakeClock
) -> None:
    hook_id = (await checker.check()).github["hookID"]
    receiver.then(503)
    await github.deliver(hook_id, "workflow_run", {"action": "requested"})
    clock.advance(WINDOW.total_seconds() + 60)
    assert (await checker.check()).redelivered == 0
    assert not github.calls("POST", r"/attempts$")


def test_the_validator_catches_an_answer_github_would_not_give() -> None:
    from tests.support.github_openapi import description

    d = description()
    op = d.operation("GET", f"/repos/{REPO}/hooks/1")
    assert op is not None
    problems = d.check_response(op, 200, {"id": "1", "config": {"url": 5}})
    assert any("is not of type 'integer'" in p for p in problems)
    assert d.check_response(op, 418, None) == [
        f"status 418 is not documented for GET {op.template}"
    ]
    create = d.operation("POST", f"/repos/{REPO}/hooks")
    assert create is not None and d.check_request(create, {"config": {}, "colour": "red"})
