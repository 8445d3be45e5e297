"""Cohere v2 translation as pure functions: request bodies, answers, stream events, errors.
There is no Cohere spec file: shapes are checked against the cohere SDK's own pydantic types
(``V2ChatResponse``, ``V2ChatStreamResponse``) and its request model where one exists."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from turnout.adapters.cohere_chat import (
    StreamState,
    from_response,
    map_error,
    parse_event,
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
from turnout.types import ChatRequest, Finish, TextDelta, ToolCallDelta, UsageUpdate

from .fakes.cohere_upstream import events, whole
from .fakes.script import Reply

KEY = "co-test-key-0123456789abcd"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}


def deploy(drop_params: bool = False, **params: Any) -> Deployment:
    config = Config(providers={"cohere": {"api_key": KEY}}, drop_params=drop_params)
    return resolve_deployment("cohere:command-a-03-2025", config, Catalogue.default(), params)


def build(
    d: Deployment | None = None, *, stream: bool = False, **fields: Any
) -> tuple[str, dict[str, str], dict[str, Any]]:
    body: dict[str, Any] = {"model": "c", "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    url, headers, raw = to_request(ChatRequest.model_validate(body), d or deploy(), stream=stream)
    return url, headers, orjson.loads(raw)


def test_url_auth_and_plain_body():
    url, headers, body = build()
    assert url == "https://api.cohere.com/v2/chat"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }
    _, headers, body = build(stream=True)
    assert body["stream"] is True and headers["Accept"] == "text/event-stream"


def test_sampling_fields_and_native_passthrough():
    d = deploy(safety_mode="OFF", k=40)
    _, _, body = build(
        d,
        temperature=0.3,
        top_p=0.9,
        max_tokens=20,
        stop=["\n"],
        seed=1,
        frequency_penalty=0.2,
        presence_penalty=0.1,
    )
    assert {k: body[k] for k in body if k not in ("model", "messages", "stream")} == {
        "temperature": 0.3,
        "p": 0.9,
        "max_tokens": 20,
        "stop_sequences": ["\n"],
        "seed": 1,
        "frequency_penalty": 0.2,
        "presence_penalty": 0.1,
        "safety_mode": "OFF",
        "k": 40,
    }


def test_unsupported_fields():
    with pytest.raises(UnsupportedParameterError) as info:
        build(n=2)
    assert info.value.param == "n"
    named = {"type": "function", "function": {"name": "get_weather"}}
    with pytest.raises(UnsupportedParameterError, match="which tool"):
        build(tools=[WEATHER], tool_choice=named)
    _, _, body = build(deploy(drop_params=True), n=2, tools=[WEATHER], tool_choice=named)
    assert "n" not in body and "tool_choice" not in body


def test_tools_tool_choice_and_formats():
    _, _, body = build(tools=[WEATHER], tool_choice="required")
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    assert body["tool_choice"] == "REQUIRED"
    assert build(tools=[WEATHER], tool_choice="none")[2]["tool_choice"] == "NONE"
    assert "tool_choice" not in build(tools=[WEATHER], tool_choice="auto")[2]
    assert build(response_format={"type": "json_object"})[2]["response_format"] == {
        "type": "json_object"
    }
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert build(response_format=fmt)[2]["response_format"] == {
        "type": "json_object",
        "json_schema": schema,
    }


def test_messages_round_trip_with_tool_plan_and_results():
    calls = [
        {
            "id": "get_weather_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    _, _, body = build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"}, image]},
            {"role": "assistant", "content": "I will check.", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "get_weather_1", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
        ]
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Look"}, image]},
        {"role": "assistant", "tool_calls": calls, "tool_plan": "I will check."},
        {"role": "tool", "tool_call_id": "get_weather_1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
    ]


def test_audio_parts_are_refused():
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(BadRequestError, match="input_audio"):
        build(messages=[{"role": "user", "content": [audio]}])


# --- answers and streams -----------------------------------------------------------------


def sdk_parses(obj: dict[str, Any], stream: bool = False) -> Any:
    from cohere.core.unchecked_base_model import construct_type
    from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse

    return construct_type(type_=V2ChatStreamResponse if stream else V2ChatResponse, object_=obj)


def test_whole_answer_uses_billed_units_and_keeps_the_plan():
    reply = Reply(
        tool_call=("get_weather", '{"city": "Paris"}'),
        prompt_tokens=12,
        completion_tokens=5,
        cached_tokens=3,
    )
    obj = whole(reply)
    assert sdk_parses(obj).finish_reason == "TOOL_CALL"
    result = from_response(obj, deploy())
    choice = result.choices[0]
    assert choice.content is None and choice.finish_reason == "tool_calls"
    assert choice.tool_calls == [
        {
            "id": "get_weather_fake1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert choice.extra == {"reasoning_content": "I will use get_weather to answer."}
    assert (
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
        result.usage.cached_tokens,
    ) == (12, 5, 3)


@pytest.mark.parametrize(
    ("native", "openai"),
    [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length")],
)
def test_finish_reasons(native: str, openai: str):
    obj = whole(Reply())
    obj["finish_reason"] = native
    assert from_response(obj, deploy()).choices[0].finish_reason == openai


def test_failed_generations_raise():
    obj = whole(Reply())
    obj["finish_reason"] = "ERROR"
    with pytest.raises(UpstreamServerError):
        from_response(obj, deploy())
    obj["finish_reason"] = "TIMEOUT"
    with pytest.raises(UpstreamTimeoutError):
        from_response(obj, deploy())
    with pytest.raises(UpstreamServerError, match="malformed"):
        from_response({"id": "x"}, deploy())


def test_usage_falls_back_to_tokens():
    obj = whole(Reply())
    obj["usage"] = {"tokens": {"input_tokens": 40, "output_tokens": 9}}
    assert from_response(obj, deploy()).usage.prompt_tokens == 40


async def test_stream_events_reassemble_tool_calls_exactly():
    args = '{"city": "Zürich", "days": [1, 2], "q": "say \\"hi\\""}'
    reply = Reply(tool_call=("get_weather", args), prompt_tokens=8, completion_tokens=4)
    d, state = deploy(), StreamState()
    got = []
    for e in events(reply):
        assert sdk_parses(e, stream=True).type == e["type"]
        got.extend(parse_event(e, d, state))
    assert not any(isinstance(e, TextDelta) for e in got)  # the plan is not answer text
    deltas = [e for e in got if isinstance(e, ToolCallDelta)]
    assert deltas[0].id == "get_weather_fake1" and deltas[0].name == "get_weather"
    assert "".join(e.arguments for e in deltas) == args
    assert isinstance(got[-2], Finish) and got[-2].reason == "tool_calls"
    assert isinstance(got[-1], UsageUpdate) and got[-1].usage.prompt_tokens == 8

    async def gen():
        for e in got:
            yield e

    result = await ChatStream(gen(), id="x", provider="cohere", model="m", deployment="d").collect()
    assert result.choices[0].tool_calls == from_response(whole(reply), d).choices[0].tool_calls


def test_stream_text_unknown_events_and_failed_end():
    d, state = deploy(), StreamState()
    got = [e for ev in events(Reply(text="a b")) for e in parse_event(ev, d, state)]
    assert [e.text for e in got if isinstance(e, TextDelta)] == ["a ", "b"]
    assert parse_event({"type": "citation-start", "index": 0}, d, state) == []
    assert parse_event({"type": "some-future-event"}, d, state) == []
    with pytest.raises(UpstreamServerError, match="generation failed: overloaded"):
        parse_event(
            {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "overloaded"}},
            d,
            state,
        )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (498, AuthenticationError),
        (402, PermissionDeniedError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, BadRequestError),
        (429, RateLimitError),
        (500, UpstreamServerError),
        (503, OverloadedError),
        (504, UpstreamTimeoutError),
    ],
)
def test_errors(status: int, cls: type):
    err = map_error(status, orjson.dumps({"id": "e1", "message": f"problem {KEY}"}), {}, deploy())
    assert type(err) is cls
    assert KEY not in err.message and err.message.startswith("problem ...")


def test_context_window_error():
    raw = orjson.dumps(
        {"id": "e", "message": "too many tokens: size limit exceeded by 1000 tokens"}
    )
    assert isinstance(map_error(400, raw, {}, deploy()), ContextWindowExceededError)
