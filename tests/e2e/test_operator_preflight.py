"""`hookline operator` by hand, as the README invites, on a cluster without the chart's
peering object (issue 11 §3): the process says so on stderr, and acts once the object is
created, without a restart. Against the strict KMock emulator."""

from __future__ import annotations

from hookline.api.common import API_VERSION
from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import (
    OPERATOR_NAMESPACE,
    WEBHOOKS,
    condition,
    create,
    eventually,
    secret,
)
from tests.support.operator_process import clean_environ, operator_process

MISSING = "peering is mandatory and ClusterKopfPeering 'hookline' does not exist"


async def test_the_operator_command_names_the_missing_peering_object_and_acts_once_created(
    k8s: StrictEmulator,
) -> None:
    k8s.add_builtin("kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering", namespaced=False)
    env = clean_environ(
        HOOKLINE_KUBE_URL=str(k8s.url).rstrip("/"),
        HOOKLINE_NAMESPACE=OPERATOR_NAMESPACE,
        HOOKLINE_MANAGE_RECEIVER="false",
        HOOKLINE_PEERING_STANDALONE="false",
        HOOKLINE_PREFLIGHT_INTERVAL="0.2",
        HOOKLINE_CONFIG_DEBOUNCE="0.05",
    )
    async with operator_process(env) as running:
        await create(k8s, secret("ci", "gh", secret=b"s3cret"))
        await create(
            k8s,
            {
                "apiVersion": API_VERSION,
                "kind": "Webhook",
                "metadata": {"name": "by-hand", "namespace": "ci"},
                "spec": {"auth": {"type": "github", "secretRef": {"name": "gh"}}},
            },
        )
        # Bounded generously: the process start (imports) is included.
        await eventually(lambda: MISSING in running.stderr, seconds=30)
        # Said again while it is missing.
        await eventually(lambda: running.stderr.count(MISSING) >= 2, seconds=5)
        assert condition(k8s.get(WEBHOOKS, "ci", "by-hand")) is None

        rsp = await k8s.post(
            "/apis/kopf.dev/v1/clusterkopfpeerings",
            json={
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "hookline"},
            },
        )
        assert rsp.status == 200
        found = await k8s.wait_for(lambda: condition(k8s.get(WEBHOOKS, "ci", "by-hand")), 15)
        assert (found["status"], found["reason"]) == ("False", "ReceiverNotReady")
        code = await running.stop()
    assert code == 0, running.stderr[-2000:]
