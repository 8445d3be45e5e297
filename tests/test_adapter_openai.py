"""The OpenAI-compatible adapter against the fake upstream on loopback: what it sends
validates against the OpenAI spec, and what comes back (whole, streamed, or failed) is read
right."""

from __future__ import annotations

import pytest

from turnout import errors
from turnout.gateway import Gateway
from turnout.types import TextDelta

from .conftest import UPSTREAM_KEY, make_config, openai_validator
from .fakes.openai_upstream import Cut, Fail, FakeOpenAI, Raw, Reply, completion

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def gw(fake_url: str):
    gateway = Gateway(make_config(fake_url, retry={"retries": 0}))
    yield gateway
    await gateway.aclose()


async def test_chat_sends_a_valid_request_and_reads_the_result(
    gw: Gateway, fake: FakeOpenAI
) -> None:
    fake.then(Reply(text="Bonjour.", prompt_tokens=9, completion_tokens=2, cached_tokens=4))
    result = await gw.chat(
        model="single",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        temperature=0.2,
        max_completion_tokens=50,
        seed=7,
        stop=["\n\n"],
        response_format={"type": "json_object"},
        metadata={"trace": "abc"},  # unknown to our model: passes through to OpenAI hosts
    )
    assert result.text == "Bonjour."
    assert (
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
        result.usage.cached_tokens,
    ) == (9, 2, 4)
    assert (result.provider, result.model, result.deployment) == (
        "primary",
        "model-a",
        "primary:model-a",
    )
    call = fake.calls[-1]
    assert call["path"] == "/v1/chat/completions"
    assert call["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert call["body"]["model"] == "model-a"
    assert call["body"]["metadata"] == {"trace": "abc"}
    assert "stream" not in call["body"]
    assert list(openai_validator("CreateChatCompletionRequest").iter_errors(call["body"])) == []


async def test_tool_call_round_trip(gw: Gateway, fake: FakeOpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    fake.then(Reply(tool_call=("lookup", '{"city": "Paris"}')))
    first = await gw.chat(model="single", messages=HI, tools=tools, tool_choice="required")
    call = first.choices[0].tool_calls[0]
    assert call["function"] == {"name": "lookup", "arguments": '{"city": "Paris"}'}
    assert first.choices[0].finish_reason == "tool_calls"
    follow_up = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    await gw.chat(model="single", messages=follow_up, tools=tools)
    sent = fake.calls[-1]["body"]
    assert sent["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_fake_1",
        "content": "sunny",
    }
    assert list(openai_validator("CreateChatCompletionRequest").iter_errors(sent)) == []


@pytest.mark.parametrize(
    "shape",
    [
        Reply(),
        Reply(crlf=True),
        Reply(comments=True),
        Reply(split=True),
        Reply(done=False),
        Reply(crlf=True, comments=True, split=True, done=False),
    ],
    ids=["plain", "crlf", "comments", "split", "no-done", "everything"],
)
async def test_stream_survives_wire_variations(gw: Gateway, fake: FakeOpenAI, shape: Reply) -> None:
    fake.then(shape)
    stream = await gw.stream(model="single", messages=HI)
    texts = [e.text async for e in stream if isinstance(e, TextDelta)]
    result = stream.final()
    assert "".join(texts) == shape.text == result.text
    assert result.usage.completion_tokens == shape.completion_tokens
    assert result.choices[0].finish_reason == "stop"
    assert stream.time_to_first_token is not None and stream.time_to_first_token > 0
    body = fake.calls[-1]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert list(openai_validator("CreateChatCompletionRequest").iter_errors(body)) == []


async def test_streamed_tool_call_arguments_reassemble(gw: Gateway, fake: FakeOpenAI) -> None:
    args = '{"city": "Paris", "units": "metric", "days": [1, 2, 3]}'
    fake.then(Reply(tool_call=("forecast", args), split=True))
    stream = await gw.stream(model="single", messages=HI)
    result = await stream.collect()
    assert result.choices[0].tool_calls[0]["function"] == {"name": "forecast", "arguments": args}
    assert result.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Fail(401, "bad key"), errors.AuthenticationError),
        (Fail(403, "not allowed"), errors.PermissionDeniedError),
        (Fail(404, "no such model"), errors.NotFoundError),
        (
            Fail(
                400,
                "This model's maximum context length is 8192 tokens",
                code="context_length_exceeded",
            ),
            errors.ContextWindowExceededError,
        ),
        (Fail(400, "temperature must be <= 2"), errors.BadRequestError),
        (Fail(429, "slow down", headers={"Retry-After": "7"}), errors.RateLimitError),
        (Fail(500, "boom"), errors.UpstreamServerError),
        (Fail(503, "busy"), errors.OverloadedError),
        (
            Raw(b"<html>bad gateway</html>", status=502, content_type="text/html"),
            errors.UpstreamServerError,
        ),
        (Raw(b"{not json"), errors.UpstreamServerError),
    ],
    ids=lambda v: getattr(v, "status", None) or getattr(v, "__name__", ""),
)
async def test_errors_map_to_the_hierarchy(
    gw: Gateway, fake: FakeOpenAI, reply: object, expected: type
) -> None:
    for streaming in (False, True):
        fake.then(reply)
        with pytest.raises(expected) as info:
            if streaming:
                await (await gw.stream(model="single", messages=HI)).collect()
            else:
                await gw.chat(model="single", messages=HI)
        assert type(info.value) is expected
        assert UPSTREAM_KEY not in str(info.value)
        if expected is errors.RateLimitError:
            assert info.value.retry_after == 7


async def test_connection_refused_and_mid_stream_cut(gw: Gateway, fake: FakeOpenAI) -> None:
    with pytest.raises(errors.UpstreamConnectionError):
        await gw.chat(model="down:any", messages=HI)
    fake.then(Cut(keep=2))
    stream = await gw.stream(model="single", messages=HI)
    with pytest.raises((errors.UpstreamConnectionError, errors.UpstreamServerError)):
        await stream.collect()


async def test_upstream_that_ignores_stream_flag_is_replayed(gw: Gateway, fake: FakeOpenAI) -> None:
    import orjson

    fake.then(Raw(orjson.dumps(completion(Reply(text="whole answer"), "m"))))
    stream = await gw.stream(model="single", messages=HI)
    assert (await stream.collect()).text == "whole answer"
