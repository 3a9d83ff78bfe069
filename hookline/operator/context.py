"""What the operator's handlers share for the life of one operator process (issue 6).

One `OperatorContext` is made per operator run and handed to `register()`, so that tests
run several operators side by side (each with its own registry and context) and
production has exactly one (registered into kopf's default registry on import).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import kopf

from ..receiver.client import ReceiverAdmin
from .kube import KubeClient, resource_path
from .settings import OperatorSettings

if TYPE_CHECKING:
    from .github_sync import HookReport

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class OperatorContext:
    # None: read from HOOKLINE_* environment variables at start-up (production).
    settings: OperatorSettings | None = None
    clock: Callable[[], datetime] = utcnow
    # Set at start-up and cleared at clean-up, in kopf's own event loop.
    connection: kopf.ConnectionInfo | None = None
    session: aiohttp.ClientSession | None = None
    kube_client: KubeClient | None = None
    admin_token: str | None = None
    # The token before the last change: receivers still running with it (until their
    # pods have rolled) are spoken to with it rather than counted as down.
    previous_admin_token: str | None = None
    # Set by handlers whenever something the receiver configuration depends on changed;
    # the reconciler daemon waits on it (created lazily: it must belong to kopf's loop).
    _wakeup: asyncio.Event | None = None
    # Anchor Secrets deleted while their daemon and timer ran: they carry no finalizer,
    # so kopf does not stop those; they stop themselves when they see their uid here.
    gone_anchors: set[str] = field(default_factory=set)
    # Free slots for the parts of the operator that keep state between calls (the
    # reconciler, the annotation handlers' timing, a test's stats source).
    extras: dict[str, Any] = field(default_factory=dict)
    # The last check of each managed GitHub hook, by (namespace, name, uid) (issue 12),
    # written by its daemon and read by the reconciler, the one writer of statuses.
    github_reports: dict[tuple[str, str, str], HookReport] = field(default_factory=dict)
    # Wakes a GitHub hook's daemon before its resync interval: its spec or a Secret
    # it reads changed. By (namespace, name).
    github_wakeups: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    # Set when the operator cannot work at all (issue 14: an API server that assigns no
    # uids): `hookline operator` hands `stop_flag` to kopf.run and exits 1 with `fatal`.
    # An asyncio.Event, not a threading one: kopf waits on a threading.Event in an
    # executor thread that a SIGTERM does not end, so the process would never exit. It
    # binds to kopf's loop on first use (Python 3.10+) and is set from within it.
    stop_flag: asyncio.Event = field(default_factory=asyncio.Event)
    fatal: str | None = None

    def give_up(self, message: str) -> None:
        """Stop the operator with one ERROR line (no traceback)."""
        if self.fatal is None:
            self.fatal = message
            log.error("%s", message)
        self.stop_flag.set()

    @property
    def config(self) -> OperatorSettings:
        if self.settings is None:
            self.settings = OperatorSettings.from_env(os.environ)
        return self.settings

    @property
    def kube(self) -> KubeClient:
        if self.kube_client is None:
            raise kopf.TemporaryError("the operator is still starting", delay=1)
        return self.kube_client

    def now(self) -> datetime:
        return self.clock()

    @property
    def wakeup(self) -> asyncio.Event:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        return self._wakeup

    def is_anchor(self, namespace: str | None = None, name: str | None = None, **_: Any) -> bool:
        """Whether a Secret is the receivers' admin-token Secret: the object the
        reconciler daemon and the stats timer run on (a kopf `when=` filter)."""
        settings = self.config
        return (namespace, name) == (settings.namespace, settings.admin_token_secret)

    def wake_github(self, namespace: str, name: str) -> None:
        """Check this Webhook's GitHub hook now, not at its next resync (issue 12)."""
        event = self.github_wakeups.get((namespace, name))
        if event is not None:
            event.set()

    def poke(self) -> None:
        """Ask the reconciler for a pass soon (debounced: many pokes, one pass)."""
        self.wakeup.set()

    async def receiver_urls(self) -> list[str]:
        """The admin API of every receiver replica, ready or not.

        Static URLs win (tests, a receiver outside the cluster); otherwise the pods
        behind the headless admin Service, which publishes not-ready addresses so a
        starting replica gets its configuration before it is asked to take traffic.
        """
        settings = self.config
        if settings.receiver_admin_urls:
            return list(settings.receiver_admin_urls)
        service = settings.admin_service_name
        slices = await self.kube.list(
            resource_path("discovery.k8s.io/v1", "endpointslices", settings.namespace)
        )
        urls: set[str] = set()
        for eps in slices:
            labels = (eps.get("metadata") or {}).get("labels") or {}
            # Filtered here: one list of the namespace's slices, no label selector.
            if labels.get("kubernetes.io/service-name") != service:
                continue
            for endpoint in eps.get("endpoints") or []:
                # A pod on its way out is not given the configuration, nor counted.
                if (endpoint.get("conditions") or {}).get("terminating"):
                    continue
                for address in endpoint.get("addresses") or []:
                    host = f"[{address}]" if ":" in address else address
                    urls.add(f"http://{host}:{settings.admin_port}")
        return sorted(urls)

    def use_admin_token(self, token: str | None) -> None:
        if token != self.admin_token:
            self.previous_admin_token, self.admin_token = self.admin_token, token

    def receiver(self, url: str, *, previous: bool = False) -> ReceiverAdmin:
        if self.session is None:
            raise kopf.TemporaryError("the operator is still starting", delay=1)
        token = self.previous_admin_token if previous else self.admin_token
        return ReceiverAdmin(url, token, self.session)

    async def receiver_admin(self) -> ReceiverAdmin:
        """Any one replica: with several, they share one PostgreSQL store, so each one
        answers stats and replays for all of them."""
        urls = await self.receiver_urls()
        if not urls:
            raise kopf.TemporaryError("no receiver replica is running yet", delay=5)
        return self.receiver(urls[0])
