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
        "description": "Delivery history, counters, health and metrics of a hookline receiver.",
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
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(_ref("Delivery"), "The delivery."),
                    "404": _ERROR,
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
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process is alive.",
                "responses": {"200": _json({"type": "object"}, "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "The store answers and a configuration is loaded.",
                "responses": {"200": _json({"type": "object"}, "Ready."), "503": _ERROR},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics.",
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
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "deliveryId": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "description": "Schema errors of a 422 answer.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "path": {"type": "string"},
                                "message": {"type": "string"},
                            },
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
                },
            },
        }
    },
}
