"""What the operator tells a person when kopf stops its work underneath it (issue 14).

Issue 14's run ended with nothing but kopf's `Daemon 'reconciler' is cancelled. Will
escalate.` and no status on any resource. The cause was the API server: KMock 0.8, as
configured there, stores objects without `metadata.uid`. kopf keeps its per-object state
(handler progress, running daemons) under the uid (`kopf._core.reactor.inventory`:
`raw_body['metadata'].get('uid') or ''`), so every uid-less Secret shares one state with
the receivers' admin-token Secret: the next event of any other Secret does not match the
reconciler's filter, and kopf stops the reconciler for a "filters mismatch" - by
cancelling it at once, as it has no cancellation backoff. A conformant API server always
assigns a uid; this module makes sure that a server that does not is named in one ERROR
line, and that a reconciler stopped for any reason says which and what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

__all__ = ["UidCheck", "reconciler_stop_message"]

log = logging.getLogger(__name__)

_Reason = kopf.DaemonStoppingReason


class UidCheck:
    """Logs the first object that arrives without `metadata.uid`, once: a server that
    assigns none assigns none to any, and one line says all there is to say."""

    def __init__(self) -> None:
        self.reported = False

    def __call__(self, resource: str, body: Mapping[str, Any]) -> bool:
        """Whether the object has a uid; the first uid-less one is logged at ERROR."""
        meta = body.get("metadata") or {}
        if meta.get("uid"):
            return True
        if not self.reported:
            self.reported = True
            name = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if p)
            log.error(
                "%s %s has no metadata.uid: the Kubernetes API server did not assign one "
                "(a conformant server always does). kopf keeps each object's state under "
                "its uid, so objects without one share it and the operator's reconciler "
                "is stopped by other objects' events: no status will be written. Use a "
                "conformant API server (an emulator must assign uids on create).",
                resource,
                name or "(unnamed)",
            )
        return False


def reconciler_stop_message(
    reason: kopf.DaemonStoppingReason | None, anchor: str
) -> tuple[int, str]:
    """The log level and line for the reconciler daemon stopped by kopf for `reason`
    (`anchor`: namespace/name of the admin-token Secret it runs on)."""
    if reason is None:
        return logging.ERROR, (
            "the reconciler was cancelled without a reason from kopf; no status is "
            "written until it runs again. The operator restarts it on the next event "
            f"of Secret {anchor}; if this repeats, restart the operator and report it."
        )
    if reason & _Reason.OPERATOR_EXITING:
        return logging.INFO, "the reconciler stops: the operator is exiting"
    if reason & _Reason.OPERATOR_PAUSING:
        return logging.WARNING, (
            "the reconciler is paused: another operator with a higher peering priority "
            "is active (kopf peering); this one resumes when that one stops"
        )
    if reason & _Reason.RESOURCE_DELETED:
        return logging.WARNING, (
            f"the reconciler stops: its Secret {anchor} (the receivers' admin token) was "
            "deleted; the operator creates a new one and the reconciler starts on it"
        )
    if reason & _Reason.FILTERS_MISMATCH:
        return logging.ERROR, (
            f"the reconciler was stopped by kopf: an event no longer matched it to Secret "
            f"{anchor}. On a conformant API server this does not happen; it does when "
            "objects have no metadata.uid (kopf then mixes their state). No status is "
            "written until it runs again: check that the API server assigns uids."
        )
    return logging.WARNING, f"the reconciler stops ({reason!r})"
