"""The Bedrock Converse adapter against the fake Bedrock on loopback, through the Gateway: what
it sends is signed (the fake recomputes SigV4) and valid for the service model, and what comes
back (whole, streamed, failed, cut, corrupt) is read right."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from turnout import errors
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.types import TextDelta, ToolCallDelta

from .fakes.bedrock_upstream import FakeBedrock, event, fake_count
from .fakes.script import Cut, Fail, Hang, Raw, Reply, StreamError
from .fakes.servers import AiohttpThread, fake_fixtures

AKID, SECRET = "AKIDADAPTERTEST0042", "adapter/secret"
API_KEY = "ABSKadapterapikey00000000beef"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
HI = [{"role": "user", "content": "hi"}]


server, fake, _url = fake_fixtures(
    lambda: FakeBedrock(credentials={AKID: SECRET}, bearer={API_KEY})
)


def config(url: str, **extra: Any) -> Config:
    return Config.model_validate(
        {
            "providers": {
                "bedrock": {
                    "base_url": url,
                    "settings": {
                        "access_key_id": AKID,
                        "secret_access_key": SECRET,
                        "region": "us-west-2",
                    },
                },
                "bedrock-key": {"host": "bedrock", "base_url": url, "api_key": API_KEY},
            },
            "retry": {"retries": 0},
            "timeouts": {"connect": 2, "first_token": 2, "total": 5},
            "server": {"preload_local": False},
            **extra,
        }
    )


@pytest.fixture
async def gw(server: tuple[FakeBedrock, AiohttpThread]) -> AsyncIterator[Gateway]:
    gateway = Gateway(config(server[1].url))
    yield gateway
    await gateway.aclose()


async def test_chat_is_signed_valid_and_read(gw: Gateway, fake: FakeBedrock) -> None:
    fake.then(Reply(text="Bonjour.", prompt_tokens=30, completion_tokens=2, cached_tokens=10))
    result = await gw.chat(
        model=f"bedrock:{HAIKU}",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        max_tokens=20,
    )
    assert result.text == "Bonjour."
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (30, 10)
    assert result.id.startswith("fake-")
    call = fake.calls[-1]
    assert call["raw_path"] == f"/model/{HAIKU.replace(':', '%3A')}/converse"
    assert "/us-west-2/bedrock/aws4_request" in call["headers"]["Authorization"]
    assert call["body"]["system"] == [{"text": "Be brief."}]


async def test_stream_with_an_api_key(gw: Gateway, fake: FakeBedrock) -> None:
    fake.then(Reply(text="one two three", split=True))
    stream = await gw.stream(model="bedrock-key:m", messages=HI)
    texts = [e.text async for e in stream if isinstance(e, TextDelta)]
    assert "".join(texts) == "one two three"
    assert len(texts) == 3
    final = stream.final()
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.completion_tokens == 7
    assert stream.time_to_first_token is not None
    assert fake.calls[-1]["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert fake.calls[-1]["headers"]["Accept"] == "application/vnd.amazon.eventstream"


async def test_streamed_tool_call_reassembles_exactly(gw: Gateway, fake: FakeBedrock) -> None:
    args = '{"city": "Paris", "units": "metric", "days": [1, 2, 3]}'
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    fake.then(Reply(tool_call=("lookup", args)))
    stream = await gw.stream(model="bedrock:m", messages=HI, tools=tools, tool_choice="required")
    pieces = [e async for e in stream if isinstance(e, ToolCallDelta)]
    assert len(pieces) > 3
    call = stream.final().choices[0].tool_calls[0]
    assert call["function"] == {"name": "lookup", "arguments": args}
    assert call["id"] == "tooluse_fake_1"
    assert stream.final().choices[0].finish_reason == "tool_calls"
    # the round trip: the call and its result go back, and the fake accepts them
    result = await gw.chat(
        model="bedrock:m",
        messages=[
            *HI,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ],
        tools=tools,
    )
    assert result.text
    sent = fake.calls[-1]["body"]["messages"]
    assert sent[1]["content"][0]["toolUse"]["input"]["city"] == "Paris"
    assert sent[2]["content"][0]["toolResult"]["toolUseId"] == "tooluse_fake_1"


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Fail(400, "Input is too long for requested model."), errors.ContextWindowExceededError),
        (
            Fail(401, "The security token included in the request is invalid."),
            errors.AuthenticationError,
        ),
        (Fail(403, "no access to this model"), errors.PermissionDeniedError),
        (Fail(404, "model not found"), errors.NotFoundError),
        (Fail(408, "model timed out"), errors.UpstreamTimeoutError),
        (Fail(429, "Too many requests", headers={"Retry-After": "3"}), errors.RateLimitError),
        (Fail(500, "internal"), errors.UpstreamServerError),
        (Fail(503, "unavailable"), errors.OverloadedError),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_errors_are_mapped(
    gw: Gateway, fake: FakeBedrock, step: Fail, expected: type[Exception], streaming: bool
) -> None:
    fake.then(step)
    with pytest.raises(expected) as info:
        if streaming:
            await gw.stream(model="bedrock:m", messages=HI)
        else:
            await gw.chat(model="bedrock:m", messages=HI)
    assert step.message in str(info.value)
    if isinstance(info.value, errors.RateLimitError):
        assert info.value.retry_after == 3


async def test_in_stream_exception_after_text(gw: Gateway, fake: FakeBedrock) -> None:
    fake.then(StreamError(after=2, message="model crashed"))
    stream = await gw.stream(model="bedrock:m", messages=HI)
    seen = []
    with pytest.raises(errors.UpstreamServerError, match="model crashed"):
        async for e in stream:
            seen.append(e)
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["one ", "two "]


async def test_cut_stream_is_an_error_not_a_short_answer(gw: Gateway, fake: FakeBedrock) -> None:
    fake.then(Cut(keep=3))
    stream = await gw.stream(model="bedrock:m", messages=HI)
    with pytest.raises(errors.UpstreamConnectionError):
        async for _ in stream:
            pass


async def test_corrupt_frame_is_caught_by_the_crc(gw: Gateway, fake: FakeBedrock) -> None:
    good = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}})
    bad = good[:-6] + b"X" + good[-5:]  # one payload byte flipped: the message CRC fails
    fake.then(Raw(good + bad, content_type="application/vnd.amazon.eventstream"))
    stream = await gw.stream(model="bedrock:m", messages=HI)
    with pytest.raises(errors.UpstreamServerError, match="corrupt event stream"):
        async for _ in stream:
            pass
    assert struct.unpack(">I", good[-4:])[0] == zlib.crc32(good[:-4])


async def test_first_token_timeout(server: tuple[FakeBedrock, AiohttpThread], fake: FakeBedrock):
    gateway = Gateway(
        config(server[1].url, timeouts={"connect": 1, "first_token": 0.3, "total": 2})
    )
    fake.then(Hang(1.0))
    try:
        with pytest.raises(errors.UpstreamTimeoutError):
            await gateway.stream(model="bedrock:m", messages=HI)
    finally:
        await gateway.aclose()


async def test_unreachable(fake: FakeBedrock) -> None:
    from .fakes.servers import free_port

    gateway = Gateway(config(f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(errors.UpstreamConnectionError):
            await gateway.chat(model="bedrock:m", messages=HI)
    finally:
        await gateway.aclose()


async def test_wrong_secret_is_an_authentication_error(
    server: tuple[FakeBedrock, AiohttpThread], fake: FakeBedrock
) -> None:
    cfg = config(server[1].url)
    cfg.providers["bedrock"].settings["secret_access_key"] = "not-the-secret"
    gateway = Gateway(cfg)
    try:
        with pytest.raises(errors.AuthenticationError) as info:
            await gateway.chat(model="bedrock:m", messages=HI)
        assert "not-the-secret" not in str(info.value)
    finally:
        await gateway.aclose()


def test_openai_sdk_through_the_server_to_bedrock(
    server: tuple[FakeBedrock, AiohttpThread], fake: FakeBedrock, serve: Any
) -> None:
    """End to end: the official openai SDK talks to the gateway, which talks Converse."""
    import openai

    url = serve(config(server[1].url))
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    fake.then(Reply(text="Bonjour from Bedrock.", cached_tokens=4))
    whole = client.chat.completions.create(model=f"bedrock:{HAIKU}", messages=HI)
    assert whole.choices[0].message.content == "Bonjour from Bedrock."
    assert whole.usage is not None and whole.usage.prompt_tokens == 11
    fake.then(Reply(tool_call=("lookup", '{"city": "Paris"}')))
    chunks = list(
        client.chat.completions.create(
            model=f"bedrock:{HAIKU}",
            messages=HI,
            tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert args == '{"city": "Paris"}'
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    fake.then(Fail(429, "Too many requests"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=f"bedrock:{HAIKU}", messages=HI)


# --- embeddings through InvokeModel ----------------------------------------------------------


async def test_titan_embeddings_one_signed_invoke_per_text(fake: FakeBedrock, gw: Gateway) -> None:
    result = await gw.embed(
        model="bedrock:amazon.titan-embed-text-v2:0", input=["one two", "three"], dimensions=16
    )
    assert [c["raw_path"] for c in fake.calls] == [
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    ] * 2
    assert [c["body"] for c in fake.calls] == [
        {"inputText": "one two", "normalize": True, "dimensions": 16},
        {"inputText": "three", "normalize": True, "dimensions": 16},
    ]
    assert all(c["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256") for c in fake.calls)
    assert [len(v) for v in result.vectors] == [16, 16]
    assert result.usage.prompt_tokens == 1 + 1  # the fake's X-Amzn-Bedrock-Input-Token-Count
    assert result.cost == pytest.approx(2 * 0.02 / 1e6)


async def test_cohere_embed_on_bedrock_and_what_it_refuses(fake: FakeBedrock, gw: Gateway) -> None:
    result = await gw.embed(
        {"model": "bedrock-key:cohere.embed-english-v3", "input": ["a b c d e f", "g"]}
    )
    assert fake.calls[-1]["body"] == {
        "texts": ["a b c d e f", "g"],
        "input_type": "search_document",
    }
    assert fake.calls[-1]["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert len(result.vectors) == 2 and result.usage.prompt_tokens == 2 + 1
    with pytest.raises(errors.BadRequestError, match="cannot embed|no embeddings support"):
        await gw.embed(model=f"bedrock:{HAIKU}", input="x")
    with pytest.raises(errors.BadRequestError, match="dimensions"):
        await gw.embed(model="bedrock:cohere.embed-english-v3", input="x", dimensions=8)


async def test_count_tokens_exact_through_bedrock(gw: Gateway, fake: FakeBedrock) -> None:
    request = {
        "model": f"bedrock:{HAIKU}",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief.",
                                            "cache_control": {"type": "ephemeral"}}]},
            *HI,
        ],
    }  # fmt: skip
    count = await gw.count_tokens(request)
    call = fake.calls[-1]
    assert call["raw_path"] == f"/model/{HAIKU.replace(':', '%3A')}/count-tokens"
    assert "/us-west-2/bedrock/aws4_request" in call["headers"]["Authorization"]
    converse = call["body"]["input"]["converse"]
    assert converse["system"] == [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}]
    assert (count.method, count.input_tokens) == ("exact", fake_count(call["body"]["input"]))
    # A model Bedrock cannot count for: the estimate instead of an error.
    fake.then(Fail(400, "The provided model doesn't support counting tokens."))
    count = await gw.count_tokens(request)
    assert count.method in ("cl100k_base", "bytes") and count.input_tokens > 0
