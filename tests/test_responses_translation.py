"""The ``openai_responses`` adapter's pure translation: a canonical request to a Responses
body (checked against the official spec's ``CreateResponse``), a ``response`` object and its
stream events back to the canonical result. No socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from turnout.adapters import openai_responses
from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.deployment import Deployment, resolve_deployment
from turnout.errors import RateLimitError, UnsupportedParameterError
from turnout.gateway import parse_request
from turnout.sse import ServerSentEvent
from turnout.types import Finish, TextDelta, ThinkingDelta, ToolCallDelta, UsageUpdate

from .conftest import openai_validator
from .fakes.openai_responses_upstream import response_events, response_object
from .fakes.script import Reply

KEY = "sk-responses-translation-0001"


def deploy(drop_params: bool = False) -> Deployment:
    config = Config.model_validate(
        {
            "providers": {"oai": {"host": "openai_responses", "api_key": KEY}},
            "drop_params": drop_params,
        }
    )
    return resolve_deployment("oai:o3-pro", config, Catalogue.default())


def body_of(request: dict[str, Any], stream: bool = False, d: Deployment | None = None) -> Any:
    url, headers, raw = openai_responses.to_request(
        parse_request(request), d or deploy(), stream=stream
    )
    assert url == "https://api.openai.com/v1/responses"
    assert headers["Authorization"] == f"Bearer {KEY}"
    return json.loads(raw)


def test_a_tool_conversation_becomes_input_items() -> None:
    body = body_of(
        {
            "model": "x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "max_completion_tokens": 99,
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {}}},
            "reasoning_effort": "high",
        }
    )
    assert body["store"] is False
    assert body["input"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather?"},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,AA==",
                    "detail": "auto",
                },
            ],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    assert body["tools"] == [
        {"type": "function", "name": "get_weather", "parameters": {}, "strict": False}
    ]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["max_output_tokens"] == 99
    assert body["text"] == {"format": {"type": "json_schema", "name": "w", "schema": {}}}
    assert body["reasoning"] == {"effort": "high"}
    # The spec's InputItem is a oneOf whose branches overlap (a message is both an
    # EasyInputMessage and an Item): "valid under each of" them is no fault of the body.
    errors = [
        e.message for e in openai_validator("CreateResponse").iter_errors({**body, "input": "x"})
    ] + [
        e.message
        for item in body["input"]
        for e in openai_validator("InputItem").iter_errors(item)
        if "is valid under each of" not in e.message
    ]
    assert not errors, errors
    assert body_of({"model": "x", "messages": [{"role": "user", "content": "hi"}]}, True)["stream"]


def test_fields_with_no_responses_spelling_are_refused_unless_dropped() -> None:
    request = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "stop": ["END"]}
    with pytest.raises(UnsupportedParameterError) as info:
        body_of(request)
    assert info.value.param == "stop"
    assert "stop" not in body_of(request, d=deploy(drop_params=True))


def test_a_response_object_becomes_the_canonical_result() -> None:
    d = deploy()
    text = openai_responses.from_response(response_object(Reply(text="Hi."), {}, 1), d)
    assert (text.text, text.choices[0].finish_reason) == ("Hi.", "stop")
    assert (text.usage.prompt_tokens, text.usage.completion_tokens) == (11, 7)
    called = openai_responses.from_response(response_object(Reply(tool_call=("f", "{}")), {}, 2), d)
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.content is None
    assert choice.tool_calls == [
        {"id": "call_fake_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    cut = {
        **response_object(Reply(), {}, 3),
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
    }
    assert openai_responses.from_response(cut, d).choices[0].finish_reason == "length"
    failed = {
        **response_object(Reply(), {}, 4),
        "status": "failed",
        "error": {"code": "rate_limit_exceeded", "message": "slow down"},
    }
    with pytest.raises(RateLimitError):
        openai_responses.from_response(failed, d)


def test_stream_events_become_canonical_events() -> None:
    d = deploy()
    sse = [
        ServerSentEvent(data=json.dumps(e), event=e["type"])
        for e in response_events(Reply(text="one two"), {})
    ]
    events = openai_responses.parse_stream(sse, d)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["one ", "two"]
    assert isinstance(events[-2], Finish) and events[-2].reason == "stop"
    assert isinstance(events[-1], UsageUpdate) and events[-1].usage.prompt_tokens == 11

    sse = [
        ServerSentEvent(data=json.dumps(e), event=e["type"])
        for e in response_events(Reply(tool_call=("f", '{"a": 1}')), {})
    ]
    events = openai_responses.parse_stream(sse, d)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert (calls[0].id, calls[0].name) == ("call_fake_1", "f")
    assert "".join(c.arguments for c in calls) == '{"a": 1}'
    assert isinstance(events[-2], Finish) and events[-2].reason == "tool_calls"


def test_the_stream_writer_keeps_late_pieces_of_interleaved_calls() -> None:
    """A backend interleaving two parallel calls' arguments: the second call's opening
    closes the first, whose late piece can no longer be an event, but the final response
    (what is stored and continued) has every piece."""
    from types import SimpleNamespace

    from turnout.server.responses_request import parse_responses
    from turnout.server.responses_wire import ResponsesCall, ResponseStreamWriter
    from turnout.types import Usage

    writer = ResponseStreamWriter(ResponsesCall(parse_responses({"model": "m", "input": "x"})), "m")
    frames = writer.start()
    for event in [
        ThinkingDelta("Two calls.", block=0),
        ToolCallDelta(0, '{"a":', "call_a", "f"),
        ToolCallDelta(1, '{"b":', "call_b", "g"),
        ToolCallDelta(0, " 1}"),
        ToolCallDelta(1, " 2}"),
        Finish("tool_calls"),
    ]:
        frames += writer.event(event)
    frames += writer.end(SimpleNamespace(request_cost=None, usage=Usage(3, 4)))  # type: ignore[arg-type]
    assert writer.final is not None
    calls = [(i["call_id"], i["arguments"]) for i in writer.final["output"]]
    assert calls == [("call_a", '{"a": 1}'), ("call_b", '{"b": 2}')]
    numbers = [
        json.loads(line[6:])["sequence_number"]
        for line in frames.decode().splitlines()
        if line.startswith("data: ")
    ]
    assert numbers == list(range(len(numbers)))
