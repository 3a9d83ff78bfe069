"""Handler and index ids (issue 6).

kopf stores each handler's progress on the object under its id, and passes each index
to handlers as a keyword argument named by its id: renaming one makes kopf forget what
it did, or a handler lose its index. They live here, apart from the code, so that the
reconciler, the handlers and the tests name them the same way.
"""

# Indexes (valid Python identifiers: they become keyword arguments).
WEBHOOK_INDEX = "hookline_webhooks"
FILTER_INDEX = "hookline_eventfilters"
EVENT_TYPE_INDEX = "hookline_eventtypes"
SECRET_INDEX = "hookline_secrets"
REFERENCES_INDEX = "hookline_references"

# Handlers.
WEBHOOK_HANDLER = "webhook"
RECONCILER_DAEMON = "reconciler"
STATS_TIMER = "receiver-stats"
GITHUB_HOOK_DAEMON = "github-hook"  # one per Webhook with spec.github (issue 12)
GITHUB_HOOK_DELETE = "github-hook-delete"  # the finalizer's handler: delete the hook
GITHUB_HOOK_REMOVED = "github-hook-removed"  # spec.github removed: delete the hook
