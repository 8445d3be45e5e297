"""Gemini translation as pure functions: request bodies (checked against the Gemini spec),
responses, stream chunks, schemas and errors. No sockets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from turnout.adapters.gemini import (
    StreamState,
    from_response,
    map_error,
    parse_chunk,
    to_gemini_schema,
    to_request,
)
from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.deployment import Deployment, resolve_deployment
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    UnsupportedParameterError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from turnout.streaming import ChatStream
from turnout.types import ChatRequest, Finish, StreamEvent, TextDelta, ToolCallDelta, UsageUpdate

from .specs import errors_of

KEY = "AIza-test-gemini-key-0123456789"
SPEC = "gemini-native.openapi.json"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
    "PchI7wAAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def deploy(drop_params: bool = False, **params: Any) -> Deployment:
    config = Config(
        providers={"gemini": {"api_key": KEY}},
        drop_params=drop_params,
    )
    return resolve_deployment("gemini:gemini-2.5-flash", config, Catalogue.default(), params)


def build(
    d: Deployment | None = None, *, stream: bool = False, **fields: Any
) -> tuple[str, dict[str, str], dict[str, Any]]:
    body: dict[str, Any] = {"model": "g", "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    url, headers, raw = to_request(ChatRequest.model_validate(body), d or deploy(), stream=stream)
    out = orjson.loads(raw)
    assert errors_of(SPEC, "GenerateContentRequest", out) == []
    return url, headers, out


def test_url_key_header_and_plain_body():
    url, headers, body = build()
    base = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
    assert url == base + ":generateContent"
    assert headers["x-goog-api-key"] == KEY
    assert "Authorization" not in headers
    assert body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    url, headers, _ = build(stream=True)
    assert url == base + ":streamGenerateContent?alt=sse"
    assert headers["Accept"] == "text/event-stream"


def test_system_prompts_become_system_instruction_and_roles_are_user_and_model():
    _, _, body = build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour."},
            {"role": "user", "content": "Again"},
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nAnswer in French."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]


def test_generation_config_from_openai_fields():
    _, _, body = build(
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=64,
        stop="END",
        seed=7,
        n=2,
        presence_penalty=0.5,
        frequency_penalty=0.1,
    )
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "seed": 7,
        "candidateCount": 2,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.1,
    }


def test_deployment_params_and_native_fields_pass_through():
    d = deploy(temperature=0.1, thinkingConfig={"thinkingBudget": 0}, safetySettings=[])
    _, _, body = build(d, temperature=0.9)
    assert body["generationConfig"] == {"temperature": 0.9, "thinkingConfig": {"thinkingBudget": 0}}
    assert body["safetySettings"] == []


def test_unsupported_field_is_refused_or_dropped():
    with pytest.raises(UnsupportedParameterError) as info:
        build(logit_bias={"1": 2})
    assert info.value.param == "logit_bias"
    _, _, body = build(deploy(drop_params=True), logit_bias={"1": 2}, user="u1")
    assert "logit_bias" not in body and "user" not in body


def test_json_object_and_json_schema_formats():
    _, _, body = build(response_format={"type": "json_object"})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            "size": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {"tag": {"type": "string", "enum": ["a", "b"]}},
    }
    _, _, body = build(
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    )
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert body["generationConfig"]["responseSchema"] == {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
            "size": {"type": "INTEGER", "nullable": True},
        },
        "required": ["name"],
    }


def test_schema_conversion_edge_cases():
    assert to_gemini_schema({"type": ["string", "integer"]}) == {
        "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]
    }
    assert to_gemini_schema({"const": "x"}) == {"type": "STRING", "enum": ["x"]}
    assert to_gemini_schema({"type": "integer", "enum": [1, 2]}) == {"type": "INTEGER"}
    recursive = {
        "$ref": "#/$defs/n",
        "$defs": {"n": {"type": "object", "properties": {"child": {"$ref": "#/$defs/n"}}}},
    }
    with pytest.raises(BadRequestError, match="recursive"):
        to_gemini_schema(recursive)
    with pytest.raises(BadRequestError, match="cannot be resolved"):
        to_gemini_schema({"$ref": "#/$defs/missing"})


def test_tools_and_tool_choice():
    _, _, body = build(tools=[WEATHER], tool_choice="required")
    decl = body["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather" and decl["description"] == "Weather for a city"
    assert decl["parameters"] == {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER", "nullable": True}},
        "required": ["city"],
    }
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    named = {"type": "function", "function": {"name": "get_weather"}}
    _, _, body = build(tools=[WEATHER], tool_choice=named)
    assert body["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["get_weather"],
    }
    for choice, mode in (("none", "NONE"), ("auto", "AUTO")):
        _, _, body = build(tools=[WEATHER], tool_choice=choice)
        assert body["toolConfig"]["functionCallingConfig"]["mode"] == mode
    no_params = {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    }
    _, _, body = build(tools=[no_params])
    assert body["tools"][0]["functionDeclarations"] == [{"name": "now"}]


def test_tool_round_trip_messages_pair_results_by_name_in_one_turn():
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    _, _, body = build(
        messages=[
            {"role": "user", "content": "Weather and time?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "c2", "content": "noon"},
        ],
        tools=[WEATHER],
    )
    model, results = body["contents"][1], body["contents"][2]
    assert model == {
        "role": "model",
        "parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
        ],
    }
    with pytest.raises(BadRequestError, match="answers no earlier tool call"):
        build(messages=[{"role": "tool", "tool_call_id": "nope", "content": "x"}])


def test_images_inline_from_data_urls_only():
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    _, _, body = build(
        messages=[{"role": "user", "content": [{"type": "text", "text": "What?"}, image]}]
    )
    assert body["contents"][0]["parts"] == [
        {"text": "What?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]
    link = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(UnsupportedParameterError, match="data URL"):
        build(messages=[{"role": "user", "content": [link]}])


# --- responses ---------------------------------------------------------------------------


def gemini_response(
    parts: list[dict[str, Any]], finish: str = "STOP", **usage: int
) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        ],
        "usageMetadata": usage
        or {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
        "responseId": "resp-1",
    }


def test_from_response_text_usage_and_thoughts():
    body = gemini_response(
        [{"text": "plan", "thought": True}, {"text": "Hello "}, {"text": "there."}],
        promptTokenCount=20,
        candidatesTokenCount=3,
        thoughtsTokenCount=4,
        cachedContentTokenCount=8,
    )
    assert errors_of(SPEC, "GenerateContentResponse", body) == []
    result = from_response(body, deploy())
    choice = result.choices[0]
    assert (choice.content, choice.finish_reason) == ("Hello there.", "stop")
    assert choice.extra == {"reasoning_content": "plan"}
    u = result.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens) == (
        20,
        7,
        8,
        4,
    )
    assert (result.id, result.provider, result.model) == ("resp-1", "gemini", "gemini-2.5-flash")


@pytest.mark.parametrize(
    ("native", "openai"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(native: str, openai: str):
    assert (
        from_response(gemini_response([{"text": "x"}], native), deploy()).choices[0].finish_reason
        == openai
    )


def test_from_response_function_calls():
    body = gemini_response(
        [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "g-1"}},
            {"functionCall": {"name": "get_time"}},
        ]
    )
    choice = from_response(body, deploy()).choices[0]
    assert choice.content is None and choice.finish_reason == "tool_calls"
    first, second = choice.tool_calls or []
    assert first == {
        "id": "g-1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    assert second["function"] == {"name": "get_time", "arguments": "{}"}
    assert second["id"].startswith("call_")


def test_blocked_prompt_is_a_content_filter_finish():
    result = from_response({"promptFeedback": {"blockReason": "SAFETY"}}, deploy())
    assert result.choices[0].finish_reason == "content_filter"


def test_malformed_and_in_body_errors():
    with pytest.raises(UpstreamServerError, match="malformed"):
        from_response({"candidates": "nope"}, deploy())
    with pytest.raises(UpstreamServerError, match="malformed"):
        from_response({"candidates": [{"content": {"parts": [1]}}]}, deploy())
    with pytest.raises(OverloadedError):
        from_response(
            {"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}, deploy()
        )


# --- streams -----------------------------------------------------------------------------


async def collect(chunks: list[dict[str, Any]]) -> tuple[list[StreamEvent], Any]:
    d, state = deploy(), StreamState()
    events = [e for c in chunks for e in parse_chunk(c, d, state)]

    async def gen():
        for e in events:
            yield e

    stream = ChatStream(gen(), id="x", provider="gemini", model="m", deployment="gemini:m")
    return events, await stream.collect()


async def test_stream_text_then_final_usage():
    chunks = [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
        },
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "lo"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 5,
                "candidatesTokenCount": 2,
                "totalTokenCount": 7,
                "cachedContentTokenCount": 3,
            },
        },
    ]
    events, result = await collect(chunks)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    assert result.text == "Hello" and result.choices[0].finish_reason == "stop"
    assert (
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
        result.usage.cached_tokens,
    ) == (5, 2, 3)


async def test_streamed_parallel_tool_calls_reassemble_exactly_like_the_whole_answer():
    args = {"city": "Zürich", "nested": {"list": [1, 2.5, None], "quote": 'say "hi"'}}
    parts = [
        {"functionCall": {"name": "get_weather", "args": args}},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": parts[:1]}, "index": 0}]},
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": parts[1:]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4},
        },
    ]
    events, result = await collect(chunks)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(e.index, e.name) for e in deltas] == [(0, "get_weather"), (1, "get_time")]
    whole = from_response(gemini_response(parts), deploy()).choices[0].tool_calls or []
    streamed = result.choices[0].tool_calls or []
    assert [c["function"] for c in streamed] == [c["function"] for c in whole]
    assert orjson.loads(streamed[0]["function"]["arguments"]) == args
    assert result.choices[0].finish_reason == "tool_calls"
    assert isinstance(events[-1], UsageUpdate) and any(isinstance(e, Finish) for e in events)


def test_in_stream_error_raises():
    with pytest.raises(UpstreamServerError, match="INTERNAL: boom"):
        parse_chunk(
            {"error": {"code": 500, "message": "boom", "status": "INTERNAL"}},
            deploy(),
            StreamState(),
        )


# --- errors ------------------------------------------------------------------------------


def status_body(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return orjson.dumps({"error": err})


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        (400, "INVALID_ARGUMENT", BadRequestError),
        (400, "FAILED_PRECONDITION", BadRequestError),
        (401, "UNAUTHENTICATED", AuthenticationError),
        (403, "PERMISSION_DENIED", PermissionDeniedError),
        (404, "NOT_FOUND", NotFoundError),
        (429, "RESOURCE_EXHAUSTED", RateLimitError),
        (500, "INTERNAL", UpstreamServerError),
        (503, "UNAVAILABLE", OverloadedError),
        (504, "DEADLINE_EXCEEDED", UpstreamTimeoutError),
    ],
)
def test_rpc_statuses_map_to_the_hierarchy(code: int, status: str, cls: type):
    err = map_error(code, status_body(code, status, "nope"), {}, deploy())
    assert type(err) is cls
    assert err.message == f"{status}: nope" and err.provider == "gemini"


def test_rpc_status_wins_over_a_generic_http_status():
    err = map_error(500, status_body(500, "RESOURCE_EXHAUSTED", "quota"), {}, deploy())
    assert isinstance(err, RateLimitError)


def test_retry_info_gives_retry_after():
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17.5s"}]
    err = map_error(429, status_body(429, "RESOURCE_EXHAUSTED", "slow down", details), {}, deploy())
    assert isinstance(err, RateLimitError) and err.retry_after == 17.5
    err = map_error(
        429, status_body(429, "RESOURCE_EXHAUSTED", "x", details), {"Retry-After": "3"}, deploy()
    )
    assert isinstance(err, RateLimitError) and err.retry_after == 3


def test_invalid_key_is_authentication_and_never_echoes_the_key():
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    raw = status_body(400, "INVALID_ARGUMENT", f"API key not valid: {KEY}", details)
    err = map_error(400, raw, {}, deploy())
    assert isinstance(err, AuthenticationError)
    assert KEY not in err.message and KEY[-4:] in err.message


def test_context_window_and_non_json_errors():
    raw = status_body(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    )
    assert isinstance(map_error(400, raw, {}, deploy()), ContextWindowExceededError)
    err = map_error(502, b"<html>Bad Gateway</html>", {}, deploy())
    assert isinstance(err, UpstreamServerError) and "Bad Gateway" in err.message
    wrapped = b"[" + status_body(404, "NOT_FOUND", "models/x is not found") + b"]"
    assert isinstance(map_error(404, wrapped, {}, deploy()), NotFoundError)
