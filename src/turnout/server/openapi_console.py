"""The OpenAPI description of the web console's pages and of the API written for it
(session, request log, time series, "check provider keys now"), merged into the document
``openapi.py`` serves; tests validate real responses against these schemas."""

from __future__ import annotations

from typing import Any

__all__ = ["CONSOLE_SCHEMAS", "console_paths"]

_NUM_OR_NULL = {"type": ["number", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}

CONSOLE_SCHEMAS: dict[str, Any] = {
    "ConsoleSession": {
        "type": "object",
        "required": ["role", "open", "strategies", "priorities", "key"],
        "additionalProperties": False,
        "properties": {
            "role": {
                "enum": ["admin", "key", "none"],
                "description": "admin: every page; key: a gateway key, the playground only; "
                "none: no key presented and the server needs one (sign in)",
            },
            "open": {"type": "boolean", "description": "true when no master key is set"},
            "strategies": {"type": "array", "items": {"type": "string"}},
            "priorities": {"type": "array", "items": {"type": "string"}},
            "key": {
                "anyOf": [{"$ref": "#/components/schemas/GatewayKey"}, {"type": "null"}],
                "description": "the signed-in gateway key with its spend (role 'key')",
            },
        },
    },
    "LogRecord": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "ts", "route", "status", "attempts", "stream"],
        "description": "One request as the request log keeps it. Prompt and answer text "
        "only with request_log.store_content (off by default), and then only in "
        "GET /api/requests/{id}.",
        "properties": {
            "id": {"type": "integer"},
            "ts": {"type": "number", "description": "UNIX seconds when the request arrived"},
            "request_id": _STR_OR_NULL,
            "key_id": _STR_OR_NULL,
            "route": {"type": "string", "description": "the model or route asked for"},
            "strategy": _STR_OR_NULL,
            "provider": _STR_OR_NULL,
            "model": _STR_OR_NULL,
            "deployment": _STR_OR_NULL,
            "stream": {"type": "boolean"},
            "status": {"type": "integer"},
            "error": {**_STR_OR_NULL, "description": "error class, e.g. RateLimitError"},
            "error_message": {
                **_STR_OR_NULL,
                "description": "the error's message, secrets redacted, at most 500 characters",
            },
            "attempts": {"type": "integer"},
            "ttft": {**_NUM_OR_NULL, "description": "seconds to the first token"},
            "latency": {**_NUM_OR_NULL, "description": "seconds"},
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "cached_tokens": {"type": "integer"},
            "cost": {**_NUM_OR_NULL, "description": "USD"},
            "attempt": {
                "type": ["integer", "null"],
                "description": "null on a request's record; n on the record of its n-th "
                "attempt, one that failed before another answered or failed",
            },
            "prompt": {
                **_STR_OR_NULL,
                "description": "GET /api/requests/{id} only: the messages as text (redacted, "
                "cut to request_log.content_limit); null unless request_log.store_content",
            },
            "answer": {
                **_STR_OR_NULL,
                "description": "GET /api/requests/{id} only: the answer's text, likewise",
            },
            "failed_attempts": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/LogRecord"},
                "description": "GET /api/requests/{id} only: the request's failed attempts",
            },
        },
    },
    "LogPage": {
        "type": "object",
        "required": ["object", "data", "next_cursor"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/LogRecord"}},
            "next_cursor": {
                **_STR_OR_NULL,
                "description": "pass as 'cursor' for the next (older) page; null on the last",
            },
        },
    },
    "StatsSeries": {
        "type": "object",
        "required": ["object", "window_s", "bucket_s", "data"],
        "properties": {
            "object": {"const": "list"},
            "window_s": {"type": "number"},
            "bucket_s": {"type": "integer"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["ts", "requests", "errors", "ttft_avg", "spend_usd"],
                    "properties": {
                        "ts": {"type": "number", "description": "bucket start, UNIX seconds"},
                        "requests": {"type": "integer"},
                        "errors": {"type": "integer"},
                        "ttft_avg": {
                            **_NUM_OR_NULL,
                            "description": "mean seconds to first token of successful streams",
                        },
                        "spend_usd": {"type": "number"},
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
        400: "bad filter, window or cursor",
        401: "no key (the session: an unknown or revoked one)",
        403: "not the master key",
        404: "no such record",
        503: "the database is unavailable or turned off",
    }
    return {str(c): {"description": text[c], "content": _ref("Error")} for c in codes}


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind}}


_FILTERS = [
    _query("key_id", "gateway key id"),
    _query("route", "the model or route asked for"),
    _query("provider", "provider that served (or last failed)"),
    _query("model", "upstream model"),
]
_HTML = {"text/html": {"schema": {"type": "string"}}}


def console_paths() -> dict[str, Any]:
    return {
        "/": {
            "get": {
                "summary": "The web console (HTML; server.console: false turns it off)",
                "security": [],
                "responses": {
                    "200": {"description": "the single-page app", "content": _HTML},
                    "503": {"description": "the console's assets are not built"},
                },
            }
        },
        "/assets/{name}": {
            "get": {
                "summary": "The console's content-hashed JS and CSS, cached for a year",
                "security": [],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "the file"}, "404": {"description": "none"}},
            }
        },
        "/api/console/session": {
            "get": {
                "summary": "Who the presented key is: admin (master key or open server) or a "
                "gateway key, with the strategies and priorities the playground offers",
                "responses": {
                    "200": {"description": "the session", "content": _ref("ConsoleSession")},
                    **_errors(401),
                },
            }
        },
        "/api/requests": {
            "get": {
                "summary": "The request log, newest first, paged by cursor (master key)",
                "parameters": [
                    _query(
                        "since",
                        "how far back: seconds or 15m / 1h / 24h / 7d (default 24h, at most 90d)",
                    ),
                    *_FILTERS,
                    _query("status", "'ok' (< 400), 'error' (>= 400) or one status code"),
                    _query("error", "substring of the error class, case-insensitive"),
                    _query(
                        "message",
                        "substring of the error message (as stored: secrets redacted, at most "
                        "500 characters), case-insensitive",
                    ),
                    _query("cursor", "next_cursor of the previous page"),
                    _query("limit", "records per page, 1-200 (default 50)", "integer"),
                ],
                "responses": {
                    "200": {"description": "one page", "content": _ref("LogPage")},
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/api/requests/{record_id}": {
            "get": {
                "summary": "One request-log record (master key)",
                "parameters": [
                    {
                        "name": "record_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {
                    "200": {"description": "the record", "content": _ref("LogRecord")},
                    **_errors(400, 401, 403, 404, 503),
                },
            }
        },
        "/api/stats/series": {
            "get": {
                "summary": "Requests, errors, mean TTFT and spend per time bucket, aggregated "
                "in the database (master key)",
                "parameters": [
                    _query("window", "seconds or 15m / 1h / 24h / 7d (default 1h, max 90d)"),
                    _query("bucket", "bucket seconds (default: at most 120 buckets)", "integer"),
                    *_FILTERS,
                ],
                "responses": {
                    "200": {"description": "the series", "content": _ref("StatsSeries")},
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/api/models/providers/check": {
            "post": {
                "summary": "Check every provider key now (master key) and return the statuses",
                "responses": {
                    "200": {"description": "key health", "content": _ref("ProviderKeyList")},
                    **_errors(401, 403),
                },
            }
        },
    }
