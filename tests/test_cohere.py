"""The fake Cohere upstream is faithful (the official cohere SDK's ClientV2 parses what it
sends, whole, streamed, with tool calls and errors), and the cohere_chat adapter works against
it end to end. With no Cohere spec file, the requests the adapter sends are validated against
the SDK's own (validating) pydantic types for messages, tools and response formats."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from turnout import errors
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.types import TextDelta, ToolCallDelta

from .fakes.cohere_upstream import TEMPLATE_TOKENS, FakeCohere
from .fakes.script import Cut, Fail, Hang, Reply, StreamError
from .fakes.servers import fake_fixtures

KEY = "co-fake-cohere-key-wxyz"
HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


server, fake, url = fake_fixtures(FakeCohere)


def check_request(body: dict[str, Any]) -> None:
    """What Cohere's SDK would accept as the same request (its types validate)."""
    import pydantic
    from cohere import ChatMessageV2, ResponseFormatV2, ToolV2

    for m in body["messages"]:
        pydantic.TypeAdapter(ChatMessageV2).validate_python(m)
    for t in body.get("tools") or ():
        pydantic.TypeAdapter(ToolV2).validate_python(t)
    if "response_format" in body:
        pydantic.TypeAdapter(ResponseFormatV2).validate_python(body["response_format"])
    assert body.get("tool_choice") in (None, "REQUIRED", "NONE")
    assert isinstance(body["model"], str) and isinstance(body["stream"], bool)


# --- the SDK proves the fake -------------------------------------------------------------


@pytest.fixture
def client(url: str) -> Iterator[Any]:
    import cohere

    c = cohere.ClientV2(api_key=KEY, base_url=url)
    yield c
    c._client_wrapper.httpx_client.httpx_client.close()


@pytest.mark.parametrize(
    "reply",
    [
        Reply(text="Bonjour tout le monde", cached_tokens=2),
        Reply(tool_call=("get_weather", '{"city": "Paris"}')),
    ],
)
def test_sdk_parses_whole_answers(fake: FakeCohere, client: Any, reply: Reply) -> None:
    fake.then(reply)
    out = client.chat(model="command-a-03-2025", messages=HI)
    assert out.usage.billed_units.input_tokens == reply.prompt_tokens
    assert out.usage.tokens.input_tokens == reply.prompt_tokens + TEMPLATE_TOKENS
    if reply.tool_call:
        assert out.finish_reason == "TOOL_CALL"
        call = out.message.tool_calls[0]
        assert (call.function.name, call.function.arguments) == reply.tool_call
        assert out.message.tool_plan
    else:
        assert out.finish_reason == "COMPLETE"
        assert out.message.content[0].text == reply.text
        assert out.usage.cached_tokens == 2
    call = fake.calls[-1]
    assert call["path"] == "/v2/chat" and call["headers"]["Authorization"] == f"Bearer {KEY}"
    check_request(call["body"])  # the oracle accepts the SDK's own request


@pytest.mark.parametrize(
    "reply", [Reply(text="one two three"), Reply(tool_call=("get_weather", '{"city": "Oslo"}'))]
)
def test_sdk_parses_streams(fake: FakeCohere, client: Any, reply: Reply) -> None:
    fake.then(reply)
    got = list(client.chat_stream(model="command-a-03-2025", messages=HI))
    types = [e.type for e in got]
    assert types[0] == "message-start" and types[-1] == "message-end"
    assert got[-1].delta.usage.billed_units.output_tokens == reply.completion_tokens
    if reply.tool_call:
        assert {"tool-plan-delta", "tool-call-start", "tool-call-delta", "tool-call-end"} <= set(
            types
        )
        start = next(e for e in got if e.type == "tool-call-start")
        assert start.delta.message.tool_calls.function.name == "get_weather"
        args = "".join(
            e.delta.message.tool_calls.function.arguments
            for e in got
            if e.type == "tool-call-delta"
        )
        assert args == reply.tool_call[1]
        assert got[-1].delta.finish_reason == "TOOL_CALL"
    else:
        text = "".join(e.delta.message.content.text for e in got if e.type == "content-delta")
        assert text == reply.text and got[-1].delta.finish_reason == "COMPLETE"
    assert fake.calls[-1]["body"]["stream"] is True


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, "BadRequestError"),
        (401, "UnauthorizedError"),
        (404, "NotFoundError"),
        (429, "TooManyRequestsError"),
        (498, "InvalidTokenError"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailableError"),
    ],
)
def test_sdk_reads_errors(fake: FakeCohere, client: Any, status: int, exc: str) -> None:
    import cohere

    fake.then(Fail(status, "nope"))
    with pytest.raises(getattr(cohere, exc)) as info:
        client.chat(model="command-a-03-2025", messages=HI, request_options={"max_retries": 0})
    assert info.value.status_code == status and info.value.body["message"] == "nope"


def test_sdk_reads_failed_generation_mid_stream(fake: FakeCohere, client: Any) -> None:
    fake.then(StreamError(after=2, message="generation failed upstream"))
    got = list(client.chat_stream(model="command-a-03-2025", messages=HI))
    text = "".join(e.delta.message.content.text for e in got if e.type == "content-delta")
    assert text == "one two "
    assert (got[-1].type, got[-1].delta.finish_reason, got[-1].delta.error) == (
        "message-end",
        "ERROR",
        "generation failed upstream",
    )


# --- the adapter against the fake --------------------------------------------------------


@pytest.fixture
async def gw(url: str):
    config = Config.model_validate(
        {
            "providers": {"co": {"host": "cohere", "base_url": url, "api_key": KEY}},
            "routes": [{"name": "c", "deployments": ["co:command-a-03-2025"]}],
            "retry": {"retries": 0},
            "timeouts": {"connect": 2, "first_token": 1, "total": 3},
            "server": {"preload_local": False},
        }
    )
    gateway = Gateway(config)
    yield gateway
    await gateway.aclose()


async def test_chat_sends_a_valid_request_and_reads_billed_usage(
    gw: Gateway, fake: FakeCohere
) -> None:
    fake.then(Reply(text="Bonjour.", prompt_tokens=9, completion_tokens=2))
    result = await gw.chat(
        model="c",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        max_tokens=50,
        top_p=0.5,
    )
    assert result.text == "Bonjour." and result.choices[0].finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (9, 2)
    call = fake.calls[-1]
    assert call["path"] == "/v2/chat" and call["headers"]["Authorization"] == f"Bearer {KEY}"
    assert call["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (call["body"]["max_tokens"], call["body"]["p"]) == (50, 0.5)
    check_request(call["body"])


async def test_stream_text_usage_and_time_to_first_token(gw: Gateway, fake: FakeCohere) -> None:
    fake.then(Reply(text="one two three", prompt_tokens=5, completion_tokens=3, chunk_delay=0.01))
    stream = await gw.stream(model="c", messages=HI)
    texts = [e.text async for e in stream if isinstance(e, TextDelta)]
    final = stream.final()
    assert "".join(texts) == "one two three" and len(texts) == 3
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (5, 3)
    assert final.time_to_first_token is not None and final.latency is not None
    assert final.time_to_first_token <= final.latency


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_call_round_trip(gw: Gateway, fake: FakeCohere, streamed: bool) -> None:
    fake.then(Reply(tool_call=("get_weather", '{"city": "Paris"}')), Reply(text="Sunny."))
    if streamed:
        stream = await gw.stream(model="c", messages=HI, tools=[WEATHER], tool_choice="required")
        assert any([isinstance(e, ToolCallDelta) async for e in stream])
        first = stream.final()
    else:
        first = await gw.chat(model="c", messages=HI, tools=[WEATHER], tool_choice="required")
    call = (first.choices[0].tool_calls or [])[0]
    assert call["id"] == "get_weather_fake1"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert first.choices[0].finish_reason == "tool_calls"
    assert fake.calls[-1]["body"]["tool_choice"] == "REQUIRED"
    follow_up = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    assert (await gw.chat(model="c", messages=follow_up, tools=[WEATHER])).text == "Sunny."
    sent = fake.calls[-1]["body"]
    assert sent["messages"][2] == {
        "role": "tool",
        "tool_call_id": "get_weather_fake1",
        "content": "sunny",
    }
    check_request(sent)


async def test_json_output(gw: Gateway, fake: FakeCohere) -> None:
    fake.then(Reply(text='{"age": 22}'))
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    result = await gw.chat(model="c", messages=HI, response_format=fmt)
    assert orjson.loads(result.text) == {"age": 22}
    assert fake.calls[-1]["body"]["response_format"] == {
        "type": "json_object",
        "json_schema": schema,
    }
    check_request(fake.calls[-1]["body"])


@pytest.mark.parametrize(
    ("step", "cls"),
    [
        (Fail(400, "bad"), errors.BadRequestError),
        (Fail(401, "who"), errors.AuthenticationError),
        (Fail(403, "no"), errors.PermissionDeniedError),
        (Fail(404, "model 'x' not found"), errors.NotFoundError),
        (Fail(429, "slow", headers={"Retry-After": "2"}), errors.RateLimitError),
        (Fail(500, "oops"), errors.UpstreamServerError),
        (Fail(529, "busy"), errors.OverloadedError),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_errors_map(
    gw: Gateway, fake: FakeCohere, step: Fail, cls: type, streamed: bool
) -> None:
    fake.then(step)
    with pytest.raises(cls) as info:
        if streamed:
            await gw.stream(model="c", messages=HI)
        else:
            await gw.chat(model="c", messages=HI)
    assert info.value.message == step.message
    if isinstance(info.value, errors.RateLimitError):
        assert info.value.retry_after == 2


async def test_timeout_cut_and_failed_generation(gw: Gateway, fake: FakeCohere) -> None:
    fake.then(Hang(5))
    with pytest.raises(errors.UpstreamTimeoutError):
        await gw.stream(model="c", messages=HI)
    fake.then(Cut(keep=4))
    stream = await gw.stream(model="c", messages=HI)
    with pytest.raises(errors.UpstreamConnectionError):
        async for _ in stream:
            pass
    fake.then(StreamError(after=1, message="generation failed upstream"))
    stream = await gw.stream(model="c", messages=HI)
    with pytest.raises(errors.UpstreamServerError, match="generation failed upstream"):
        async for _ in stream:
            pass
