"""The OpenAPI description of the accounting endpoints (gateway keys, model statistics),
merged into the document ``openapi.py`` serves (which derives ``KeySpec``, the request body,
from its pydantic model); tests validate real responses against these schemas."""

from __future__ import annotations

from typing import Any

__all__ = ["ACCOUNTING_SCHEMAS", "accounting_paths"]

_NUM_OR_NULL = {"type": ["number", "null"]}
_PERIODS = {
    "type": "object",
    "required": ["daily", "monthly", "total"],
    "additionalProperties": False,
    "properties": {"daily": _NUM_OR_NULL, "monthly": _NUM_OR_NULL, "total": _NUM_OR_NULL},
}

ACCOUNTING_SCHEMAS: dict[str, Any] = {
    "GatewayKey": {
        "type": "object",
        "required": ["id", "name", "key_hint", "created_at", "revoked", "budget", "rpm", "tpm"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "key_hint": {"type": "string", "description": "'sk-tn-...' and the last 4 chars"},
            "key": {"type": "string", "description": "the secret: only in the 201 of a create"},
            "created_at": {"type": "number", "description": "UNIX seconds"},
            "revoked": {"type": "boolean"},
            "revoked_at": _NUM_OR_NULL,
            "budget": _PERIODS,
            "rpm": {"type": ["integer", "null"]},
            "tpm": {"type": ["integer", "null"]},
            "models": {"type": ["array", "null"], "items": {"type": "string"}},
            "spend": {**_PERIODS, "description": "USD spent in the current day, month, total"},
        },
    },
    "GatewayKeyList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/GatewayKey"}},
        },
    },
    "ModelStats": {
        "type": "object",
        "required": ["object", "window_s", "data"],
        "properties": {
            "object": {"const": "list"},
            "window_s": {"type": "number"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["provider", "model", "requests", "success_rate"],
                    "properties": {
                        "provider": {"type": "string"},
                        "model": {"type": "string"},
                        "requests": {"type": "integer"},
                        "errors": {"type": "integer"},
                        "errors_by_class": {
                            "type": "object",
                            "additionalProperties": {"type": "integer"},
                            "description": "failed requests per error class",
                        },
                        "success_rate": {"type": "number", "minimum": 0, "maximum": 1},
                        "ttft_p50": _NUM_OR_NULL,
                        "ttft_p95": _NUM_OR_NULL,
                        "latency_p50": _NUM_OR_NULL,
                        "latency_p95": _NUM_OR_NULL,
                        "tokens_per_second": _NUM_OR_NULL,
                        "output_tokens": {"type": "integer"},
                        "spend_usd": _NUM_OR_NULL,
                    },
                },
            },
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad setting or window",
        401: "no key",
        403: "not the master key (or no master key configured)",
        404: "unknown key id (feedback: no such request of this key)",
        503: "the database is unavailable or turned off",
    }
    return {str(c): {"description": text[c], "content": _ref("Error")} for c in codes}


_KEY_ID = [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def accounting_paths() -> dict[str, Any]:
    return {
        "/api/keys": {
            "post": {
                "summary": "Create a gateway key (master key); the secret is in 'key', once",
                "requestBody": {"required": False, "content": _ref("KeySpec")},
                "operationId": "createKey",
                "responses": {
                    "201": {
                        "description": "the key",
                        "content": _ref("GatewayKey"),
                        "links": {
                            f"{verb.capitalize()}Key": {
                                "operationId": f"{verb}Key",
                                "parameters": {"key_id": "$response.body#/id"},
                            }
                            for verb in ("get", "update", "revoke")
                        },
                    },
                    **_errors(400, 401, 403, 503),
                },
            },
            "get": {
                "summary": "List gateway keys with their current spend (master key)",
                "responses": {
                    "200": {"description": "keys", "content": _ref("GatewayKeyList")},
                    **_errors(401, 403, 503),
                },
            },
        },
        "/api/keys/{key_id}": {
            "parameters": _KEY_ID,
            "get": {
                "summary": "One gateway key (master key)",
                "operationId": "getKey",
                "responses": {
                    "200": {"description": "the key", "content": _ref("GatewayKey")},
                    **_errors(401, 403, 404, 503),
                },
            },
            "patch": {
                "summary": "Change a key's limits (master key)",
                "operationId": "updateKey",
                "requestBody": {"required": True, "content": _ref("KeySpec")},
                "responses": {
                    "200": {"description": "the key", "content": _ref("GatewayKey")},
                    **_errors(400, 401, 403, 404, 503),
                },
            },
            "delete": {
                "summary": "Revoke a key, on every replica at once (master key)",
                "operationId": "revokeKey",
                "responses": {
                    "200": {"description": "the revoked key", "content": _ref("GatewayKey")},
                    **_errors(401, 403, 404, 503),
                },
            },
        },
        "/api/models/stats": {
            "get": {
                "summary": "Per provider and model over a window, from the request log",
                "parameters": [
                    {
                        "name": "window",
                        "in": "query",
                        "description": "seconds, or 15m / 1h / 24h / 7d (default 1h, max 90d)",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "statistics", "content": _ref("ModelStats")},
                    **_errors(400, 401, 403, 503),
                },
            }
        },
    }
