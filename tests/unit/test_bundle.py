"""The configuration bundle the operator pushes to receivers (issue 6): only the Secret
keys the receiver reads, parsed back through the manifest loader's own code into the
same configuration, bad shapes reported line by line without secret values; and the
rotation overlap (`<key>.previous`) on both the accepting and the signing side."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as ReferenceWebhook

from hookline.api import EventFilter, EventType, Webhook
from hookline.api.manifests import ManifestSet
from hookline.receiver.auth import AuthFailure
from hookline.receiver.bundle import build_bundle, bundle_to_manifests
from hookline.receiver.config import (
    PREVIOUS_SECRET_SUFFIX,
    Secrets,
    auth_secrets,
    compile_config,
    config_from_manifests,
)
from hookline.receiver.forward import build_request
from tests.support.signing import github_headers
from tests.unit.test_forward import record

NS = "ci"
SW_NEW = "whsec_" + base64.b64encode(b"n" * 24).decode()
SW_OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()


def _webhook(name: str, **spec: Any) -> Webhook:
    spec.setdefault("auth", {"type": "github", "secretRef": {"name": "gh", "key": "secret"}})
    return Webhook.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{name}",
                "generation": 3,
                "labels": {"team": "ci"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "kubectl"}],
            },
            "spec": spec,
        }
    )


EVENT_TYPE = EventType.model_validate(
    {
        "metadata": {"name": "push", "namespace": NS},
        "spec": {
            "type": "github.push",
            "match": {"header": {"name": "X-GitHub-Event", "value": "push"}},
            "schema": {"type": "object", "required": ["ref"]},
        },
    }
)
FILTER = EventFilter.model_validate(
    {
        "metadata": {"name": "main", "namespace": NS},
        "spec": {"rules": [{"field": "$.ref", "operator": "equals", "value": "refs/heads/main"}]},
    }
)
SIGNED_DESTINATION = {
    "name": "bot",
    "url": "http://bot.ci.svc/events",
    "signing": {"scheme": "standard-webhooks", "secretRef": {"name": "signing", "key": "sw"}},
}
WEBHOOKS = [
    _webhook("plain"),
    _webhook(
        "full",
        path="full",
        eventTypes=[{"name": "push"}],
        filters=[{"name": "main"}],
        destinations=[SIGNED_DESTINATION],
        github={"repository": "acme/app", "tokenSecretRef": {"name": "gh-token"}},
    ),
]
SECRETS: dict[tuple[str, str], dict[str, bytes]] = {
    (NS, "gh"): {
        "secret": b"gh-current",
        "secret.previous": b"gh-old",
        "unrelated": b"never-sent-1",
    },
    (NS, "signing"): {"sw": SW_NEW.encode(), "sw.previous": SW_OLD.encode()},
    (NS, "gh-token"): {"token": b"ghp_never_sent_to_receivers"},
    (NS, "other"): {"secret": b"never-sent-2"},
    ("elsewhere", "gh"): {"secret": b"never-sent-3"},
}


def _bundle(secrets: Secrets = SECRETS) -> dict[str, Any]:
    return build_bundle(WEBHOOKS, [FILTER], [EVENT_TYPE], secrets)


def test_only_the_keys_the_receiver_reads_are_sent() -> None:
    bundle = _bundle()
    json.dumps(bundle)  # JSON-able as it is
    sent = {(s["namespace"], s["name"]): s["data"] for s in bundle["secrets"]}
    decoded = {k: {n: base64.b64decode(v) for n, v in d.items()} for k, d in sent.items()}
    assert decoded == {
        (NS, "gh"): {"secret": b"gh-current", "secret.previous": b"gh-old"},
        (NS, "signing"): {"sw": SW_NEW.encode(), "sw.previous": SW_OLD.encode()},
        # The GitHub token is the operator's: its key is there for the reference check,
        # its value is not.
        (NS, "gh-token"): {"token": b""},
    }
    text = json.dumps(bundle)
    for value in (b"never-sent-1", b"never-sent-2", b"never-sent-3", b"ghp_never_sent"):
        assert base64.b64encode(value).decode()[:12] not in text
        assert value.decode() not in text


def test_a_github_app_key_is_checked_for_but_never_sent() -> None:
    by_app = _webhook(
        "by-app",
        github={
            "organization": "acme",
            "app": {"appID": 1, "installationID": 2, "privateKeySecretRef": {"name": "gh-app"}},
        },
    )
    key = b"-----BEGIN never-sent-key"
    bundle = build_bundle([by_app], [], [], {(NS, "gh-app"): {"private-key.pem": key}})
    sent = {(s["namespace"], s["name"]): s["data"] for s in bundle["secrets"]}
    assert sent[(NS, "gh-app")] == {"private-key.pem": ""}
    assert b"never-sent-key" not in json.dumps(bundle).encode()
    assert base64.b64encode(key).decode()[:12] not in json.dumps(bundle)


def test_resources_are_sent_as_k8s_documents_with_slim_metadata() -> None:
    kinds = [(r["kind"], r["metadata"]["name"]) for r in _bundle()["resources"]]
    assert kinds == [
        ("EventType", "push"),
        ("EventFilter", "main"),
        ("Webhook", "full"),
        ("Webhook", "plain"),
    ]
    full = _bundle()["resources"][2]
    assert full["metadata"] == {"name": "full", "namespace": NS, "uid": "uid-full", "generation": 3}
    assert full["spec"] == WEBHOOKS[1].to_k8s()["spec"]


def test_round_trip_gives_the_same_configuration() -> None:
    original = compile_config(WEBHOOKS, [FILTER], [EVENT_TYPE], SECRETS)
    manifests = bundle_to_manifests(json.loads(json.dumps(_bundle())))
    assert manifests.errors == []
    pushed = config_from_manifests(manifests)
    assert pushed.version == original.version
    assert sorted(pushed.routes) == sorted(original.routes) == ["ci/plain", "full"]
    assert pushed.problems == original.problems == []


def test_missing_references_read_the_same_on_both_sides() -> None:
    secrets = {k: v for k, v in SECRETS.items() if k != (NS, "gh-token")}
    original = compile_config(WEBHOOKS, [FILTER], [EVENT_TYPE], secrets)
    pushed = config_from_manifests(bundle_to_manifests(_bundle(secrets)))
    assert pushed.version == original.version
    assert [(p.webhook, p.reason) for p in pushed.problems] == [("ci/full", "SecretNotFound")]
    assert pushed.problems == original.problems


def _errors(doc: Any) -> list[str]:
    result: ManifestSet = bundle_to_manifests(doc)
    return result.errors


def test_bad_shapes_are_error_lines() -> None:
    assert _errors([]) == ["bundle: not a JSON object with resources and secrets"]
    assert _errors({"resources": {}, "secrets": "x"}) == [
        "resources: not a list",
        "secrets: not a list",
    ]
    assert _errors({}) == []  # an empty configuration is a configuration
    good = _bundle()
    bad_webhook = json.loads(json.dumps(good["resources"][3]))
    bad_webhook["spec"]["auth"]["type"] = "telepathy"
    lines = _errors(
        {
            "resources": [
                bad_webhook,
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
                {"kind": "List", "items": []},
                "text",
            ],
            "secrets": [
                {"namespace": NS, "name": "a", "data": {"k": "not*base64!"}},
                {"namespace": NS, "name": "b", "data": {"k": 7}},
                {"namespace": "", "name": "c", "data": {}},
                ["not", "an", "object"],
            ],
        }
    )
    assert lines[0].startswith("resources[0] (Webhook ci/plain): spec.auth.type: 'telepathy'")
    assert lines[1:] == [
        "resources[1]: kind 'Secret' is not one of Webhook, EventFilter, EventType",
        "resources[2]: kind 'List' is not one of Webhook, EventFilter, EventType",
        "resources[3]: kind None is not one of Webhook, EventFilter, EventType",
        "secrets[0] (Secret ci/a): data.k: not base64 (use stringData for plain text)",
        "secrets[1]: data must be an object of base64 strings",
        "secrets[2]: namespace must be a non-empty string",
        "secrets[3]: not an object with namespace, name and data",
    ]


# --- rotation overlap (issue 6) ------------------------------------------------------


def test_previous_secret_is_accepted_beside_the_current_one() -> None:
    webhook = WEBHOOKS[0]
    assert PREVIOUS_SECRET_SUFFIX == ".previous"
    assert auth_secrets(webhook, SECRETS) == [b"gh-current", b"gh-old"]
    without = {**SECRETS, (NS, "gh"): {"secret": b"gh-current"}}
    assert auth_secrets(webhook, without) == [b"gh-current"]
    empty = {**SECRETS, (NS, "gh"): {"secret": b"gh-current", "secret.previous": b""}}
    assert auth_secrets(webhook, empty) == [b"gh-current"]

    def verify(secrets: Secrets, signed_with: bytes) -> None:
        route = compile_config([webhook], [], [], secrets).routes["ci/plain"]
        route.verifier.verify(github_headers(signed_with, b"{}", "d"), b"{}", 0.0)

    verify(SECRETS, b"gh-current")
    verify(SECRETS, b"gh-old")
    with pytest.raises(AuthFailure):
        verify(without, b"gh-old")


def test_version_changes_when_the_overlap_starts_ends_or_signing_rotates() -> None:
    def version(secrets: Secrets) -> str:
        return compile_config(WEBHOOKS, [FILTER], [EVENT_TYPE], secrets).version

    base = version(SECRETS)
    ended = {**SECRETS, (NS, "gh"): {"secret": b"gh-current"}}
    signing = {**SECRETS, (NS, "signing"): {"sw": SW_OLD.encode()}}
    assert len({base, version(ended), version(signing)}) == 3


def test_standard_webhooks_signs_with_both_secrets_during_the_overlap() -> None:
    route = compile_config(WEBHOOKS, [FILTER], [EVENT_TYPE], SECRETS).routes["full"]
    dest = route.destination("bot")
    assert dest is not None and "whsec_" not in repr(dest)
    now = datetime.now(UTC)  # the reference verifier checks against its own clock
    request = build_request(dest, record(), None, now)
    assert request.headers["webhook-signature"].count("v1,") == 2
    # A destination holding either secret verifies the message.
    for secret in (SW_NEW, SW_OLD):
        ReferenceWebhook(secret).verify(request.body, request.headers, json_parse=False)
    after = {**SECRETS, (NS, "signing"): {"sw": SW_NEW.encode()}}
    dest = compile_config(WEBHOOKS, [FILTER], [EVENT_TYPE], after).routes["full"].destination("bot")
    assert dest is not None
    request = build_request(dest, record(), None, now)
    assert request.headers["webhook-signature"].count("v1,") == 1
    ReferenceWebhook(SW_NEW).verify(request.body, request.headers, json_parse=False)
    with pytest.raises(Exception, match="No matching signature"):
        ReferenceWebhook(SW_OLD).verify(request.body, request.headers, json_parse=False)
