"""The Anthropic Messages adapter against the fake upstream on loopback: every request it
sends validates against the Anthropic spec, and whatever comes back (whole, streamed in any
shape, or failed, before or during the stream) is read right."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from turnout import errors
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.types import TextDelta, ToolCallDelta

from .anthropic_spec import spec_errors
from .conftest import UPSTREAM_KEY, fast_retry
from .fakes.anthropic_upstream import FakeAnthropic, Message, frame, stream_events
from .fakes.script import Cut, Fail, Raw, Reply, StreamError

HI = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a city up.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "providers": {
            "claude": {"host": "anthropic", "base_url": url + "/v1", "api_key": UPSTREAM_KEY}
        },
        "models": [{"id": "claude:claude-big", "max_output": 32000}],
        "retry": {**fast_retry(), "retries": 0},
        "timeouts": {"connect": 2, "first_token": 2, "total": 5},
        "server": {"preload_local": False},
        **extra,
    }


@pytest.fixture
async def gw(anthropic_url: str):
    gateway = Gateway(Config.model_validate(config(anthropic_url)))
    yield gateway
    await gateway.aclose()


def sent(fake: FakeAnthropic) -> dict[str, Any]:
    body = fake.calls[-1]["body"]
    assert spec_errors("CreateMessageRequest", body) == []
    return body


async def test_chat_sends_a_valid_request_and_reads_the_result(
    gw: Gateway, anthropic_fake: FakeAnthropic
) -> None:
    anthropic_fake.then(
        Reply(text="Bonjour.", prompt_tokens=30, completion_tokens=2, cached_tokens=20)
    )
    result = await gw.chat(
        model="claude:claude-x",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        temperature=0.2,
        max_completion_tokens=50,
        stop="\n\n",
        user="user-42",
    )
    assert result.text == "Bonjour."
    assert result.choices[0].finish_reason == "stop"
    usage = result.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (30, 2, 20)
    assert (result.provider, result.model) == ("claude", "claude-x")
    call = anthropic_fake.calls[-1]
    assert call["path"] == "/v1/messages"
    assert call["headers"]["x-api-key"] == UPSTREAM_KEY
    assert call["headers"]["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in call["headers"]
    assert sent(anthropic_fake) == {
        "model": "claude-x",
        "max_tokens": 50,
        "messages": HI,
        "system": "Be brief.",
        "temperature": 0.2,
        "stop_sequences": ["\n\n"],
        "metadata": {"user_id": "user-42"},
    }


async def test_max_tokens_comes_from_the_catalogue_or_a_default(
    gw: Gateway, anthropic_fake: FakeAnthropic
) -> None:
    await gw.chat(model="claude:claude-big", messages=HI)
    assert sent(anthropic_fake)["max_tokens"] == 32000
    await gw.chat(model="claude:claude-unknown", messages=HI)
    assert sent(anthropic_fake)["max_tokens"] == 4096


async def test_images_tools_and_a_tool_round_trip(
    gw: Gateway, anthropic_fake: FakeAnthropic
) -> None:
    ask = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Which city is this?"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ],
        }
    ]
    anthropic_fake.then(Reply(tool_call=("lookup", '{"city": "Paris"}')), Reply(text="Sunny."))
    first = await gw.chat(
        model="claude:claude-x", messages=ask, tools=TOOLS, tool_choice="required"
    )
    body = sent(anthropic_fake)
    assert body["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG.split(",")[1]},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
    ]
    assert body["tools"] == [
        {
            "name": "lookup",
            "description": "Look a city up.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.content is None
    call = choice.tool_calls[0]
    assert call["type"] == "function" and call["id"].startswith("toolu_")
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    follow_up = [
        *ask,
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    second = await gw.chat(model="claude:claude-x", messages=follow_up, tools=TOOLS)
    assert second.text == "Sunny."
    body = sent(anthropic_fake)
    assert "tool_choice" not in body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": call["id"], "name": "lookup", "input": {"city": "Paris"}},
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": call["id"], "content": "sunny"},
            {"type": "text", "text": "And tomorrow?"},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "lookup"}},
            None,
            {"type": "tool", "name": "lookup"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
async def test_tool_choice_mapping(
    gw: Gateway, anthropic_fake: FakeAnthropic, choice: Any, parallel: Any, expected: Any
) -> None:
    fields: dict[str, Any] = {"tools": TOOLS}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    await gw.chat(model="claude:claude-x", messages=HI, **fields)
    assert sent(anthropic_fake)["tool_choice"] == expected


async def test_structured_output(gw: Gateway, anthropic_fake: FakeAnthropic) -> None:
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string"}},
        "required": ["capital"],
        "additionalProperties": False,
    }
    anthropic_fake.then(Reply(text='{"capital": "Paris"}'), Reply(text='{"capital": "Rome"}'))
    out = await gw.chat(
        model="claude:claude-x",
        messages=HI,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    assert json.loads(out.text) == {"capital": "Paris"}
    assert sent(anthropic_fake)["output_config"] == {
        "format": {"type": "json_schema", "schema": schema}
    }
    await gw.chat(
        model="claude:claude-x",
        messages=[{"role": "system", "content": "Be terse."}, *HI],
        response_format={"type": "json_object"},
    )
    body = sent(anthropic_fake)
    assert "output_config" not in body
    assert body["system"].startswith("Be terse.\n\n") and "JSON object" in body["system"]


@pytest.mark.parametrize(
    "shape",
    [
        Reply(),
        Reply(crlf=True),
        Reply(comments=True),
        Reply(split=True),
        Reply(crlf=True, split=True, comments=True),
    ],
    ids=["plain", "crlf", "comments", "split", "everything"],
)
async def test_stream_survives_wire_variations(
    gw: Gateway, anthropic_fake: FakeAnthropic, shape: Reply
) -> None:
    anthropic_fake.then(shape)
    stream = await gw.stream(model="claude:claude-x", messages=HI)
    texts = [e.text async for e in stream if isinstance(e, TextDelta)]
    result = stream.final()
    assert len(texts) > 1 and "".join(texts) == shape.text == result.text
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (11, 7)
    assert result.choices[0].finish_reason == "stop"
    assert (
        stream.time_to_first_token is not None and 0 < stream.time_to_first_token <= stream.latency
    )
    body = sent(anthropic_fake)
    assert body["stream"] is True
    assert anthropic_fake.calls[-1]["headers"]["Accept"] == "text/event-stream"


async def test_streamed_tool_calls_reassemble_exactly(
    gw: Gateway, anthropic_fake: FakeAnthropic
) -> None:
    args_a = '{"city": "Paris",  "days": [1, 2, 3], "note": "\\u00e9t\\u00e9 \\"hot\\""}'
    args_b = '{"city":"Oslo"}'
    blocks = [
        {"type": "thinking", "thinking": "Two lookups.", "signature": "s"},
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "toolu_a", "name": "lookup", "input": args_a},
        {"type": "tool_use", "id": "toolu_b", "name": "lookup", "input": args_b},
    ]
    anthropic_fake.then(
        Message(blocks, "tool_use", prompt_tokens=50, completion_tokens=40, cached_tokens=10)
    )
    stream = await gw.stream(model="claude:claude-x", messages=HI, tools=TOOLS)
    events = [e async for e in stream]
    starts = [e for e in events if isinstance(e, ToolCallDelta) and e.id]
    assert [(e.index, e.id, e.name) for e in starts] == [
        (0, "toolu_a", "lookup"),
        (1, "toolu_b", "lookup"),
    ]
    result = stream.final()
    calls = result.choices[0].tool_calls
    assert [c["function"]["arguments"] for c in calls] == [args_a, args_b]
    assert result.text == "Checking both."
    assert result.choices[0].finish_reason == "tool_calls"
    usage = result.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (50, 40, 10)


async def test_unknown_events_and_block_types_are_ignored(
    gw: Gateway, anthropic_fake: FakeAnthropic
) -> None:
    future = [("content_block_wobble", {"type": "content_block_wobble", "index": 0})]
    blocks = [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        {"type": "text", "text": "Found it."},
    ]
    anthropic_fake.then(Message(blocks, extra_events=future))
    result = await (await gw.stream(model="claude:claude-x", messages=HI)).collect()
    assert result.text == "Found it." and result.choices[0].tool_calls is None


async def test_stop_reasons_map_to_finish_reasons(
    gw: Gateway, anthropic_fake: FakeAnthropic
) -> None:
    text = [{"type": "text", "text": "cut"}]
    for stop, finish in [
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
    ]:
        anthropic_fake.then(Message(text, stop), Message(text, stop))
        assert (await gw.chat(model="claude:claude-x", messages=HI)).choices[
            0
        ].finish_reason == finish
        stream = await gw.stream(model="claude:claude-x", messages=HI)
        assert (await stream.collect()).choices[0].finish_reason == finish


ERRORS = [
    (Fail(400, "messages: roles must alternate"), errors.BadRequestError),
    (Fail(400, "prompt is too long: 210000 tokens > 200000 maximum"),
     errors.ContextWindowExceededError),
    (Fail(401, "invalid x-api-key"), errors.AuthenticationError),
    (Fail(403, "not allowed"), errors.PermissionDeniedError),
    (Fail(404, "model: claude-x"), errors.NotFoundError),
    (Fail(413, "request too large"), errors.RequestTooLargeError),
    (Fail(429, "rate limited", headers={"Retry-After": "7"}), errors.RateLimitError),
    (Fail(500, "internal"), errors.UpstreamServerError),
    (Fail(529, "Overloaded"), errors.OverloadedError),
    (Raw(b"<html>bad gateway</html>", status=502, content_type="text/html"),
     errors.UpstreamServerError),
    (Raw(b"{not json"), errors.UpstreamServerError),
]  # fmt: skip


@pytest.mark.parametrize(
    ("step", "expected"),
    ERRORS,
    ids=[f"{getattr(s, 'status', 200)}-{e.__name__}" for s, e in ERRORS],
)
async def test_errors_map_to_the_hierarchy(
    gw: Gateway, anthropic_fake: FakeAnthropic, step: Any, expected: type
) -> None:
    for streaming in (False, True):
        anthropic_fake.then(step)
        with pytest.raises(errors.TurnoutError) as info:
            if streaming:
                await (await gw.stream(model="claude:claude-x", messages=HI)).collect()
            else:
                await gw.chat(model="claude:claude-x", messages=HI)
        assert type(info.value) is expected, info.value
        assert UPSTREAM_KEY not in str(info.value)
        if isinstance(step, Fail):
            assert step.message in info.value.message
        if expected is errors.RateLimitError:
            assert info.value.retry_after == 7


async def test_in_stream_error_event_and_cut(gw: Gateway, anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.then(StreamError(after=2, message="Overloaded"))
    stream = await gw.stream(model="claude:claude-x", messages=HI)
    seen: list[str] = []
    with pytest.raises(errors.OverloadedError, match="Overloaded"):
        async for event in stream:
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert "".join(seen) == "one two "

    anthropic_fake.then(Cut(keep=4))
    stream = await gw.stream(model="claude:claude-x", messages=HI)
    with pytest.raises(errors.UpstreamConnectionError):
        await stream.collect()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rate_limit_error", errors.RateLimitError),
        ("api_error", errors.UpstreamServerError),
        ("invalid_request_error", errors.BadRequestError),
    ],
)
async def test_in_stream_error_types(
    gw: Gateway, anthropic_fake: FakeAnthropic, kind: str, expected: type
) -> None:
    events = stream_events(Message([{"type": "text", "text": "a b"}]), "m")[:4]
    error = {"type": "error", "error": {"type": kind, "message": f"secret {UPSTREAM_KEY} leaked"}}
    body = b"".join(frame(n, d) for n, d in events) + frame("error", error)
    anthropic_fake.then(Raw(body, content_type="text/event-stream"))
    stream = await gw.stream(model="claude:claude-x", messages=HI)
    with pytest.raises(errors.TurnoutError) as info:
        await stream.collect()
    assert type(info.value) is expected
    assert UPSTREAM_KEY not in info.value.message and "...1234" in info.value.message


async def test_failover_from_overloaded_anthropic_to_a_second_deployment(
    anthropic_url: str, anthropic_fake: FakeAnthropic
) -> None:
    routes = [{"name": "r", "deployments": ["claude:a", "claude:b"]}]
    gateway = Gateway(Config.model_validate(config(anthropic_url, routes=routes)))
    try:
        anthropic_fake.then(Fail(529, "Overloaded"), Reply(text="from b"))
        result = await gateway.chat(model="r", messages=HI)
        assert (result.text, result.model, result.attempts) == ("from b", "b", 2)
    finally:
        await gateway.aclose()


async def test_a_missing_key_names_the_variable(anthropic_url: str, monkeypatch: Any) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    cfg = config(anthropic_url)
    del cfg["providers"]["claude"]["api_key"]
    gateway = Gateway(Config.model_validate(cfg))
    try:
        # Not sent at all (a 401 would blame the client's key): a 503 naming the variable.
        with pytest.raises(errors.MissingCredentialsError, match="ANTHROPIC_API_KEY") as info:
            await gateway.chat(model="claude:claude-x", messages=HI)
        assert info.value.status_code == 503
    finally:
        await gateway.aclose()
