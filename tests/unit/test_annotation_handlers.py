"""The annotation handlers' decisions (issue 6), called directly with stand-ins for the
receiver's admin API and the Kubernetes client: what is retried, what is given up on,
what is refused, and that a retried rotation never rotates twice. The same handlers
under kopf's real run loop are in tests/operator/test_annotations.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from hookline.operator import annotation_handlers as ah
from hookline.operator.annotations import (
    PREVIOUS_EXPIRES_ANNOTATION,
    REPLAY_ANNOTATION,
    ROTATE_ANNOTATION,
)
from hookline.operator.builders import GENERATED_LABEL, WEBHOOK_ANNOTATION, generated_secret_name
from hookline.operator.context import OperatorContext
from hookline.operator.kube import KubeError, KubeUnavailable
from hookline.operator.settings import OperatorSettings
from hookline.receiver.client import ReceiverError, ReceiverUnavailable

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
STARTED = datetime(2026, 11, 25, 11, 59, 0)
DELIVERY = "01JD3Z5Q4M8X6V0A2B9C7D1E5F"


class FakeAdmin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.owner = "ci/hooks"
        self.error: Exception | None = None
        self.batch: dict[str, Any] = {"replayed": [], "refused": [], "matched": 0}

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        self.calls.append(("delivery", delivery_id))
        if self.error is not None:
            raise self.error
        return {"id": DELIVERY, "webhook": self.owner}

    async def replay_delivery(self, delivery_id: str, reason: str, by: str) -> dict[str, Any]:
        self.calls.append(("replay", delivery_id))
        return {"id": 1, "deliveryId": delivery_id, "destinations": ["a", "b"]}

    async def replay_batch(self, webhook: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("batch", {"webhook": webhook, **kwargs}))
        if self.error is not None:
            raise self.error
        return self.batch


class FakeKube:
    def __init__(self, objects: dict[str, dict[str, Any]] | None = None) -> None:
        self.objects = objects or {}
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.error: Exception | None = None

    async def get(self, path: str) -> dict[str, Any] | None:
        if self.error is not None:
            raise self.error
        return self.objects.get(path)

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        self.patches.append((path, body))
        return {}


class Context(OperatorContext):
    fake_admin: Any = None
    no_receiver: bool = False

    async def receiver_admin(self) -> Any:
        if self.no_receiver:
            raise kopf.TemporaryError("no receiver replica is running yet", delay=5)
        return self.fake_admin


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """kopf.info/kopf.warn, recorded instead of posted (no kopf loop here)."""
    found: list[tuple[str, str, str]] = []

    def recorder(kind: str) -> Any:
        def post(body: Any, *, reason: str, message: str = "") -> None:
            found.append((kind, reason, message))

        return post

    monkeypatch.setattr(kopf, "info", recorder("Normal"))
    monkeypatch.setattr(kopf, "warn", recorder("Warning"))
    return found


def context(kube: FakeKube | None = None, admin: FakeAdmin | None = None) -> Context:
    ctx = Context(
        settings=OperatorSettings(namespace="hookline", secret_overlap=timedelta(hours=24)),
        clock=lambda: NOW,
    )
    ctx.kube_client = kube or FakeKube()  # type: ignore[assignment]
    ctx.fake_admin = admin or FakeAdmin()
    ctx.extras[ah.TIMING] = ah.Timing(retry_delay=0.5, give_up_after=timedelta(minutes=1))
    return ctx


def webhook(name: str = "hooks", auth: dict[str, Any] | None = None) -> kopf.Body:
    raw: Any = {
        "apiVersion": "hookline.dev/v1alpha1",
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": "ci", "uid": "uid-1"},
        "spec": {"auth": auth or {"type": "github"}},
    }
    return kopf.Body(raw)


async def replay(ctx: Context, value: str, *, retry: int = 0, runtime: float = 0.0) -> kopf.Patch:
    patch = kopf.Patch()
    await ah.handle_replay(
        ctx, webhook(), patch, value, retry=retry, runtime=timedelta(seconds=runtime)
    )
    return patch


# --- replay ---


async def test_replay_one_delivery(posted: list[tuple[str, str, str]]) -> None:
    ctx = context()
    patch = await replay(ctx, DELIVERY)
    assert patch["metadata"]["annotations"] == {REPLAY_ANNOTATION: None}
    assert patch["status"]["lastReplay"] == {
        "request": DELIVERY,
        "count": 1,
        "time": "2026-11-25T12:00:00Z",
        "message": f"replayed delivery {DELIVERY} to a, b",
    }
    assert [p[:2] for p in posted] == [("Normal", "ReplayRequested"), ("Normal", "ReplayFinished")]


async def test_nothing_matched_is_no_failure(posted: list[tuple[str, str, str]]) -> None:
    patch = await replay(context(), "failed")
    assert (
        patch["status"]["lastReplay"]["message"]
        == "no failed deliveries of Webhook ci/hooks to replay"
    )
    assert posted[-1][:2] == ("Normal", "ReplayFinished")


async def test_all_refused_is_a_failure(posted: list[tuple[str, str, str]]) -> None:
    admin = FakeAdmin()
    admin.batch = {
        "replayed": [],
        "refused": [{"deliveryId": DELIVERY, "message": "replayed too often"}],
        "matched": 1,
    }
    patch = await replay(context(admin=admin), "dead-lettered")
    message = patch["status"]["lastReplay"]["message"]
    assert message == (
        f"replayed 0 of 1 dead-lettered deliveries; 1 refused (e.g. {DELIVERY}: replayed too often)"
    )
    assert posted[-1][:2] == ("Warning", "ReplayFailed")


async def test_a_full_batch_says_it_may_be_partial(posted: list[tuple[str, str, str]]) -> None:
    admin = FakeAdmin()
    admin.batch = {"replayed": [{}] * 1000, "refused": [], "matched": 1000}
    patch = await replay(context(admin=admin), "since=2026-11-25T00:00:00Z")
    assert patch["status"]["lastReplay"]["count"] == 1000
    assert "at most 1000, the newest" in patch["status"]["lastReplay"]["message"]
    assert admin.calls == [
        (
            "batch",
            {
                "webhook": "ci/hooks",
                "destination_state": None,
                "since": datetime(2026, 11, 25, tzinfo=UTC),
                "reason": f"{REPLAY_ANNOTATION}=since=2026-11-25T00:00:00Z",
                "requested_by": "annotation on ci/hooks",
                "status": "accepted",
            },
        )
    ]


@pytest.mark.parametrize(
    "error",
    [
        ReceiverUnavailable("connection refused"),
        ReceiverError(503, "store_unavailable", "down"),
        ReceiverError(429, "busy", "slow down"),
        ReceiverError(401, "unauthorized", "bad token"),
        KubeUnavailable("no API server"),
    ],
)
async def test_passing_trouble_is_retried(
    posted: list[tuple[str, str, str]], error: Exception
) -> None:
    admin = FakeAdmin()
    admin.error = error
    with pytest.raises(kopf.TemporaryError) as caught:
        await replay(context(admin=admin), "failed", retry=3, runtime=10)
    assert caught.value.delay == 0.5
    assert posted == []  # retries post nothing; the first attempt said "requested"


async def test_no_receiver_yet_is_retried(posted: list[tuple[str, str, str]]) -> None:
    ctx = context()
    ctx.no_receiver = True
    with pytest.raises(kopf.TemporaryError):
        await replay(ctx, "failed")
    assert [p[:2] for p in posted] == [("Normal", "ReplayRequested")]


async def test_given_up_after_a_while(posted: list[tuple[str, str, str]]) -> None:
    admin = FakeAdmin()
    admin.error = ReceiverUnavailable("connection refused")
    patch = await replay(context(admin=admin), "failed", retry=20, runtime=61)
    assert patch["metadata"]["annotations"] == {REPLAY_ANNOTATION: None}
    assert patch["status"]["lastReplay"]["message"].startswith("gave up after 61 s")
    assert posted[-1][:2] == ("Warning", "ReplayFailed")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ReceiverError(404, "delivery_not_found", "no delivery kept"), "no delivery kept"),
        (ReceiverError(400, "bad_request", ""), "bad_request"),
    ],
)
async def test_refusals_are_final(
    posted: list[tuple[str, str, str]], error: Exception, expected: str
) -> None:
    admin = FakeAdmin()
    admin.error = error
    patch = await replay(context(admin=admin), DELIVERY)
    assert expected in patch["status"]["lastReplay"]["message"]
    assert patch["metadata"]["annotations"] == {REPLAY_ANNOTATION: None}
    assert ("replay", DELIVERY) not in admin.calls


async def test_a_bad_value_asks_nobody(posted: list[tuple[str, str, str]]) -> None:
    admin = FakeAdmin()
    patch = await replay(context(admin=admin), "  ")
    assert "is empty" in patch["status"]["lastReplay"]["message"]
    assert patch["status"]["lastReplay"]["request"] == ""
    assert admin.calls == []
    assert [p[:2] for p in posted] == [("Warning", "ReplayFailed")]


# --- rotate ---


SECRET_PATH = f"/api/v1/namespaces/ci/secrets/{generated_secret_name('hooks')}"


def generated(value: bytes = b"old", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": generated_secret_name("hooks"),
            "namespace": "ci",
            "resourceVersion": "41",
            "labels": {GENERATED_LABEL: "true"},
            "annotations": {WEBHOOK_ANNOTATION: "hooks", **(annotations or {})},
        },
        "data": {"secret": base64.b64encode(value).decode()},
    }


async def rotate(ctx: Context, body: kopf.Body | None = None, runtime: float = 0) -> kopf.Patch:
    patch = kopf.Patch()
    await ah.handle_rotate(
        ctx, body or webhook(), patch, started=STARTED, runtime=timedelta(seconds=runtime)
    )
    return patch


async def test_rotate_the_generated_secret(posted: list[tuple[str, str, str]]) -> None:
    kube = FakeKube({SECRET_PATH: generated()})
    patch = await rotate(context(kube))
    assert patch["metadata"]["annotations"] == {ROTATE_ANNOTATION: None}
    [(path, body)] = kube.patches
    assert path == SECRET_PATH
    assert body["metadata"]["resourceVersion"] == "41"  # a precondition
    assert body["metadata"]["annotations"] == {
        PREVIOUS_EXPIRES_ANNOTATION: "2026-11-26T12:00:00Z",
        ah.ROTATION_ANNOTATION: f"uid-1/{STARTED.isoformat()}",
    }
    new = base64.b64decode(body["data"]["secret"])
    assert base64.b64decode(body["data"]["secret.previous"]) == b"old"
    assert len(new) == 43 and new != b"old"
    [(kind, reason, message)] = posted
    assert (kind, reason) == ("Normal", "SecretRotated")
    assert "until 2026-11-26T12:00:00Z" in message and new.decode() not in message


async def test_standard_webhooks_gets_a_whsec_secret(posted: list[tuple[str, str, str]]) -> None:
    kube = FakeKube({SECRET_PATH: generated()})
    await rotate(context(kube), webhook(auth={"type": "standard-webhooks"}))
    assert base64.b64decode(kube.patches[0][1]["data"]["secret"]).startswith(b"whsec_")


async def test_a_retry_after_a_lost_answer_does_not_rotate_twice(
    posted: list[tuple[str, str, str]],
) -> None:
    marker = f"uid-1/{STARTED.isoformat()}"
    done = generated(
        b"new",
        {ah.ROTATION_ANNOTATION: marker, PREVIOUS_EXPIRES_ANNOTATION: "2026-11-26T12:00:00Z"},
    )
    kube = FakeKube({SECRET_PATH: done})
    patch = await rotate(context(kube))
    assert kube.patches == []
    assert patch["metadata"]["annotations"] == {ROTATE_ANNOTATION: None}
    assert posted[0][1] == "SecretRotated"


async def test_a_referenced_generated_secret_is_rotated(
    posted: list[tuple[str, str, str]],
) -> None:
    kube = FakeKube({"/api/v1/namespaces/ci/secrets/kept": generated()})
    auth = {"type": "hmac", "secretRef": {"name": "kept", "key": "secret"}}
    await rotate(context(kube), webhook(auth=auth))
    assert kube.patches[0][0] == "/api/v1/namespaces/ci/secrets/kept"


@pytest.mark.parametrize(
    ("auth", "objects", "expected"),
    [
        ({"type": "none"}, {}, "there is no secret to rotate"),
        ({"type": "github", "secretRef": {"name": "gh"}}, {}, "Secret gh"),
        (
            {"type": "github", "secretRef": {"name": "gh"}},
            {"/api/v1/namespaces/ci/secrets/gh": {"metadata": {"name": "gh"}, "data": {}}},
            "rotate it yourself",
        ),
        (
            # Generated by hookline, but for another Webhook.
            {"type": "github", "secretRef": {"name": "other"}},
            {
                "/api/v1/namespaces/ci/secrets/other": {
                    "metadata": {
                        "labels": {GENERATED_LABEL: "true"},
                        "annotations": {WEBHOOK_ANNOTATION: "someone-else"},
                    }
                }
            },
            "rotate it yourself",
        ),
    ],
)
async def test_not_rotated(
    posted: list[tuple[str, str, str]],
    auth: dict[str, Any],
    objects: dict[str, dict[str, Any]],
    expected: str,
) -> None:
    kube = FakeKube(objects)
    patch = await rotate(context(kube), webhook(auth=auth))
    assert patch["metadata"]["annotations"] == {ROTATE_ANNOTATION: None}
    assert kube.patches == []
    [(kind, reason, message)] = posted
    assert (kind, reason) == ("Warning", "SecretNotRotated") and expected in message


async def test_a_generated_secret_not_made_yet_is_waited_for(
    posted: list[tuple[str, str, str]],
) -> None:
    with pytest.raises(kopf.TemporaryError):
        await rotate(context(FakeKube()))
    patch = await rotate(context(FakeKube()), runtime=120)  # ...but not for ever
    assert patch["metadata"]["annotations"] == {ROTATE_ANNOTATION: None}
    assert posted[-1][1] == "SecretNotRotated" and "gave up" in posted[-1][2]


@pytest.mark.parametrize(
    "error", [KubeError(409, "Conflict", "changed"), KubeError(500, "Internal", "etcd")]
)
async def test_a_conflict_or_api_trouble_is_retried(
    posted: list[tuple[str, str, str]], error: Exception
) -> None:
    kube = FakeKube({SECRET_PATH: generated()})

    async def failing(path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise error

    kube.patch = failing  # type: ignore[method-assign]
    with pytest.raises(kopf.TemporaryError):
        await rotate(context(kube))
    assert posted == []


# --- the overlap window ---


async def test_expire_previous(posted: list[tuple[str, str, str]]) -> None:
    secret = generated(annotations={PREVIOUS_EXPIRES_ANNOTATION: "2026-11-25T11:00:00Z"})
    secret["data"]["secret.previous"] = "b2xk"
    secret["metadata"]["ownerReferences"] = [
        {"apiVersion": "hookline.dev/v1alpha1", "kind": "Webhook", "name": "hooks", "uid": "u"}
    ]
    kube = FakeKube()
    assert await ah.expire_previous(context(kube), secret)
    [(path, body)] = kube.patches
    assert path == SECRET_PATH
    assert body == {
        "metadata": {"annotations": {PREVIOUS_EXPIRES_ANNOTATION: None}, "resourceVersion": "41"},
        "data": {"secret.previous": None},
    }
    assert posted[0][1] == "PreviousSecretExpired"


async def test_expire_previous_waits_for_the_end(posted: list[tuple[str, str, str]]) -> None:
    secret = generated(annotations={PREVIOUS_EXPIRES_ANNOTATION: "2026-11-25T13:00:00Z"})
    kube = FakeKube()
    assert not await ah.expire_previous(context(kube), secret)
    assert kube.patches == [] and posted == []


async def test_expire_previous_after_a_concurrent_change_tries_again_later(
    posted: list[tuple[str, str, str]],
) -> None:
    kube = FakeKube()
    kube.error = KubeError(409, "Conflict", "changed")
    secret = generated(annotations={PREVIOUS_EXPIRES_ANNOTATION: "2026-11-25T11:00:00Z"})
    assert not await ah.expire_previous(context(kube), secret)
    assert posted == []
