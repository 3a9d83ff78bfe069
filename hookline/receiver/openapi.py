"""OpenAPI 3.1 description of the admin API (GET /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from .. import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "An error with a stable code and a message.")
_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_OUTBOX_COUNTS = ("delivered", "failed", "deadLettered", "pending")
_BREAKER_STATE = {"type": "string", "enum": ["closed", "open", "half_open"]}


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_SUMMARY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string"},
    "webhook": {"type": "string", "description": "<namespace>/<name>"},
    "status": {"type": "string", "enum": ["accepted", "rejected", "filtered"]},
    "httpStatus": {"type": "integer"},
    "reason": {"type": "string", "description": "Stable code of a refusal; empty if accepted."},
    "message": {"type": "string"},
    "eventType": _NULLABLE_STRING,
    "receivedAt": {"type": "string", "format": "date-time"},
    "sourceIP": {"type": "string"},
    "dedupKey": _NULLABLE_STRING,
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "hookline receiver admin API",
        "version": __version__,
        "description": (
            "Delivery history, counters, replays, health, metrics and the pushed "
            "configuration of a hookline receiver."
        ),
    },
    "paths": {
        "/api/v1/deliveries": {
            "get": {
                "operationId": "listDeliveries",
                "summary": "Deliveries, newest first.",
                "parameters": [
                    _param("webhook", "<namespace>/<name> of a Webhook."),
                    _param(
                        "status",
                        "Only deliveries with this status.",
                        {"type": "string", "enum": ["accepted", "rejected", "filtered"]},
                    ),
                    _param("eventType", "Only deliveries of this event type."),
                    _param(
                        "since",
                        "Received at or after (RFC 3339).",
                        {"type": "string", "format": "date-time"},
                    ),
                    _param(
                        "until",
                        "Received before (RFC 3339).",
                        {"type": "string", "format": "date-time"},
                    ),
                    _param("q", "Case-insensitive text in id, dedup key, reason, message or body."),
                    _param(
                        "limit",
                        "Page size.",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    ),
                    _param("cursor", "The `next` of the previous page."),
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["items", "next"],
                            "properties": {
                                "items": {"type": "array", "items": _ref("DeliverySummary")},
                                "next": _NULLABLE_STRING,
                            },
                        },
                        "A page of deliveries.",
                    ),
                    "400": _ERROR,
                    "503": _ERROR,
                },
            }
        },
        "/api/v1/deliveries/{id}": {
            "get": {
                "operationId": "getDelivery",
                "summary": "One delivery, with headers (credentials redacted) and body.",
                "description": (
                    "500 corrupt_record when the kept body no longer decodes (the message "
                    "says why); 503 store_unavailable when the store does not answer."
                ),
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(_ref("Delivery"), "The delivery."),
                    "404": _ERROR,
                    "500": _ERROR,
                    "503": _ERROR,
                },
            }
        },
        "/api/v1/webhooks/{namespace}/{name}/known-deliveries": {
            "post": {
                "operationId": "knownDeliveries",
                "summary": "Which of these sender delivery ids (X-GitHub-Delivery) were received.",
                "description": (
                    "Issue 12: the operator asks before it has GitHub redeliver what the "
                    "receiver missed. At most 1000 ids."
                ),
                "parameters": [
                    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in ("namespace", "name")
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["ids"],
                                "properties": {
                                    "ids": {
                                        "type": "array",
                                        "maxItems": 1000,
                                        "items": {"type": "string", "minLength": 1},
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["webhook", "known"],
                            "properties": {
                                "webhook": {"type": "string"},
                                "known": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "The ids of those asked that the store holds.",
                    ),
                    "400": _ERROR,
                    "503": _ERROR,
                },
            }
        },
        "/api/v1/stats": {
            "get": {
                "operationId": "getStats",
                "summary": "Counters per Webhook and the configuration being served.",
                "responses": {"200": _json(_ref("Stats"), "Counters."), "503": _ERROR},
            }
        },
        "/api/v1/config": {
            "get": {
                "operationId": "getConfig",
                "summary": "The configuration being served (no secrets).",
                "responses": {"200": _json(_ref("ConfigDescription"), "What is served.")},
            },
            "put": {
                "operationId": "putConfig",
                "summary": "Serve a configuration pushed by the operator (push mode, issue 6).",
                "description": (
                    "All or nothing: if any document does not parse, the answer is 400 "
                    "invalid_config with one line per error and the previous configuration "
                    "stays in service. Otherwise it is compiled and served from the next "
                    "request on; requests in flight finish on their old route. A receiver "
                    "started with --manifests answers 409 not_push_mode."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ConfigBundle")}},
                },
                "responses": {
                    "200": _json(_ref("ConfigDescription"), "Now served."),
                    "400": _ERROR,
                    "409": _ERROR,
                    "413": _ERROR,
                },
            },
        },
        "/api/v1/deliveries/{id}/replay": {
            "post": {
                "operationId": "replayDelivery",
                "summary": "Send one kept delivery again (audited, capped at 5 replays).",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "reason": {"type": "string"},
                                    "requestedBy": {"type": "string"},
                                    "destinations": {"type": "array", "items": {"type": "string"}},
                                    "body": {"description": "A replacement body (JSON or text)."},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": _json(_ref("Replay"), "Queued for sending."),
                    "400": _ERROR,
                    "404": _ERROR,
                    "409": _ERROR,
                    "503": _ERROR,
                },
            }
        },
        "/api/v1/replays": {
            "post": {
                "operationId": "replayBatch",
                "summary": "Send again the deliveries a selector picks (at most 1000).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "webhook": {"type": "string"},
                                    "status": {"type": "string"},
                                    "eventType": {"type": "string"},
                                    "since": {"type": "string", "format": "date-time"},
                                    "until": {"type": "string", "format": "date-time"},
                                    "destinationState": {
                                        "type": "string",
                                        "enum": ["pending", "delivered", "failed", "dead_lettered"],
                                    },
                                    "destination": {"type": "string"},
                                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                                    "reason": {"type": "string"},
                                    "requestedBy": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "required": ["replayed", "refused", "matched"],
                            "properties": {
                                "replayed": {"type": "array", "items": _ref("Replay")},
                                "refused": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "deliveryId": {"type": "string"},
                                            "message": {"type": "string"},
                                        },
                                    },
                                },
                                "matched": {"type": "integer"},
                            },
                        },
                        "What was queued, and what was refused and why.",
                    ),
                    "400": _ERROR,
                    "503": _ERROR,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process is alive.",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "The store answers and a configuration is loaded.",
                "description": (
                    "503 not_configured while a receiver in push mode has received no "
                    "configuration yet and has none stored that opens with its admin token; "
                    "503 store_unavailable when the store does not answer."
                ),
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "status": {"type": "string"},
                                "configVersion": {"type": "string"},
                                "source": {
                                    "type": "string",
                                    "enum": ["push", "manifests", "stored"],
                                },
                            },
                        },
                        "Ready.",
                    ),
                    "503": _ERROR,
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI document.")},
            }
        },
    },
    # With --admin-token-file, every /api/v1/* request needs the token (issue 6);
    # without one the API is open (loopback only by default). Probes opt out above.
    "security": [{"adminToken": []}, {}],
    "components": {
        "securitySchemes": {
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "The content of the receiver's --admin-token-file.",
            }
        },
        "schemas": {
            "ConfigBundle": {
                "type": "object",
                "description": "What the operator pushes (hookline.receiver.bundle).",
                "properties": {
                    "resources": {
                        "type": "array",
                        "description": "Webhook, EventFilter and EventType objects.",
                        "items": {"type": "object"},
                    },
                    "secrets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["namespace", "name", "data"],
                            "properties": {
                                "namespace": {"type": "string"},
                                "name": {"type": "string"},
                                "data": {
                                    "type": "object",
                                    "description": "key -> base64 value",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
            "ConfigDescription": {
                "type": "object",
                "required": ["version", "routes", "problems", "configured", "source"],
                "properties": {
                    "version": {
                        "type": "string",
                        "description": "Digest of the configuration; empty before the first.",
                    },
                    "routes": {
                        "type": "object",
                        "description": "path -> <namespace>/<name> of the Webhook served there",
                        "additionalProperties": {"type": "string"},
                    },
                    "problems": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "kind": {"type": "string"},
                                "key": {"type": "string"},
                                "reason": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                    "configured": {"type": "boolean"},
                    "source": {
                        "type": "string",
                        "enum": ["push", "manifests", "stored"],
                        "description": (
                            "stored: the last push, kept sealed in the store and served "
                            "after a restart until the operator pushes again."
                        ),
                    },
                    "loadedAt": _TIME,
                },
            },
            "Replay": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "deliveryId": {"type": "string"},
                    "requestedAt": _TIME,
                    "requestedBy": {"type": "string"},
                    "reason": {"type": "string"},
                    "destinations": {"type": "array", "items": {"type": "string"}},
                    "bodyModified": {"type": "boolean"},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "deliveryId": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "description": (
                            "Schema errors of a 422 answer (objects), or the lines of an "
                            "invalid_config answer (strings)."
                        ),
                        "items": {
                            "oneOf": [
                                {
                                    "type": "object",
                                    "properties": {
                                        "path": {"type": "string"},
                                        "message": {"type": "string"},
                                    },
                                },
                                {"type": "string"},
                            ]
                        },
                    },
                },
            },
            "DeliverySummary": {
                "type": "object",
                "required": ["id", "webhook", "status", "eventType", "receivedAt"],
                "properties": _SUMMARY_PROPERTIES,
            },
            "Delivery": {
                "type": "object",
                "required": ["id", "webhook", "status", "eventType", "receivedAt", "headers"],
                "properties": {
                    **_SUMMARY_PROPERTIES,
                    "userAgent": {"type": "string"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": _NULLABLE_STRING,
                    "bodyEncoding": {"type": ["string", "null"], "enum": ["utf-8", "base64", None]},
                    "bodyKept": {"type": "boolean"},
                    "processingMs": {"type": "number"},
                    "expiresAt": _TIME,
                },
            },
            "WebhookCounters": {
                "type": "object",
                "properties": {
                    "received": {"type": "integer"},
                    "accepted": {"type": "integer"},
                    "rejected": {"type": "integer"},
                    "filtered": {"type": "integer"},
                    "lastReceivedAt": _TIME,
                    "lastDeliveryID": _NULLABLE_STRING,
                    "lastError": _NULLABLE_STRING,
                    **{name: {"type": "integer"} for name in _OUTBOX_COUNTS},
                    "destinations": {
                        "type": "object",
                        "additionalProperties": _ref("DestinationCounters"),
                    },
                },
            },
            "DestinationCounters": {
                "type": "object",
                "properties": {
                    **{name: {"type": "integer"} for name in _OUTBOX_COUNTS},
                    "breaker": _BREAKER_STATE,
                    "circuitBreaker": {"oneOf": [_ref("CircuitBreaker"), {"type": "null"}]},
                    "suspended": {"type": "boolean"},
                    "lastError": _NULLABLE_STRING,
                    "lastErrorAt": _TIME,
                },
            },
            "CircuitBreaker": {
                "type": "object",
                "description": (
                    "The destination's circuit breaker in this receiver process (issue 11 "
                    "§2): it opens when failureRate of the requests in its window failed "
                    "(given minRequests), or after a run of network errors; after the "
                    "cool-down, half-open probes close it or open it again."
                ),
                "properties": {
                    "state": _BREAKER_STATE,
                    "failureRate": {
                        "type": ["number", "null"],
                        "description": "Failed share of the window's requests; null if none.",
                    },
                    "windowRequests": {"type": "integer"},
                    "windowFailures": {"type": "integer"},
                    "consecutiveNetworkErrors": {"type": "integer"},
                    "openedAt": {**_TIME, "description": "When it last opened; null: closed."},
                    "nextProbeAt": {
                        **_TIME,
                        "description": "When probes may go (again); null while closed.",
                    },
                    "coolDownSeconds": {"type": "number"},
                    "probes": {
                        "type": "object",
                        "description": "The current half-open round.",
                        "properties": {
                            name: {"type": "integer"} for name in ("sent", "succeeded", "failed")
                        },
                    },
                    "trips": {"type": "integer", "description": "Times it opened from closed."},
                    "lastError": {"type": "string"},
                },
            },
            "EventFilterCounters": {
                "type": "object",
                "properties": {
                    "evaluated": {"type": "integer"},
                    "matched": {"type": "integer"},
                    "dropped": {"type": "integer"},
                },
            },
            "EventTypeCounters": {
                "type": "object",
                "properties": {
                    "validated": {"type": "integer"},
                    "invalid": {"type": "integer"},
                    "lastError": _NULLABLE_STRING,
                    "lastErrorAt": _TIME,
                },
            },
            "Stats": {
                "type": "object",
                "required": ["webhooks", "config"],
                "properties": {
                    "webhooks": {
                        "type": "object",
                        "additionalProperties": _ref("WebhookCounters"),
                    },
                    "eventFilters": {
                        "type": "object",
                        "additionalProperties": _ref("EventFilterCounters"),
                    },
                    "eventTypes": {
                        "type": "object",
                        "additionalProperties": _ref("EventTypeCounters"),
                    },
                    "config": {"type": "object"},
                    "loadedAt": _TIME,
                    "outbox": _ref("OutboxBacklog"),
                },
            },
            "OutboxBacklog": {
                "type": "object",
                "description": "The bound on each destination's pending outbox rows "
                "(--max-outbox-backlog, issue 11 §4): a delivery that would exceed it "
                "waits for room, then is answered 503 outbox_backlog with Retry-After.",
                "required": ["backlog", "bound", "waiting"],
                "properties": {
                    "backlog": {
                        "type": "object",
                        "description": "webhook -> destination -> pending rows counted "
                        "(with those of deliveries being committed)",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": {"type": "integer"},
                        },
                    },
                    "bound": {"type": "integer", "description": "0: no bound"},
                    "waiting": {
                        "type": "integer",
                        "description": "deliveries waiting for room now",
                    },
                },
            },
        },
    },
}
