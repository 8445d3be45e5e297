"""The OpenAPI 3.1 description the server serves at ``GET /openapi.json``.

Hand-written rather than generated: the handlers parse their own bodies (no schema framework
sits in the hot path), so the description is data kept beside them, and the tests validate
the server's real responses against these schemas so that the two cannot drift apart.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from ..config import CAPABILITIES
from .feedback import FEEDBACK_SCHEMAS, feedback_paths
from .health import HEALTH_PATHS, HEALTH_SCHEMAS
from .openapi_accounting import ACCOUNTING_SCHEMAS, _errors, accounting_paths
from .openapi_console import CONSOLE_SCHEMAS, console_paths
from .openapi_responses import responses_paths
from .reload import CONFIG_PATHS, CONFIG_SCHEMAS

__all__ = ["SCHEMAS", "openapi_document", "openapi_spec"]

_NUM_OR_NULL = {"type": ["number", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "ProviderKeyStatus": {
        "type": "object",
        "required": ["provider", "host", "wire_api", "key", "status", "last_checked"],
        "additionalProperties": False,
        "properties": {
            "provider": {"type": "string"},
            "host": {"type": "string", "description": "host row (turnout.hosts)"},
            "wire_api": {"type": "string"},
            "key": {"type": "string", "description": "the key's last four characters only"},
            "status": {
                "enum": ["valid", "invalid", "unreachable", "missing", "error", "unchecked"]
            },
            "last_checked": {**_STR_OR_NULL, "description": "ISO 8601 UTC"},
            "latency_ms": _NUM_OR_NULL,
            "last_error": _STR_OR_NULL,
            "detail": _STR_OR_NULL,
        },
    },
    "ProviderKeyList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/ProviderKeyStatus"}},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": _STR_OR_NULL,
                    "code": _STR_OR_NULL,
                },
            }
        },
    },
    "ModelEntry": {
        "type": "object",
        "required": ["id", "provider", "upstream", "capabilities", "tags", "price_source"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "provider:upstream-model"},
            "provider": {"type": "string"},
            "upstream": {"type": "string"},
            "context_window": _INT_OR_NULL,
            "max_output": _INT_OR_NULL,
            "default_max_tokens": {
                **_INT_OR_NULL,
                "description": "output cap applied when a request sets none",
            },
            "input_price": {**_NUM_OR_NULL, "description": "USD per million input tokens"},
            "output_price": {**_NUM_OR_NULL, "description": "USD per million output tokens"},
            "cached_input_price": {
                **_NUM_OR_NULL,
                "description": "USD per million cached input tokens (null: input price)",
            },
            "cache_write_price": {
                **_NUM_OR_NULL,
                "description": "USD per million input tokens written to the prompt cache for "
                "five minutes (null: input price)",
            },
            "cache_write_1h_price": {
                **_NUM_OR_NULL,
                "description": "USD per million input tokens written to the prompt cache for "
                "one hour (null: the five-minute write price)",
            },
            "capabilities": {
                "type": "array",
                "items": {"enum": list(CAPABILITIES)},
            },
            "tags": {"type": "array", "items": {"type": "string"}},
            "aliases": {"type": "array", "items": {"type": "string"}},
            "quality": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "quality_source": _STR_OR_NULL,
            "price_source": _STR_OR_NULL,
            "price_date": {"type": ["string", "null"], "format": "date"},
            "price_verified": {"type": ["boolean", "null"]},
            "price_note": _STR_OR_NULL,
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/ModelEntry"}},
        },
    },
    "GenerateRequest": {
        "type": "object",
        "required": ["model"],
        "properties": {
            "model": {
                "type": "string",
                "description": "route, catalogue id or alias, or provider:model",
            },
            "prompt": {"type": "string"},
            "system": {"type": "string"},
            "messages": {
                "type": "array",
                "items": {"type": "object"},
                "description": "OpenAI chat messages, instead of prompt",
            },
            "max_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        },
    },
    "Timings": {
        "type": "object",
        "required": ["total_s"],
        "properties": {
            "ttft_s": {**_NUM_OR_NULL, "description": "seconds to the first token"},
            "total_s": {"type": "number"},
            "tokens_per_s": {
                **_NUM_OR_NULL,
                "description": "output tokens per second after the first token",
            },
        },
    },
    "Usage": {
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            "prompt_tokens": {"type": "integer"},
            "completion_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
            "prompt_tokens_details": {"type": "object"},
            "completion_tokens_details": {"type": "object"},
        },
    },
    "GenerateResult": {
        "type": "object",
        "required": [
            "id",
            "model",
            "provider",
            "deployment",
            "text",
            "usage",
            "cost_usd",
            "attempts",
            "timings",
        ],
        "properties": {
            "id": {"type": "string"},
            "model": {"type": "string"},
            "provider": {"type": "string"},
            "deployment": {"type": "string"},
            "text": {"type": "string"},
            "finish_reason": _STR_OR_NULL,
            "usage": {"$ref": "#/components/schemas/Usage"},
            "cost_usd": {**_NUM_OR_NULL, "description": "null when the price is unknown"},
            "attempts": {"type": "integer", "minimum": 1},
            "timings": {"$ref": "#/components/schemas/Timings"},
        },
    },
    "List": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array"}},
    },
    "TestResult": {
        "oneOf": [
            {
                "allOf": [
                    {"$ref": "#/components/schemas/GenerateResult"},
                    {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}},
                ]
            },
            {
                "type": "object",
                "required": ["ok", "model", "error", "timings"],
                "properties": {
                    "ok": {"const": False},
                    "model": {"type": "string"},
                    "error": {"$ref": "#/components/schemas/Error/properties/error"},
                    "timings": {"$ref": "#/components/schemas/Timings"},
                },
            },
        ]
    },
}


def _error_responses(*codes: int) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    text = {
        400: "bad request",
        401: "missing or wrong master key",
        404: "unknown model",
        429: "rate limited",
        502: "every upstream failed",
        503: "no deployment has a provider key configured (code missing_api_key)",
    }
    return {str(c): {"description": text.get(c, "error"), "content": content} for c in codes}


def _json_body(ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _ok(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_SECURED: list[dict[str, list[str]]] = [{"masterKey": []}]

_ANTHROPIC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}


def _key_schemas() -> dict[str, Any]:
    """The admin API's request body, from its pydantic model (one source of truth)."""
    from ..accounting import KeySpec

    schema = KeySpec.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "KeySpec": schema}


def openapi_spec() -> dict[str, Any]:
    """The description as a dict (a fresh copy each call)."""
    list_params = [
        {
            "name": "capability",
            "in": "query",
            "description": "required capability; repeat or comma-separate for several",
            "schema": {"type": "string"},
        },
        {
            "name": "tag",
            "in": "query",
            "description": "required tag; repeatable",
            "schema": {"type": "string"},
        },
        {"name": "provider", "in": "query", "schema": {"type": "string"}},
        {
            "name": "max_input_price",
            "in": "query",
            "description": "USD per million input tokens, at most",
            "schema": {"type": "number", "minimum": 0},
        },
        {
            "name": "max_output_price",
            "in": "query",
            "description": "USD per million output tokens, at most",
            "schema": {"type": "number", "minimum": 0},
        },
        {
            "name": "min_context",
            "in": "query",
            "description": "context window, at least",
            "schema": {"type": "integer", "minimum": 0},
        },
    ]
    chat: dict[str, Any] = {
        "summary": "OpenAI Chat Completions (whole or SSE stream)",
        "description": "The OpenAI request and response shapes. Streams end with "
        "a comment line ': x-turnout-cost-usd=<usd>' before 'data: [DONE]', and "
        "with stream_options.include_usage the usage chunk carries 'cost_usd'.",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "required": ["model", "messages"]}
                }
            },
        },
        "responses": {
            "200": {
                "description": "chat.completion, or text/event-stream",
                "headers": {
                    "x-turnout-cost-usd": {
                        "description": "USD for this request (JSON responses)",
                        "schema": {"type": "string"},
                    }
                },
            },
            **_error_responses(400, 401, 404, 429, 502, 503),
        },
    }
    embeddings: dict[str, Any] = {
        "summary": "OpenAI Embeddings, served by any embedding model a route picks",
        "description": "The OpenAI request and response shapes: input as a string, "
        "a list of strings or token arrays; dimensions; encoding_format float or "
        "base64. local:all-minilm-l6-v2 runs in the gateway (no key, no network). "
        "usage carries 'cost_usd' when the price is known (docs/api.md).",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object", "required": ["model", "input"]}}
            },
        },
        "responses": {
            "200": {
                "description": "a list of embedding objects",
                "headers": {
                    "x-turnout-cost-usd": {
                        "description": "USD for this request",
                        "schema": {"type": "string"},
                    }
                },
            },
            **_error_responses(400, 401, 404, 429, 502, 503),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Turnout gateway",
            "version": "0.1.0",
            "description": "OpenAI-compatible chat plus the management API. When the server "
            "has a master key, /api/models* and /metrics need 'Authorization: Bearer <master "
            "key>' (401 without a key, 403 with another), /v1 routes take the master key or a "
            "gateway key; /health, /health/live, /health/ready and /openapi.json are open. "
            "Chat responses carry x-turnout-provider, x-turnout-model, "
            "x-turnout-deployment, x-turnout-attempts and, when the price is known, "
            "x-turnout-cost-usd (values outside printable ASCII are percent-encoded).",
        },
        "components": {
            "schemas": {
                **SCHEMAS,
                **_key_schemas(),
                **ACCOUNTING_SCHEMAS,
                **FEEDBACK_SCHEMAS,
                **HEALTH_SCHEMAS,
                **CONFIG_SCHEMAS,
                **CONSOLE_SCHEMAS,
            },
            "securitySchemes": {"masterKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": _SECURED,
        "paths": {
            "/v1/chat/completions": {"post": chat},
            "/v1/messages": {
                "post": {
                    "summary": "Anthropic Messages (whole or SSE stream), served by any backend",
                    "description": "The Anthropic request and response shapes (docs/anthropic.md)."
                    " The key goes as x-api-key or Authorization: Bearer; any anthropic-version "
                    "is accepted. Streams are Anthropic's named events (message_start ... "
                    "message_stop); a failure after the first byte ends one with 'event: error'.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["model", "max_tokens", "messages"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "an Anthropic message, or text/event-stream"},
                        "default": {
                            "description": "Anthropic's error shape; 529 when overloaded",
                            "content": {"application/json": {"schema": _ANTHROPIC_ERROR}},
                        },
                    },
                }
            },
            "/v1/messages/count_tokens": {
                "post": {
                    "summary": "Anthropic count_tokens: the input tokens of a Messages request",
                    "description": "Exact when the route's first deployment counts (Anthropic's "
                    "own endpoint, the embedded model's tokenizer), else an estimate; the "
                    "x-turnout-token-count header says which (docs/anthropic.md).",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "required": ["model", "messages"]}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the count",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["input_tokens"],
                                        "properties": {
                                            "input_tokens": {"type": "integer", "minimum": 0}
                                        },
                                    }
                                }
                            },
                        },
                        "default": {
                            "description": "Anthropic's error shape",
                            "content": {"application/json": {"schema": _ANTHROPIC_ERROR}},
                        },
                    },
                }
            },
            "/chat/completions": {"post": {**chat, "summary": "Alias of /v1/chat/completions"}},
            "/v1/embeddings": {"post": embeddings},
            "/embeddings": {"post": {**embeddings, "summary": "Alias of /v1/embeddings"}},
            "/v1/models": {
                "get": {
                    "summary": "OpenAI model list: the routes and models this server can serve",
                    "parameters": [
                        {
                            "name": "all",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean", "default": False},
                            "description": "also list models whose provider has no key here",
                        }
                    ],
                    "responses": {"200": {"description": "list of models"}},
                }
            },
            "/health": {
                "get": {
                    "summary": "liveness, with the embedded model's and classifier's state "
                    "(kept for compatibility; probes use /health/live and /health/ready)",
                    "security": [],
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/api/models": {
                "get": {
                    "summary": "The model catalogue, filtered",
                    "parameters": list_params,
                    "responses": {
                        "200": _ok("ModelList", "catalogue entries"),
                        **_error_responses(400, 401),
                    },
                }
            },
            "/api/models/providers": {
                "get": {
                    "summary": "Provider key health, as last checked (docs/key-health.md)",
                    "description": "Each configured provider's key as last checked with a "
                    "cheap real call (key_health.interval, default 300 s, jittered).",
                    "responses": {
                        "200": _ok("ProviderKeyList", "one status per provider"),
                        **_error_responses(401, 403),
                    },
                }
            },
            "/api/models/generate": {
                "post": {
                    "summary": "One prompt to a model or route; the answer with timings and cost",
                    "requestBody": _json_body("GenerateRequest"),
                    "responses": {
                        "200": _ok("GenerateResult", "the answer"),
                        **_error_responses(400, 401, 404, 429, 502),
                    },
                }
            },
            "/api/models/stream": {
                "post": {
                    "summary": "As generate, streamed as SSE",
                    "description": "Named events: 'delta' ({\"text\": ...}) for each piece of "
                    "text, then one 'done' (a GenerateResult) or one 'error' (an Error).",
                    "requestBody": _json_body("GenerateRequest"),
                    "responses": {
                        "200": {
                            "description": "text/event-stream",
                            "content": {"text/event-stream": {}},
                        },
                        **_error_responses(400, 401, 404, 429, 502),
                    },
                }
            },
            "/api/models/test": {
                "post": {
                    "summary": "One real round trip to a model, with timings",
                    "description": "prompt defaults to a one-word reply and max_tokens to 8. "
                    "An upstream failure answers 200 with ok=false and the error.",
                    "requestBody": _json_body("GenerateRequest"),
                    "responses": {
                        "200": _ok("TestResult", "the test's outcome"),
                        **_error_responses(400, 401, 404),
                    },
                }
            },
            "/api/routing": {
                "get": {
                    "summary": "Routes' strategies and each deployment's circuit, cooldown "
                    "and measured TTFT / latency (docs/routing.md)",
                    "responses": {
                        "200": {
                            "description": "routing state",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_error_responses(401, 403),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text exposition format)",
                    "responses": {"200": {"description": "text/plain"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
            **responses_paths(),
            **accounting_paths(),
            **feedback_paths(_errors),
            **HEALTH_PATHS,
            **CONFIG_PATHS,
            **console_paths(),
        },
    }


@cache
def openapi_document() -> bytes:
    """The description serialised once."""
    return orjson.dumps(openapi_spec())
