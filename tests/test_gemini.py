"""The fake Gemini upstream is faithful (the official google-genai SDK parses what it sends,
whole, streamed, with tool calls and errors; its bodies validate against the Gemini spec), and
the gemini adapter works against it end to end: what it sends validates against the spec, what
comes back is read right."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from turnout import errors
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.types import TextDelta, ToolCallDelta

from .fakes.gemini_upstream import SIGNATURE, FakeGemini, chunks, whole
from .fakes.script import Cut, Fail, Hang, Reply, StreamError
from .fakes.servers import fake_fixtures
from .specs import errors_of

SPEC = "gemini-native.openapi.json"
KEY = "AIza-fake-gemini-key-wxyz"
HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


server, fake, url = fake_fixtures(FakeGemini)


# --- the SDK proves the fake -------------------------------------------------------------


def sdk(url: str) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(
            base_url=url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


@pytest.mark.parametrize(
    "reply",
    [
        Reply(text="Bonjour tout le monde", cached_tokens=4),
        Reply(tool_call=("get_weather", '{"city": "Paris"}')),
    ],
)
def test_sdk_parses_whole_answers(fake: FakeGemini, url: str, reply: Reply) -> None:
    fake.then(reply)
    client = sdk(url)
    out = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert out.usage_metadata is not None
    assert out.usage_metadata.prompt_token_count == reply.prompt_tokens
    assert out.usage_metadata.candidates_token_count == reply.completion_tokens
    if reply.tool_call:
        call = (out.function_calls or [])[0]
        assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
        part = out.candidates[0].content.parts[0]
        assert base64.b64encode(part.thought_signature).decode() == SIGNATURE
    else:
        assert out.text == reply.text
        assert out.usage_metadata.cached_content_token_count == 4
    assert out.candidates is not None and out.candidates[0].finish_reason.value == "STOP"
    assert errors_of(SPEC, "GenerateContentResponse", whole(reply, "m")) == []
    call = fake.calls[-1]
    assert call["path"] == "/v1/models/gemini-2.5-flash:generateContent"
    assert call["headers"]["x-goog-api-key"] == KEY
    # The SDK's own request is valid under the spec too, so the oracle fits real traffic.
    assert errors_of(SPEC, "GenerateContentRequest", call["body"]) == []


@pytest.mark.parametrize(
    "reply", [Reply(text="one two three"), Reply(tool_call=("get_weather", '{"city": "Oslo"}'))]
)
def test_sdk_parses_streams(fake: FakeGemini, url: str, reply: Reply) -> None:
    fake.then(reply)
    client = sdk(url)
    got = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert fake.calls[-1]["query"] == {"alt": "sse"}
    assert got[-1].usage_metadata is not None
    assert got[-1].usage_metadata.candidates_token_count == reply.completion_tokens
    if reply.tool_call:
        calls = [c for chunk in got for c in chunk.function_calls or ()]
        assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Oslo"})]
    else:
        assert "".join(chunk.text or "" for chunk in got) == reply.text
    for chunk in chunks(reply, "m"):
        assert errors_of(SPEC, "GenerateContentResponse", chunk) == []


@pytest.mark.parametrize(
    ("status", "rpc"),
    [
        (400, "INVALID_ARGUMENT"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (503, "UNAVAILABLE"),
    ],
)
def test_sdk_reads_errors(fake: FakeGemini, url: str, status: int, rpc: str) -> None:
    from google.genai import errors as genai_errors

    fake.then(Fail(status, "nope", headers={"Retry-After": "7"} if status == 429 else {}))
    client = sdk(url)
    with pytest.raises(genai_errors.APIError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (info.value.code, info.value.status, info.value.message) == (status, rpc, "nope")
    if status == 429:
        assert info.value.details["error"]["details"][0]["retryDelay"] == "7s"


def test_sdk_reads_mid_stream_error(fake: FakeGemini, url: str) -> None:
    from google.genai import errors as genai_errors

    fake.then(StreamError(after=2, message="the model broke"))
    got = []
    client = sdk(url)
    with pytest.raises(genai_errors.APIError) as info:
        for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"):
            got.append(chunk.text)
    assert got == ["one ", "two "]
    assert (info.value.code, info.value.message) == (500, "the model broke")


# --- the adapter against the fake --------------------------------------------------------


def config(url: str, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "providers": {"gem": {"host": "gemini", "base_url": url + "/v1beta", "api_key": KEY}},
        "routes": [{"name": "g", "deployments": ["gem:gemini-2.5-flash"]}],
        "retry": {"retries": 0},
        "timeouts": {"connect": 2, "first_token": 1, "total": 3},
        "server": {"preload_local": False},
    }
    data.update(extra)
    return Config.model_validate(data)


@pytest.fixture
async def gw(url: str):
    gateway = Gateway(config(url))
    yield gateway
    await gateway.aclose()


async def test_chat_sends_a_valid_request_and_reads_the_answer(
    gw: Gateway, fake: FakeGemini
) -> None:
    fake.then(Reply(text="Bonjour.", prompt_tokens=9, completion_tokens=2, cached_tokens=4))
    result = await gw.chat(
        model="g",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        temperature=0.2,
        max_tokens=50,
        stop=["\n\n"],
    )
    assert result.text == "Bonjour." and result.choices[0].finish_reason == "stop"
    assert (
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
        result.usage.cached_tokens,
    ) == (9, 2, 4)
    assert (result.provider, result.model) == ("gem", "gemini-2.5-flash")
    call = fake.calls[-1]
    assert call["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert call["headers"]["x-goog-api-key"] == KEY
    assert call["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert call["body"]["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 50,
        "stopSequences": ["\n\n"],
    }
    assert errors_of(SPEC, "GenerateContentRequest", call["body"]) == []


async def test_stream_text_usage_and_time_to_first_token(gw: Gateway, fake: FakeGemini) -> None:
    fake.then(Reply(text="one two three", prompt_tokens=5, completion_tokens=3, chunk_delay=0.01))
    stream = await gw.stream(model="g", messages=HI)
    texts = [e.text async for e in stream if isinstance(e, TextDelta)]
    final = stream.final()
    assert "".join(texts) == "one two three" and len(texts) == 3
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (5, 3)
    assert final.time_to_first_token is not None and final.latency is not None
    assert final.time_to_first_token <= final.latency
    assert fake.calls[-1]["query"] == {"alt": "sse"}
    assert errors_of(SPEC, "GenerateContentRequest", fake.calls[-1]["body"]) == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_call_round_trip(gw: Gateway, fake: FakeGemini, streamed: bool) -> None:
    fake.then(Reply(tool_call=("get_weather", '{"city": "Paris"}')), Reply(text="Sunny."))
    if streamed:
        stream = await gw.stream(model="g", messages=HI, tools=[WEATHER], tool_choice="required")
        assert any([isinstance(e, ToolCallDelta) async for e in stream])
        first = stream.final()
    else:
        first = await gw.chat(model="g", messages=HI, tools=[WEATHER], tool_choice="required")
    call = (first.choices[0].tool_calls or [])[0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert call["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    assert first.choices[0].finish_reason == "tool_calls"
    follow_up = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    second = await gw.chat(model="g", messages=follow_up, tools=[WEATHER])
    assert second.text == "Sunny."
    body = fake.calls[-1]["body"]
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": SIGNATURE,
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}
            ],
        },
    ]
    assert errors_of(SPEC, "GenerateContentRequest", body) == []


async def test_json_output(gw: Gateway, fake: FakeGemini) -> None:
    fake.then(Reply(text='{"city": "Paris"}'))
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "c",
            "schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    result = await gw.chat(model="g", messages=HI, response_format=fmt)
    assert orjson.loads(result.text) == {"city": "Paris"}
    config_sent = fake.calls[-1]["body"]["generationConfig"]
    assert config_sent["responseMimeType"] == "application/json"
    assert config_sent["responseSchema"] == {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}},
    }


@pytest.mark.parametrize(
    ("step", "cls"),
    [
        (Fail(400, "bad"), errors.BadRequestError),
        (Fail(401, "who"), errors.AuthenticationError),
        (Fail(403, "no"), errors.PermissionDeniedError),
        (Fail(404, "where"), errors.NotFoundError),
        (Fail(429, "slow", headers={"Retry-After": "2"}), errors.RateLimitError),
        (Fail(500, "oops"), errors.UpstreamServerError),
        (Fail(503, "busy"), errors.OverloadedError),
        (Fail(529, "busy"), errors.OverloadedError),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_errors_map(
    gw: Gateway, fake: FakeGemini, step: Fail, cls: type, streamed: bool
) -> None:
    fake.then(step)
    with pytest.raises(cls) as info:
        if streamed:
            await gw.stream(model="g", messages=HI)
        else:
            await gw.chat(model="g", messages=HI)
    assert step.message in info.value.message
    if isinstance(info.value, errors.RateLimitError):
        assert info.value.retry_after == 2


async def test_timeout_cut_and_in_stream_error(gw: Gateway, fake: FakeGemini) -> None:
    fake.then(Hang(5))
    with pytest.raises(errors.UpstreamTimeoutError):
        await gw.stream(model="g", messages=HI)
    fake.then(Cut(keep=2))
    stream = await gw.stream(model="g", messages=HI)
    with pytest.raises(errors.UpstreamConnectionError):
        async for _ in stream:
            pass
    fake.then(StreamError(after=1, message="the model broke"))
    stream = await gw.stream(model="g", messages=HI)
    with pytest.raises(errors.UpstreamServerError, match="the model broke"):
        async for _ in stream:
            pass


async def test_thought_signature_survives_the_openai_server_round_trip(
    url: str, fake: FakeGemini, serve: Any
) -> None:
    """An OpenAI client of the gateway gets Gemini's signature as ``extra_content`` (whole and
    streamed), sends the assistant message back as it got it, and Gemini receives it again."""
    import openai

    base = serve(config(url))
    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
    fake.then(
        Reply(tool_call=("get_weather", '{"city": "Paris"}')),
        Reply(tool_call=("get_weather", '{"city": "Oslo"}')),
        Reply(text="Sunny."),
    )
    whole_answer = client.chat.completions.create(model="g", messages=HI, tools=[WEATHER])
    streamed = list(
        client.chat.completions.create(model="g", messages=HI, tools=[WEATHER], stream=True)
    )
    pieces = [
        c.choices[0].delta.tool_calls[0]
        for c in streamed
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert pieces[0].model_extra["extra_content"] == {"google": {"thought_signature": SIGNATURE}}
    message = whole_answer.choices[0].message
    assert (
        message.tool_calls[0].model_extra["extra_content"]["google"]["thought_signature"]
        == SIGNATURE
    )
    follow_up = [
        *HI,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"},
    ]
    assert (
        client.chat.completions.create(model="g", messages=follow_up, tools=[WEATHER])
        .choices[0]
        .message.content
        == "Sunny."
    )
    sent = fake.calls[-1]["body"]["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == SIGNATURE
    client.close()
