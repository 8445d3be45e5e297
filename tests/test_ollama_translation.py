"""Ollama native translation as pure functions: request bodies (checked against the Ollama
spec), whole answers, NDJSON lines and errors. No sockets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from turnout.adapters.ollama_chat import (
    NDJSONDecoder,
    StreamState,
    from_response,
    map_error,
    parse_line,
    to_request,
)
from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.deployment import Deployment, resolve_deployment
from turnout.errors import (
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    UnsupportedParameterError,
    UpstreamServerError,
)
from turnout.streaming import ChatStream
from turnout.types import ChatRequest, Finish, TextDelta, ToolCallDelta, UsageUpdate

from .specs import errors_of

SPEC = "ollama-openapi.yaml"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
    "PchI7wAAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)


def deploy(drop_params: bool = False, **params: Any) -> Deployment:
    config = Config(drop_params=drop_params)
    return resolve_deployment("ollama:llama3.2:3b", config, Catalogue.default(), params)


def build(
    d: Deployment | None = None, *, stream: bool = False, **fields: Any
) -> tuple[str, dict[str, str], dict[str, Any]]:
    body: dict[str, Any] = {"model": "o", "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    url, headers, raw = to_request(ChatRequest.model_validate(body), d or deploy(), stream=stream)
    out = orjson.loads(raw)
    assert errors_of(SPEC, "ChatRequest", out) == []
    return url, headers, out


def test_native_api_is_the_default_ollama_host_and_needs_no_key():
    url, headers, body = build()
    assert url == "http://localhost:11434/api/chat"
    assert "Authorization" not in headers
    # "stream" is always explicit: Ollama streams when it is left out.
    assert body == {
        "model": "llama3.2:3b",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }
    assert build(stream=True)[2]["stream"] is True


def test_endpoint_and_key_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-key-0123456789")
    url, headers, _ = build()
    assert url == "http://gpu-box:11434/api/chat"
    assert headers["Authorization"] == "Bearer ollama-key-0123456789"


def test_options_from_openai_fields_and_native_passthrough():
    d = deploy(options={"num_ctx": 8192, "temperature": 0.1}, keep_alive="10m")
    _, _, body = build(
        d,
        max_tokens=32,
        temperature=0.5,
        top_p=0.8,
        stop="END",
        seed=3,
        presence_penalty=0.2,
        frequency_penalty=0.3,
    )
    assert body["options"] == {
        "num_ctx": 8192,
        "num_predict": 32,
        "temperature": 0.5,
        "top_p": 0.8,
        "stop": ["END"],
        "seed": 3,
        "presence_penalty": 0.2,
        "frequency_penalty": 0.3,
    }
    assert body["keep_alive"] == "10m"


def test_format_json_and_schema():
    assert build(response_format={"type": "json_object"})[2]["format"] == "json"
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    assert build(response_format=fmt)[2]["format"] == schema
    assert "format" not in build(response_format={"type": "text"})[2]


def test_nulls_and_no_op_values_are_not_requests():
    _, _, body = build(n=1, logprobs=False, temperature=None, logit_bias=None, tools=None)
    assert body == {
        "model": "llama3.2:3b",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }
    with pytest.raises(UnsupportedParameterError):
        build(n=2)
    with pytest.raises(UnsupportedParameterError):
        build(logprobs=True)


def test_unsupported_fields_and_forced_tool_choice():
    with pytest.raises(UnsupportedParameterError) as info:
        build(logit_bias={"1": 1})
    assert info.value.param == "logit_bias"
    with pytest.raises(UnsupportedParameterError, match="cannot force a tool call"):
        build(tools=[WEATHER], tool_choice="required")
    _, _, body = build(deploy(drop_params=True), tools=[WEATHER], tool_choice="required", n=2)
    assert body["tools"] == [WEATHER] and "n" not in body
    assert "tools" not in build(tools=[WEATHER], tool_choice="none")[2]


def test_tool_round_trip_sends_arguments_as_objects_and_names_results():
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
    ]
    _, _, body = build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    bad = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]
    with pytest.raises(BadRequestError, match="JSON object"):
        build(messages=[{"role": "assistant", "tool_calls": bad}])


def test_images_as_raw_base64():
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    _, _, body = build(
        messages=[{"role": "user", "content": [{"type": "text", "text": "What?"}, image]}]
    )
    assert body["messages"] == [{"role": "user", "content": "What?", "images": [PNG]}]
    with pytest.raises(UnsupportedParameterError, match="data URL"):
        build(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ]
        )


# --- answers and streams -----------------------------------------------------------------


def test_whole_answer_text_thinking_and_usage():
    obj = {
        "model": "llama3.2",
        "message": {"role": "assistant", "content": "Hello!", "thinking": "hmm"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 26,
        "eval_count": 298,
    }
    assert errors_of(SPEC, "ChatResponse", obj) == []
    result = from_response(obj, deploy())
    choice = result.choices[0]
    assert (choice.content, choice.finish_reason, choice.extra) == (
        "Hello!",
        "stop",
        {"reasoning_content": "hmm"},
    )
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (26, 298)
    obj["done_reason"] = "length"
    assert from_response(obj, deploy()).choices[0].finish_reason == "length"


def test_whole_answer_tool_call_arguments_become_a_json_string():
    obj = {
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}],
        },
        "done": True,
        "done_reason": "stop",
    }
    choice = from_response(obj, deploy()).choices[0]
    assert choice.content is None and choice.finish_reason == "tool_calls"
    call = (choice.tool_calls or [])[0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Tokyo"}'}
    assert call["id"].startswith("call_")


async def test_stream_lines_assemble_text_tools_and_usage():
    d, state = deploy(), StreamState()
    stream_lines = [
        {"message": {"role": "assistant", "content": "Let me "}, "done": False},
        {"message": {"role": "assistant", "content": "check."}, "done": False},
        {
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "function": {
                            "name": "get_weather",
                            "arguments": {"city": "Tokyo", "unit": "C"},
                        }
                    },
                    {"function": {"name": "get_time", "arguments": {}}},
                ],
            },
            "done": False,
        },
        {
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 169,
            "eval_count": 15,
        },
    ]
    for line in stream_lines:
        assert errors_of(SPEC, "ChatStreamEvent", line) == []
    events = [e for line in stream_lines for e in parse_line(line, d, state)]
    assert [type(e) for e in events] == [
        TextDelta,
        TextDelta,
        ToolCallDelta,
        ToolCallDelta,
        Finish,
        UsageUpdate,
    ]

    async def gen():
        for e in events:
            yield e

    result = await ChatStream(gen(), id="x", provider="ollama", model="m", deployment="d").collect()
    choice = result.choices[0]
    assert choice.content == "Let me check." and choice.finish_reason == "tool_calls"
    assert [c["function"] for c in choice.tool_calls or []] == [
        {"name": "get_weather", "arguments": '{"city":"Tokyo","unit":"C"}'},
        {"name": "get_time", "arguments": "{}"},
    ]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (169, 15)


def test_ndjson_decoder_joins_lines_split_across_reads():
    dec = NDJSONDecoder()
    assert dec.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert dec.feed(b":2}\n\n") == [b'{"b":2}']
    assert dec.feed(b'{"c":3}') == []
    assert dec.close() == [b'{"c":3}']


def test_mid_stream_error_line_raises():
    with pytest.raises(UpstreamServerError, match="out of memory"):
        parse_line({"error": "out of memory"}, deploy(), StreamState())


@pytest.mark.parametrize(
    ("status", "message", "cls"),
    [
        (404, "model 'llama9' not found, try pulling it first", NotFoundError),
        (400, "invalid format", BadRequestError),
        (400, "prompt too long; exceeded max context length", ContextWindowExceededError),
        (429, "too many requests", RateLimitError),
        (500, "llama runner process has terminated", UpstreamServerError),
        (503, "server busy, please try again.  maximum pending requests exceeded", OverloadedError),
    ],
)
def test_errors(status: int, message: str, cls: type):
    err = map_error(status, orjson.dumps({"error": message}), {"Retry-After": "4"}, deploy())
    assert type(err) is cls and err.message == message
    if isinstance(err, RateLimitError):
        assert err.retry_after == 4
    assert isinstance(map_error(502, b"Bad Gateway", {}, deploy()), UpstreamServerError)
