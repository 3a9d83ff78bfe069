"""Event types and filters in the ingest pipeline (issue 4), between deduplication and
the durable commit: recognise the event's type, validate it against its schema, then
apply the Webhook's filters. The outcome is data, so the record of a refused or
filtered delivery still counts against the EventType or EventFilter that decided."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..store.base import Tally
from .config import Route
from .context import EventContext
from .responses import Refusal

# How many schema errors a 422 answer lists; the record keeps the same.
MAX_SCHEMA_ISSUES = 5
EVENT_TYPE = "EventType"
EVENT_FILTER = "EventFilter"


@dataclass
class Classification:
    event_type: str | None = None  # the recognised EventType's spec.type
    event_type_name: str | None = None  # and its metadata.name (destinations select by it)
    tallies: list[Tally] = field(default_factory=list)
    refusal: Refusal | None = None  # 415/422: the delivery is refused
    filtered_by: str | None = None  # set when a filter dropped it: which and why


def classifies(route: Route) -> bool:
    """Whether the route has anything for classify() to do: EventTypes to recognise,
    filters to apply, or unknown events to refuse. Routes without any skip it (and
    the EventContext it needs) on the ingest path."""
    return bool(route.event_types.allowed or route.filters) or (
        route.unknown_event_types == "reject"
    )


def classify(route: Route, context: EventContext) -> Classification:
    result = Classification()
    recognised = route.event_types.recognise(context.headers, context.payload)
    namespace = route.key.split("/", 1)[0]
    if recognised is None:
        if route.unknown_event_types == "reject":
            result.refusal = Refusal(
                422,
                "unknown_event_type",
                "no EventType this Webhook allows matches the request "
                "(spec.unknownEventTypes is reject)",
            )
            return result
    else:
        result.event_type = recognised.type
        result.event_type_name = recognised.name
        type_key = f"{namespace}/{recognised.name}"
        if recognised.resource.spec.schema_ is not None and context.payload is None:
            result.refusal = Refusal(
                415,
                "unsupported_media_type",
                f"EventType {recognised.name} validates a JSON body; send Content-Type: "
                "application/json and a JSON body",
            )
            return result
        issues = recognised.validate(context.payload, limit=MAX_SCHEMA_ISSUES)
        if issues:
            first = f"{issues[0].path}: {issues[0].message}"
            result.tallies.append(Tally(EVENT_TYPE, type_key, "invalid", first))
            result.refusal = Refusal(
                422,
                "schema_validation_failed",
                f"the body is not a valid {recognised.type} {recognised.version}: {first}",
                details={"errors": [{"path": i.path, "message": i.message} for i in issues]},
            )
            return result
        result.tallies.append(Tally(EVENT_TYPE, type_key, "validated"))
    if route.filters:
        context = replace(context, event_type=result.event_type)
    for key, compiled in route.filters:
        outcome = compiled.evaluate(context)
        result.tallies.append(Tally(EVENT_FILTER, key, "evaluated"))
        if outcome.matched:
            result.tallies.append(Tally(EVENT_FILTER, key, "matched"))
            continue
        result.tallies.append(Tally(EVENT_FILTER, key, "dropped"))
        where = f" {outcome.decided_by}" if outcome.decided_by else ""
        result.filtered_by = f"EventFilter {compiled.name}{where}: {outcome.detail}"
        break  # every filter must match: the first that does not decides
    return result
