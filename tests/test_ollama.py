"""The fake Ollama server is faithful (the official ollama SDK parses what it sends, whole,
streamed, with tool calls and errors; its bodies validate against the Ollama spec), and the
ollama_chat adapter works against it end to end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from turnout import errors
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.types import TextDelta, ToolCallDelta

from .fakes.ollama_upstream import FakeOllama, lines, whole
from .fakes.script import Cut, Fail, Hang, Reply, StreamError
from .fakes.servers import fake_fixtures
from .specs import errors_of

SPEC = "ollama-openapi.yaml"
HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


server, fake, url = fake_fixtures(FakeOllama)


# --- the SDK proves the fake -------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[Any]:
    import ollama

    made: list[ollama.Client] = []

    def make(url: str) -> ollama.Client:
        made.append(ollama.Client(host=url))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.mark.parametrize(
    "reply", [Reply(text="Hello there"), Reply(tool_call=("get_weather", '{"city": "Tokyo"}'))]
)
def test_sdk_parses_whole_answers(fake: FakeOllama, url: str, client: Any, reply: Reply) -> None:

    fake.then(reply)
    out = client(url).chat(model="llama3.2", messages=HI, stream=False)
    assert (out.done, out.done_reason) == (True, "stop")
    assert (out.prompt_eval_count, out.eval_count) == (reply.prompt_tokens, reply.completion_tokens)
    if reply.tool_call:
        call = (out.message.tool_calls or [])[0]
        assert (call.function.name, dict(call.function.arguments)) == (
            "get_weather",
            {"city": "Tokyo"},
        )
    else:
        assert out.message.content == reply.text
    assert errors_of(SPEC, "ChatResponse", whole(reply, "m")) == []
    assert fake.calls[-1]["body"]["stream"] is False
    # The SDK's own request is valid under the spec too, so the oracle fits real traffic.
    assert errors_of(SPEC, "ChatRequest", fake.calls[-1]["body"]) == []


@pytest.mark.parametrize(
    "reply", [Reply(text="one two three"), Reply(tool_call=("get_weather", '{"city": "Oslo"}'))]
)
def test_sdk_parses_streams(fake: FakeOllama, url: str, client: Any, reply: Reply) -> None:

    fake.then(reply)
    parts = list(client(url).chat(model="llama3.2", messages=HI, stream=True))
    assert parts[-1].done and parts[-1].eval_count == reply.completion_tokens
    if reply.tool_call:
        calls = [c for p in parts for c in p.message.tool_calls or ()]
        assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
            ("get_weather", {"city": "Oslo"})
        ]
    else:
        assert "".join(p.message.content or "" for p in parts) == reply.text
    for line in lines(reply, "m"):
        assert errors_of(SPEC, "ChatStreamEvent", line) == []


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_sdk_reads_errors(fake: FakeOllama, url: str, client: Any, status: int) -> None:
    import ollama

    fake.then(Fail(status, "nope"))
    with pytest.raises(ollama.ResponseError) as info:
        client(url).chat(model="llama3.2", messages=HI, stream=False)
    assert (info.value.status_code, info.value.error) == (status, "nope")


def test_sdk_reads_mid_stream_error(fake: FakeOllama, url: str, client: Any) -> None:
    import ollama

    fake.then(StreamError(after=2, message="llama runner crashed"))
    got = []
    with pytest.raises(ollama.ResponseError, match="llama runner crashed"):
        for part in client(url).chat(model="llama3.2", messages=HI, stream=True):
            got.append(part.message.content)
    assert got == ["one ", "two "]


# --- the adapter against the fake --------------------------------------------------------


def config(url: str) -> Config:
    return Config.model_validate(
        {
            "providers": {"box": {"host": "ollama", "settings": {"endpoint": url}}},
            "routes": [{"name": "o", "deployments": ["box:llama3.2:3b"]}],
            "retry": {"retries": 0},
            "timeouts": {"connect": 2, "first_token": 1, "total": 3},
            "server": {"preload_local": False},
        }
    )


@pytest.fixture
async def gw(url: str):
    gateway = Gateway(config(url))
    yield gateway
    await gateway.aclose()


async def test_chat_sends_a_valid_request_and_reads_the_answer(
    gw: Gateway, fake: FakeOllama
) -> None:
    fake.then(Reply(text="Bonjour.", prompt_tokens=9, completion_tokens=2))
    result = await gw.chat(
        model="o",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        max_tokens=50,
        temperature=0,
    )
    assert result.text == "Bonjour." and result.choices[0].finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (9, 2)
    call = fake.calls[-1]
    assert call["path"] == "/api/chat"
    assert call["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert call["body"]["options"] == {"num_predict": 50, "temperature": 0}
    assert errors_of(SPEC, "ChatRequest", call["body"]) == []


async def test_stream_text_usage_and_time_to_first_token(gw: Gateway, fake: FakeOllama) -> None:
    fake.then(Reply(text="one two three", prompt_tokens=5, completion_tokens=3, chunk_delay=0.01))
    stream = await gw.stream(model="o", messages=HI)
    texts = [e.text async for e in stream if isinstance(e, TextDelta)]
    final = stream.final()
    assert "".join(texts) == "one two three" and len(texts) == 3
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (5, 3)
    assert final.time_to_first_token is not None and final.latency is not None
    assert final.time_to_first_token <= final.latency
    assert fake.calls[-1]["body"]["stream"] is True


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_call_round_trip(gw: Gateway, fake: FakeOllama, streamed: bool) -> None:
    fake.then(Reply(tool_call=("get_weather", '{"city": "Paris"}')), Reply(text="Sunny."))
    if streamed:
        stream = await gw.stream(model="o", messages=HI, tools=[WEATHER])
        assert any([isinstance(e, ToolCallDelta) async for e in stream])
        first = stream.final()
    else:
        first = await gw.chat(model="o", messages=HI, tools=[WEATHER])
    call = (first.choices[0].tool_calls or [])[0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert first.choices[0].finish_reason == "tool_calls"
    follow_up = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    assert (await gw.chat(model="o", messages=follow_up, tools=[WEATHER])).text == "Sunny."
    sent = fake.calls[-1]["body"]["messages"]
    assert sent[1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
    assert errors_of(SPEC, "ChatRequest", fake.calls[-1]["body"]) == []


async def test_json_output(gw: Gateway, fake: FakeOllama) -> None:
    fake.then(Reply(text='{"age": 22}'))
    result = await gw.chat(model="o", messages=HI, response_format={"type": "json_object"})
    assert orjson.loads(result.text) == {"age": 22}
    assert fake.calls[-1]["body"]["format"] == "json"


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
    gw: Gateway, fake: FakeOllama, step: Fail, cls: type, streamed: bool
) -> None:
    fake.then(step)
    with pytest.raises(cls) as info:
        if streamed:
            await gw.stream(model="o", messages=HI)
        else:
            await gw.chat(model="o", messages=HI)
    assert info.value.message == step.message
    if isinstance(info.value, errors.RateLimitError):
        assert info.value.retry_after == 2


async def test_timeout_cut_and_in_stream_error(gw: Gateway, fake: FakeOllama) -> None:
    fake.then(Hang(5))
    with pytest.raises(errors.UpstreamTimeoutError):
        await gw.stream(model="o", messages=HI)
    fake.then(Cut(keep=2))
    stream = await gw.stream(model="o", messages=HI)
    with pytest.raises(errors.UpstreamConnectionError):
        async for _ in stream:
            pass
    fake.then(StreamError(after=1, message="llama runner crashed"))
    stream = await gw.stream(model="o", messages=HI)
    with pytest.raises(errors.UpstreamServerError, match="llama runner crashed"):
        async for _ in stream:
            pass
