"""One suite, every adapter: the same requests and the same upstream behaviours, rendered by
each vendor's fake in its own wire format, must give the same results and the same errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from turnout import errors
from turnout.types import TextDelta, ToolCallDelta

from ..fakes.script import Cut, Fail, Hang, Reply, StreamError
from .conftest import Case

ASK = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ARGS = '{"city": "Paris", "unit": "celsius"}'


def short(case: Case) -> dict[str, Any]:
    """Generation settings: tiny for the embedded model, irrelevant to fakes."""
    return {"max_tokens": 8, "temperature": 0} if case.fake is None else {"max_tokens": 64}


async def test_chat(case: Case) -> None:
    case.skip_unless_applies("chat")
    if case.fake:
        case.fake.then(Reply(text="Paris is the capital.", prompt_tokens=13, completion_tokens=5))
    result = await case.gateway.chat(model=case.model, messages=ASK, **short(case))
    assert result.choices[0].finish_reason in ("stop", "length")
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    if case.fake:
        assert result.text == "Paris is the capital."
        assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (13, 5)
        assert result.choices[0].finish_reason == "stop"
    else:
        assert result.text.strip()
    assert result.latency is not None and result.latency > 0


async def test_stream(case: Case) -> None:
    case.skip_unless_applies("stream")
    if case.fake:
        case.fake.then(Reply(text="Paris is the capital of France.", completion_tokens=6))
    stream = await case.gateway.stream(model=case.model, messages=ASK, **short(case))
    deltas = [e.text async for e in stream if isinstance(e, TextDelta)]
    result = stream.final()
    assert len(deltas) > 1, "a stream arrives in several deltas"
    assert "".join(deltas) == result.text
    assert result.time_to_first_token is not None and result.latency is not None
    assert 0 < result.time_to_first_token <= result.latency
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    if case.fake:
        assert result.text == "Paris is the capital of France."
        assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (11, 6)
        assert result.choices[0].finish_reason == "stop"


async def test_system_prompt_reaches_the_upstream(case: Case) -> None:
    case.skip_unless_applies("system_prompt")
    messages = [{"role": "system", "content": "Answer like a pirate captain."}, *ASK]
    await case.gateway.chat(model=case.model, messages=messages, **short(case))
    assert b"Answer like a pirate captain." in case.last_raw()


async def test_tool_call_round_trip(case: Case) -> None:
    case.skip_unless_applies("tool_call")
    case.scripted.then(Reply(tool_call=("get_weather", ARGS)), Reply(text="It is sunny."))
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = await case.gateway.chat(model=case.model, messages=ask, tools=TOOLS, **short(case))
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.tool_calls and len(choice.tool_calls) == 1
    call = choice.tool_calls[0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == json.loads(ARGS)
    assert call["id"]
    assert b"get_weather" in case.last_raw(), "the tool declaration reaches the upstream"

    follow_up = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 24 degrees"},
    ]
    second = await case.gateway.chat(
        model=case.model, messages=follow_up, tools=TOOLS, **short(case)
    )
    assert second.text == "It is sunny."
    sent = case.last_raw()
    assert b"sunny, 24 degrees" in sent, "the tool result reaches the upstream"
    assert b"get_weather" in sent


async def test_tool_call_streams_and_reassembles(case: Case) -> None:
    case.skip_unless_applies("tool_stream")
    case.scripted.then(Reply(tool_call=("get_weather", ARGS)))
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    stream = await case.gateway.stream(model=case.model, messages=ask, tools=TOOLS, **short(case))
    pieces = [e async for e in stream if isinstance(e, ToolCallDelta)]
    result = stream.final()
    assert pieces, "tool-call arguments arrive as stream events"
    assert any(p.name == "get_weather" for p in pieces)
    call = (result.choices[0].tool_calls or [])[0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == json.loads(ARGS)
    assert result.choices[0].finish_reason == "tool_calls"


async def test_json_output(case: Case) -> None:
    case.skip_unless_applies("json")
    if case.fake:
        case.fake.then(Reply(text='{"capital": "Paris"}'))
    result = await case.gateway.chat(
        model=case.model,
        messages=[{"role": "user", "content": "Reply in JSON: the capital of France."}],
        response_format={"type": "json_object"},
        **short(case),
    )
    if case.fake:
        assert json.loads(result.text) == {"capital": "Paris"}
        assert case.vendor.asks_json is not None, "say how this vendor's body asks for JSON"
        assert case.vendor.asks_json(case.last_body())
    else:
        assert result.text.lstrip().startswith("{")


async def test_cached_tokens_are_counted(case: Case) -> None:
    case.skip_unless_applies("cached_tokens")
    case.scripted.then(Reply(prompt_tokens=40, cached_tokens=32), Reply(cached_tokens=5))
    result = await case.gateway.chat(model=case.model, messages=ASK)
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (40, 32)
    stream = await case.gateway.stream(model=case.model, messages=ASK)
    assert (await stream.collect()).usage.cached_tokens == 5


ERRORS = [
    (Fail(400, "temperature: must be at most 2", type="invalid_request_error"),
     errors.BadRequestError),
    (Fail(400, "prompt is too long: 250000 tokens > 200000 maximum context length"),
     errors.ContextWindowExceededError),
    (Fail(401, "invalid api key", type="authentication_error"), errors.AuthenticationError),
    (Fail(403, "not allowed for this key", type="permission_error"), errors.PermissionDeniedError),
    (Fail(404, "model not found", type="not_found_error"), errors.NotFoundError),
    (Fail(429, "slow down", headers={"Retry-After": "3"}, type="rate_limit_error"),
     errors.RateLimitError),
    (Fail(500, "internal error", type="api_error"), errors.UpstreamServerError),
    (Fail(0, "overloaded", type="overloaded_error"), errors.OverloadedError),
]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("fail", "expected"), ERRORS, ids=[f"{f.status or 'busy'}-{e.__name__}" for f, e in ERRORS]
)
async def test_errors_map_to_the_hierarchy(
    case: Case, fail: Fail, expected: type[errors.TurnoutError], stream: bool
) -> None:
    case.skip_unless_applies("errors")
    if fail.status == 0:
        fail = Fail(case.vendor.overloaded_status, fail.message, type=fail.type)
    case.scripted.then(fail)
    with pytest.raises(errors.TurnoutError) as info:
        if stream:
            await (await case.gateway.stream(model=case.model, messages=ASK)).collect()
        else:
            await case.gateway.chat(model=case.model, messages=ASK)
    err = info.value
    assert type(err) is expected, f"{fail.status} gave {type(err).__name__}: {err}"
    assert err.provider == "p"
    if isinstance(err, errors.RateLimitError):
        assert err.retry_after == 3
    assert fail.message in err.message or fail.status >= 500
    assert "sk-conformance" not in str(err)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_timeout(case: Case, stream: bool) -> None:
    case.skip_unless_applies("timeout")
    gateway = case.gateway_with(timeouts={"connect": 1, "first_token": 0.3, "total": 0.3})
    case.scripted.then(Hang(5))
    try:
        with pytest.raises(errors.UpstreamTimeoutError):
            if stream:
                await (await gateway.stream(model=case.model, messages=ASK)).collect()
            else:
                await gateway.chat(model=case.model, messages=ASK)
    finally:
        await gateway.aclose()


@pytest.mark.parametrize("step", [Cut(keep=3), StreamError(after=2)], ids=["cut", "error-event"])
async def test_mid_stream_failure(case: Case, step: Cut | StreamError) -> None:
    case.skip_unless_applies("mid_stream")
    case.scripted.then(step)
    stream = await case.gateway.stream(model=case.model, messages=ASK)
    seen: list[str] = []
    with pytest.raises(errors.TurnoutError) as info:
        async for event in stream:
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert "".join(seen), "text before the failure reached the caller"
    assert info.value.retryable or isinstance(info.value, errors.UpstreamServerError)
    if isinstance(step, StreamError):
        assert step.message in info.value.message
