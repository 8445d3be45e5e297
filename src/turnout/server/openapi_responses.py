"""The OpenAPI description of the Responses surface (``/v1/responses`` and the stored-response
operations), merged into ``/openapi.json`` by ``openapi``."""

from __future__ import annotations

from typing import Any

__all__ = ["responses_paths"]

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad request (OpenAI error shape), e.g. an unknown previous_response_id",
        401: "missing or wrong key",
        402: "a gateway key's budget is spent",
        403: "the key may not use this model",
        404: "no stored response with this id for this key",
        413: "request body over the server's limit",
        429: "rate limited",
        502: "every upstream failed",
        503: "no deployment has a provider key configured, or the database is down",
        504: "upstream timeout",
    }
    return {str(c): {"description": text[c], "content": _ERROR} for c in codes}


_RESPONSE = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "response"},
        "status": {"type": "string"},
        "model": {"type": "string"},
        "output": {"type": "array", "items": {"type": "object"}},
    },
}

_ID = [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def responses_paths() -> dict[str, Any]:
    create: dict[str, Any] = {
        "summary": "OpenAI Responses (whole or typed SSE events), served by any backend",
        "description": "The OpenAI request and response shapes (docs/responses.md): input as "
        "a string or items (messages, function_call, function_call_output), instructions, "
        "function tools, text.format, max_output_tokens, temperature, top_p, reasoning "
        "(passed to backends that have it), metadata, store (default true) and "
        "previous_response_id. usage carries 'cost_usd' when the price is known; streams "
        "end with ': x-turnout-cost-usd=<usd>' before response.completed.",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["model"],
                        "properties": {
                            "model": {"type": "string"},
                            "input": {"type": ["string", "array"]},
                            "stream": {"type": "boolean"},
                            "store": {"type": "boolean"},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "a response object, or text/event-stream",
                "headers": {
                    "x-turnout-cost-usd": {
                        "description": "USD for this request (JSON responses)",
                        "schema": {"type": "string"},
                    }
                },
                "content": {"application/json": {"schema": _RESPONSE}, "text/event-stream": {}},
            },
            **_errors(400, 401, 402, 403, 404, 413, 429, 502, 503, 504),
        },
    }
    return {
        "/v1/responses": {"post": create},
        "/responses": {"post": {**create, "summary": "Alias of /v1/responses"}},
        "/v1/responses/{response_id}": {
            "parameters": _ID,
            "get": {
                "summary": "A stored response (a gateway key sees only its own)",
                "responses": {
                    "200": {
                        "description": "the response",
                        "content": {"application/json": {"schema": _RESPONSE}},
                    },
                    **_errors(401, 404, 503),
                },
            },
            "delete": {
                "summary": "Delete a stored response",
                "responses": {
                    "200": {
                        "description": "deleted",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id", "object", "deleted"],
                                    "properties": {
                                        "id": {"type": "string"},
                                        "object": {"const": "response.deleted"},
                                        "deleted": {"const": True},
                                    },
                                }
                            }
                        },
                    },
                    **_errors(401, 404, 503),
                },
            },
        },
        "/v1/responses/{response_id}/input_items": {
            "parameters": _ID,
            "get": {
                "summary": "The input items a stored response was given (earlier turns too)",
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {
                        "name": "order",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["asc", "desc"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "a list of items",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["object", "data", "has_more"],
                                    "properties": {
                                        "object": {"const": "list"},
                                        "data": {"type": "array"},
                                        "has_more": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    **_errors(400, 401, 404, 503),
                },
            },
        },
    }
