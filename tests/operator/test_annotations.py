"""The annotations, acted on by hookline's real operator (issue 6): kopf's own run loop
against the KMock emulator (every write checked against the CRDs), with a small real
aiohttp server on 127.0.0.1 standing in for the receiver's admin API, so each test can
say exactly what the receiver was asked and answer as it likes.

Replay against a real receiver and destination is in the end-to-end test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import kopf
import pytest
from aiohttp import web
from kopf._core.intents.causes import Activity

from hookline.api.common import API_VERSION
from hookline.operator.annotation_handlers import (
    PREVIOUS_SECRET_EXPIRED,
    REPLAY_FAILED,
    REPLAY_FINISHED,
    REPLAY_REQUESTED,
    SECRET_NOT_ROTATED,
    SECRET_ROTATED,
    TIMING,
    Timing,
    register,
)
from hookline.operator.annotations import (
    PREVIOUS_EXPIRES_ANNOTATION,
    REPLAY_ANNOTATION,
    ROTATE_ANNOTATION,
)
from hookline.operator.builders import GENERATED_LABEL, generated_secret_name
from hookline.operator.context import OperatorContext
from hookline.operator.main import register_lifecycle
from hookline.operator.settings import OperatorSettings
from hookline.store.base import new_delivery_id
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    ADMIN_TOKEN,
    OPERATOR_NAMESPACE,
    SECRETS,
    WEBHOOKS,
    create,
    free_port,
    operator,
    operator_settings,
    patch,
    secret,
)

NS = "ci"
FAST = Timing(retry_delay=0.1, give_up_after=timedelta(seconds=30), expiry_interval=1.0)


# --- a stand-in for the receiver's admin API ---------------------------------------------


@dataclass
class FakeAdmin:
    """Answers what the operator asks; records every request (method, path, JSON body)."""

    url: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    deliveries: dict[str, str] = field(default_factory=dict)  # id -> <namespace>/<name>
    # The next replay requests get this answer instead (status, JSON body).
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    batch: dict[str, Any] = field(
        default_factory=lambda: {"replayed": [{"id": 1}, {"id": 2}], "refused": [], "matched": 2}
    )

    def replays(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] == "POST"]

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == f"Bearer {ADMIN_TOKEN}"
        body = await request.json() if request.can_read_body else None
        self.calls.append((request.method, request.path, body))
        path = request.path
        if path == "/api/v1/config":
            # The operator's reconciler pushes its configuration here: taken.
            return web.json_response({})
        if path == "/api/v1/stats":
            return web.json_response({})
        if request.method == "POST" and self.failures:
            status, answer = self.failures.pop(0)
            return web.json_response(answer, status=status)
        if request.method == "GET" and path.startswith("/api/v1/deliveries/"):
            delivery_id = path.rsplit("/", 1)[1]
            if delivery_id not in self.deliveries:
                return web.json_response(
                    {
                        "error": "delivery_not_found",
                        "message": f"no delivery {delivery_id!r} is kept",
                    },
                    status=404,
                )
            return web.json_response({"id": delivery_id, "webhook": self.deliveries[delivery_id]})
        if request.method == "POST" and path.endswith("/replay"):
            delivery_id = path.split("/")[-2]
            return web.json_response(
                {"id": 7, "deliveryId": delivery_id, "destinations": ["ci-bot"]}, status=202
            )
        if request.method == "POST" and path == "/api/v1/replays":
            return web.json_response(self.batch, status=202)
        return web.json_response({"error": "not_found", "message": path}, status=404)


@pytest.fixture
async def admin() -> AsyncIterator[FakeAdmin]:
    fake = FakeAdmin()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def ctx(k8s: StrictEmulator, admin: FakeAdmin) -> AsyncIterator[OperatorContext]:
    settings = operator_settings(
        k8s,
        receiver_admin_urls=[admin.url],
        stats_interval=60.0,
        secret_overlap=timedelta(seconds=2),
    )
    async with operator(k8s, settings) as context:
        context.extras[TIMING] = FAST
        yield context


# --- helpers ------------------------------------------------------------------------------


def webhook(name: str, auth: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"auth": auth or {"type": "none"}},
    }


def webhook_path(name: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{NS}/webhooks/{name}"


async def annotate(k: StrictEmulator, name: str, key: str, value: str) -> None:
    await patch(k, webhook_path(name), {"metadata": {"annotations": {key: value}}})


def annotation(k: StrictEmulator, name: str, key: str) -> str | None:
    obj = k.get(WEBHOOKS, NS, name) or {}
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return None if value is None else str(value)


def last_replay(k: StrictEmulator, name: str) -> dict[str, Any] | None:
    obj = k.get(WEBHOOKS, NS, name) or {}
    found = (obj.get("status") or {}).get("lastReplay")
    return dict(found) if found else None


def events(k: StrictEmulator, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in k.list("v1/events")
        if e.get("involvedObject", {}).get("name") == name
        and e.get("involvedObject", {}).get("namespace") == NS
        and e.get("reason") == reason
    ]


def replay_done(k: StrictEmulator, name: str, value: str) -> Callable[[], dict[str, Any] | None]:
    """The replay of `value` is recorded and its annotation is gone."""

    def check() -> dict[str, Any] | None:
        found = last_replay(k, name)
        if found and found["request"] == value and annotation(k, name, REPLAY_ANNOTATION) is None:
            return found
        return None

    return check


def secret_data(k: StrictEmulator, name: str) -> dict[str, bytes]:
    obj = k.get(SECRETS, NS, name) or {}
    return {key: base64.b64decode(v) for key, v in (obj.get("data") or {}).items()}


def secret_annotations(k: StrictEmulator, name: str) -> dict[str, str]:
    obj = k.get(SECRETS, NS, name) or {}
    return dict((obj.get("metadata") or {}).get("annotations") or {})


# --- kopf's diff ---------------------------------------------------------------------------


async def test_kopf_sees_the_annotations_with_the_operators_storage_settings() -> None:
    """The handlers fire on a change kopf finds in an object's "essence". kopf's
    AnnotationsProgressStorage.clear() drops every annotation under its own prefix from
    that essence, so a prefix of "hookline.dev" would hide hookline.dev/replay and
    hookline.dev/rotate-secret from kopf for good: main.configure must use another one
    (e.g. "operator.hookline.dev")."""
    registry = kopf.OperatorRegistry()
    ctx = OperatorContext(settings=OperatorSettings(namespace=OPERATOR_NAMESPACE))
    register_lifecycle(registry, ctx)
    register(registry, ctx)
    settings = kopf.OperatorSettings()
    startup = registry._activities.get_handlers(activity=Activity.STARTUP)
    [configure] = [h.fn for h in startup if getattr(h.fn, "__name__", "") == "configure"]
    run: Any = configure  # called with the one keyword it reads
    try:
        await run(settings=settings)
    finally:
        if ctx.session is not None:
            await ctx.session.close()
    raw: Any = {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {
            "name": "w",
            "namespace": NS,
            "annotations": {REPLAY_ANNOTATION: "failed", ROTATE_ANNOTATION: "now"},
        },
        "spec": {"auth": {"type": "none"}},
    }
    body = kopf.Body(raw)
    webhooks = kopf.Resource("hookline.dev", "v1alpha1", "webhooks")
    extra = registry._changing.get_extra_fields(resource=webhooks)
    essence = settings.persistence.diffbase_storage.build(body=body, extra_fields=extra)
    essence = settings.persistence.progress_storage.clear(essence=essence)
    annotations = (essence.get("metadata") or {}).get("annotations") or {}
    assert annotations == {REPLAY_ANNOTATION: "failed", ROTATE_ANNOTATION: "now"}, (
        "kopf's storages hide hookline.dev/* annotations: use another storage prefix "
        f"(progress storage: {settings.persistence.progress_storage!r})"
    )


# --- hookline.dev/replay ------------------------------------------------------------------


async def test_replay_one_delivery_and_again(
    k8s: StrictEmulator, admin: FakeAdmin, ctx: OperatorContext
) -> None:
    delivery_id = new_delivery_id()
    admin.deliveries[delivery_id] = f"{NS}/hooks"
    await create(k8s, webhook("hooks"))

    await annotate(k8s, "hooks", REPLAY_ANNOTATION, delivery_id)
    first = await k8s.wait_for(replay_done(k8s, "hooks", delivery_id))
    assert first["count"] == 1
    assert delivery_id in first["message"] and "ci-bot" in first["message"]
    [(_, path, body)] = admin.replays()
    assert path == f"/api/v1/deliveries/{delivery_id}/replay"
    assert body["reason"] == f"{REPLAY_ANNOTATION}={delivery_id}"
    assert body["requestedBy"] == f"annotation on {NS}/hooks"
    # The delivery was checked to be this Webhook's before it was replayed.
    assert ("GET", f"/api/v1/deliveries/{delivery_id}", None) in admin.calls
    await k8s.wait_for(lambda: events(k8s, "hooks", REPLAY_REQUESTED))
    [finished] = await k8s.wait_for(lambda: events(k8s, "hooks", REPLAY_FINISHED))
    assert finished["type"] == "Normal"

    # The same value again, later: a new request, replayed again.
    await annotate(k8s, "hooks", REPLAY_ANNOTATION, delivery_id)
    await k8s.wait_for(
        lambda: len(admin.replays()) == 2 and not annotation(k8s, "hooks", REPLAY_ANNOTATION)
    )
    await k8s.wait_for(lambda: len(events(k8s, "hooks", REPLAY_FINISHED)) == 2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("failed", {"destinationState": "failed"}),
        ("dead-lettered", {"destinationState": "dead_lettered"}),
        (
            "since=2026-01-01T00:00:00+01:00",
            {"since": "2025-12-31T23:00:00Z", "status": "accepted"},
        ),
    ],
)
async def test_replay_a_batch(
    k8s: StrictEmulator,
    admin: FakeAdmin,
    ctx: OperatorContext,
    value: str,
    expected: dict[str, Any],
) -> None:
    await create(k8s, webhook("batch"))
    await annotate(k8s, "batch", REPLAY_ANNOTATION, value)
    done = await k8s.wait_for(replay_done(k8s, "batch", value))
    assert done["count"] == 2
    assert done["message"].startswith("replayed 2 of 2")
    [(_, path, body)] = admin.replays()
    assert path == "/api/v1/replays"
    assert body == {
        "webhook": f"{NS}/batch",
        "reason": f"{REPLAY_ANNOTATION}={value}",
        "requestedBy": f"annotation on {NS}/batch",
        **expected,
    }


async def test_a_bad_value_is_a_warning_and_cleared(
    k8s: StrictEmulator, admin: FakeAdmin, ctx: OperatorContext
) -> None:
    await create(k8s, webhook("typo"))
    await annotate(k8s, "typo", REPLAY_ANNOTATION, "since=yesterday")
    done = await k8s.wait_for(replay_done(k8s, "typo", "since=yesterday"))
    assert done["count"] == 0
    assert "is not an RFC 3339 time" in done["message"]
    [warning] = await k8s.wait_for(lambda: events(k8s, "typo", REPLAY_FAILED))
    assert warning["type"] == "Warning"
    assert "RFC 3339" in warning["message"]
    assert admin.replays() == []
    # Not retried: no progress left behind for kopf to come back to.
    obj = k8s.get(WEBHOOKS, NS, "typo") or {}
    assert not [a for a in obj["metadata"].get("annotations", {}) if "annotation-replay" in a]

    # A correct value afterwards works.
    await annotate(k8s, "typo", REPLAY_ANNOTATION, "failed")
    await k8s.wait_for(replay_done(k8s, "typo", "failed"))
    assert len(admin.replays()) == 1


async def test_a_delivery_of_another_webhook_is_refused(
    k8s: StrictEmulator, admin: FakeAdmin, ctx: OperatorContext
) -> None:
    delivery_id = new_delivery_id()
    admin.deliveries[delivery_id] = "payments/stripe"
    await create(k8s, webhook("mine"))
    await annotate(k8s, "mine", REPLAY_ANNOTATION, delivery_id)
    done = await k8s.wait_for(replay_done(k8s, "mine", delivery_id))
    assert "belongs to Webhook payments/stripe" in done["message"]
    assert admin.replays() == []
    await k8s.wait_for(lambda: events(k8s, "mine", REPLAY_FAILED))


async def test_the_receiver_refusing_is_a_warning(
    k8s: StrictEmulator, admin: FakeAdmin, ctx: OperatorContext
) -> None:
    delivery_id = new_delivery_id()
    admin.deliveries[delivery_id] = f"{NS}/capped"
    message = f"delivery {delivery_id} was replayed 5 times already"
    admin.failures.append((409, {"error": "replay_refused", "message": message}))
    await create(k8s, webhook("capped"))
    await annotate(k8s, "capped", REPLAY_ANNOTATION, delivery_id)
    done = await k8s.wait_for(replay_done(k8s, "capped", delivery_id))
    assert done["count"] == 0 and message in done["message"]
    [warning] = await k8s.wait_for(lambda: events(k8s, "capped", REPLAY_FAILED))
    assert message in warning["message"]
    assert len(admin.replays()) == 1  # not retried


async def test_an_unavailable_receiver_is_retried(
    k8s: StrictEmulator, admin: FakeAdmin, ctx: OperatorContext
) -> None:
    busy = {"error": "store_unavailable", "message": "the database is restarting"}
    admin.failures += [(503, busy), (503, busy)]
    await create(k8s, webhook("retry"))
    await annotate(k8s, "retry", REPLAY_ANNOTATION, "dead-lettered")
    done = await k8s.wait_for(replay_done(k8s, "retry", "dead-lettered"))
    assert done["count"] == 2
    assert len(admin.replays()) == 3  # two 503s, then the replay
    # Requested once, finished once, however many attempts it took.
    await k8s.wait_for(lambda: events(k8s, "retry", REPLAY_FINISHED))
    assert len(events(k8s, "retry", REPLAY_REQUESTED)) == 1
    assert events(k8s, "retry", REPLAY_FAILED) == []


async def test_a_receiver_away_for_too_long_is_given_up_on(
    k8s: StrictEmulator, admin: FakeAdmin, ctx: OperatorContext
) -> None:
    ctx.extras[TIMING] = Timing(retry_delay=0.1, give_up_after=timedelta(seconds=0.5))
    admin.failures += [(503, {"error": "store_unavailable", "message": "down"})] * 1000
    await create(k8s, webhook("away"))
    await annotate(k8s, "away", REPLAY_ANNOTATION, "failed")
    done = await k8s.wait_for(replay_done(k8s, "away", "failed"))
    assert done["message"].startswith("gave up after") and "503" in done["message"]
    await k8s.wait_for(lambda: events(k8s, "away", REPLAY_FAILED))


# --- hookline.dev/rotate-secret -----------------------------------------------------------


async def test_rotate_a_generated_secret_and_end_the_overlap(
    k8s: StrictEmulator, ctx: OperatorContext
) -> None:
    await create(k8s, webhook("gen", {"type": "github"}))
    name = generated_secret_name("gen")
    await k8s.wait_for(lambda: secret_data(k8s, name).get("secret"))
    old = secret_data(k8s, name)["secret"]
    assert (k8s.get(SECRETS, NS, name) or {})["metadata"]["labels"][GENERATED_LABEL] == "true"

    await annotate(k8s, "gen", ROTATE_ANNOTATION, "please")
    await k8s.wait_for(
        lambda: (
            annotation(k8s, "gen", ROTATE_ANNOTATION) is None
            and "secret.previous" in secret_data(k8s, name)
        )
    )
    data = secret_data(k8s, name)
    assert data["secret.previous"] == old
    assert data["secret"] != old and len(data["secret"]) == 43  # 32 bytes, URL-safe base64
    assert PREVIOUS_EXPIRES_ANNOTATION in secret_annotations(k8s, name)
    [rotated] = await k8s.wait_for(lambda: events(k8s, "gen", SECRET_ROTATED))
    assert rotated["type"] == "Normal" and name in rotated["message"]
    assert data["secret"].decode() not in json.dumps(k8s.list("v1/events"))  # never the value
    assert old.decode() not in json.dumps(k8s.list("v1/events"))

    # The overlap (2 s here) ends: only the new value is left, and the Webhook says so.
    await k8s.wait_for(lambda: "secret.previous" not in secret_data(k8s, name), seconds=10)
    assert secret_data(k8s, name) == {"secret": data["secret"]}
    assert PREVIOUS_EXPIRES_ANNOTATION not in secret_annotations(k8s, name)
    await k8s.wait_for(lambda: events(k8s, "gen", PREVIOUS_SECRET_EXPIRED))


async def test_a_users_secret_is_not_rotated(k8s: StrictEmulator, ctx: OperatorContext) -> None:
    await create(k8s, secret(NS, "gh", secret=b"the-users-own"))
    await create(k8s, webhook("owned", {"type": "github", "secretRef": {"name": "gh"}}))
    await annotate(k8s, "owned", ROTATE_ANNOTATION, "yes")
    [warning] = await k8s.wait_for(lambda: events(k8s, "owned", SECRET_NOT_ROTATED))
    assert warning["type"] == "Warning"
    assert "rotate it yourself" in warning["message"] and "'secret.previous'" in warning["message"]
    await k8s.wait_for(lambda: annotation(k8s, "owned", ROTATE_ANNOTATION) is None)
    assert secret_data(k8s, "gh") == {"secret": b"the-users-own"}
    assert events(k8s, "owned", SECRET_ROTATED) == []
