"""The Anthropic-compatible ingress ``POST /v1/messages`` end to end, driven by the official
anthropic SDK (JSON and streams, tools, system, images) and by raw HTTP for what an SDK would
never send. The backends behind it are the OpenAI-compatible fake, the Anthropic fake and the
embedded model: an Anthropic client cannot tell which one answered."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import httpx
import pytest

from turnout.config import Config, ProviderConfig

from .anthropic_spec import spec_errors
from .conftest import MASTER_KEY, UPSTREAM_KEY, anthropic_clients, make_config, needs_local
from .fakes.anthropic_upstream import FakeAnthropic
from .fakes.openai_upstream import FakeOpenAI
from .fakes.script import Cut, Fail, Reply, StreamError

HI = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "name": "lookup",
        "description": "Look a city up.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


@pytest.fixture
def gateway_url(serve, fake_url: str, anthropic_url: str) -> str:
    claude = {"host": "anthropic", "base_url": anthropic_url + "/v1", "api_key": UPSTREAM_KEY}
    config = make_config(
        fake_url,
        server={"master_key": MASTER_KEY, "preload_local": False, "max_body_bytes": 8192},
    )
    config.providers["claude"] = ProviderConfig.model_validate(claude)
    return serve(config)


client, _close_clients = anthropic_clients(MASTER_KEY)


def test_json_answered_by_an_openai_compatible_backend(gateway_url: str, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="Ahoy.", prompt_tokens=30, completion_tokens=2, cached_tokens=10))
    raw = client(gateway_url).messages.with_raw_response.create(
        model="chain",
        max_tokens=64,
        system="Talk like a pirate.",
        messages=HI,
        extra_body={"temperature": 0.5},  # recent SDKs dropped it; older clients send it
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
    )
    out = raw.parse()
    assert out.content[0].type == "text" and out.content[0].text == "Ahoy."
    assert (out.model, out.role, out.stop_reason) == ("chain", "assistant", "end_turn")
    usage = out.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (20, 10, 2)
    assert out.id.startswith("msg_")
    assert raw.headers["x-turnout-provider"] == "primary"
    assert spec_errors("Message", raw.http_response.json()) == []
    sent = fake.calls[-1]["body"]
    assert sent["messages"] == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": "hi"},
    ]
    assert (sent["max_tokens"], sent["temperature"], sent["stop"], sent["user"]) == (
        64,
        0.5,
        ["END"],
        "u-1",
    )


def test_stream_has_anthropics_exact_event_sequence(gateway_url: str, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="one two three", prompt_tokens=9, completion_tokens=3))
    with httpx.stream(
        "POST",
        gateway_url + "/v1/messages",
        headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
        json={"model": "chain", "max_tokens": 20, "messages": HI, "stream": True},
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = resp.read().decode()
    frames = [f for f in body.split("\n\n") if f]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    events = [json.loads(f.split("\n")[1].removeprefix("data: ")) for f in frames]
    for name, event in zip(names, events, strict=True):
        assert event["type"] == name
        assert spec_errors("MessageStreamEvent", event) == [], event
    assert events[-2]["usage"]["output_tokens"] == 3
    assert events[-2]["usage"]["input_tokens"] == 9
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_sdk_stream_text_and_usage(gateway_url: str, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="Streaming through the gateway.", completion_tokens=5))
    with client(gateway_url).messages.stream(model="chain", max_tokens=64, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Streaming through the gateway." == final.content[0].text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 5)
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
def test_tool_use_round_trip(gateway_url: str, fake: FakeOpenAI, streaming: bool) -> None:
    args = '{"city": "Paris", "days": [1, 2]}'
    fake.then(Reply(tool_call=("lookup", args)), Reply(text="It is sunny."))
    sdk = client(gateway_url)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    kw: dict[str, Any] = {"model": "chain", "max_tokens": 64, "tools": TOOLS}
    if streaming:
        with sdk.messages.stream(messages=ask, tool_choice={"type": "any"}, **kw) as stream:
            first = stream.get_final_message()
    else:
        first = sdk.messages.create(messages=ask, tool_choice={"type": "any"}, **kw)
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert (use.name, use.input) == ("lookup", {"city": "Paris", "days": [1, 2]})
    sent = fake.calls[-1]["body"]
    assert sent["tools"][0]["function"]["name"] == "lookup"
    assert sent["tool_choice"] == "required"

    follow = [
        *ask,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 24C"},
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]
    second = sdk.messages.create(messages=follow, **kw)
    assert second.content[0].text == "It is sunny."
    sent = fake.calls[-1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "lookup",
        "arguments": '{"city":"Paris","days":[1,2]}',
    }
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny, 24C"}
    assert sent[3] == {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]}


def test_images_reach_the_backend(gateway_url: str, fake: FakeOpenAI) -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"},
    ]
    client(gateway_url).messages.create(
        model="chain", max_tokens=16, messages=[{"role": "user", "content": content}]
    )
    parts = fake.calls[-1]["body"]["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}


def test_anthropic_backend_full_circle(gateway_url: str, anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.then(Reply(text="Claude via Turnout."), Reply(text="and streamed"))
    sdk = client(gateway_url)
    out = sdk.messages.create(
        model="claude:claude-x", max_tokens=32, system="Be kind.", messages=HI
    )
    assert out.content[0].text == "Claude via Turnout."
    upstream = anthropic_fake.calls[-1]
    assert upstream["body"]["system"] == "Be kind."
    assert upstream["headers"]["x-api-key"] == UPSTREAM_KEY
    with sdk.messages.stream(model="claude:claude-x", max_tokens=32, messages=HI) as stream:
        assert "".join(stream.text_stream) == "and streamed"


def test_both_key_headers_and_any_version(gateway_url: str, fake: FakeOpenAI) -> None:
    body = {"model": "chain", "max_tokens": 8, "messages": HI}
    url = gateway_url + "/v1/messages"
    for headers in (
        {"x-api-key": MASTER_KEY},
        {"authorization": f"Bearer {MASTER_KEY}", "anthropic-version": "2099-01-01"},
    ):
        assert httpx.post(url, headers=headers, json=body).status_code == 200
    for headers in ({}, {"x-api-key": "wrong"}):
        resp = httpx.post(url, headers=headers, json=body)
        assert resp.status_code == 401
        assert resp.json()["type"] == "error"
        assert resp.json()["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        client(gateway_url, "wrong").messages.create(model="chain", max_tokens=8, messages=HI)


@pytest.mark.parametrize(
    ("payload", "status", "kind", "says"),
    [
        (b"{not json", 400, "invalid_request_error", "not valid JSON"),
        (b"[]", 400, "invalid_request_error", "JSON object"),
        (b'{"model": "chain", "messages": [{"role": "user", "content": "hi"}]}', 400,
         "invalid_request_error", "max_tokens"),
        (b'{"model": "chain", "max_tokens": 5, "messages": []}', 400, "invalid_request_error",
         "messages"),
        (b'{"model": "chain", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}',
         400, "invalid_request_error", "messages.0.role"),
        (b'{"model": "chain", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], '
         b'"temperature": 1.5}', 400, "invalid_request_error", "temperature"),
        (b'{"model": "chain", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], '
         b'"frobnicate": 1}', 400, "invalid_request_error", "frobnicate"),
        (b'{"model": "chain", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], '
         b'"tools": [{"type": "web_search_20250305", "name": "web_search"}]}', 400,
         "invalid_request_error", "server tool"),
        (b'{"model": "nope:x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}',
         404, "not_found_error", "unknown provider"),
        (b"{" + b" " * 9000 + b"}", 413, "request_too_large", "limit"),
    ],
)  # fmt: skip
def test_bad_input_gets_anthropic_shaped_errors(
    gateway_url: str, payload: bytes, status: int, kind: str, says: str
) -> None:
    resp = httpx.post(
        gateway_url + "/v1/messages",
        headers={"x-api-key": MASTER_KEY, "content-type": "application/json"},
        content=payload,
    )
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert says in body["error"]["message"]
    assert spec_errors("Error", body["error"]) == []


def test_wrong_method_is_anthropic_shaped(gateway_url: str) -> None:
    resp = httpx.get(gateway_url + "/v1/messages", headers={"x-api-key": MASTER_KEY})
    assert resp.status_code == 405 and resp.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("step", "sdk_error"),
    [
        (Fail(429, "slow down", headers={"Retry-After": "4"}), anthropic.RateLimitError),
        (Fail(503, "busy"), anthropic.OverloadedError),
        (Fail(401, "upstream key rejected"), anthropic.AuthenticationError),
        (
            Fail(400, "This model's maximum context length is 8192 tokens"),
            anthropic.BadRequestError,
        ),
    ],
)
def test_upstream_errors_reach_the_sdk_as_its_own_types(
    gateway_url: str, fake: FakeOpenAI, step: Fail, sdk_error: type
) -> None:
    fake.then(step, step)  # the route retries once
    with pytest.raises(sdk_error) as info:
        client(gateway_url).messages.create(model="single", max_tokens=8, messages=HI)
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert step.message in body["error"]["message"]
    assert UPSTREAM_KEY not in str(body)


@pytest.mark.parametrize("step", [Cut(keep=3), StreamError(after=2)], ids=["cut", "error-event"])
def test_mid_stream_failure_ends_with_an_error_event(
    gateway_url: str, fake: FakeOpenAI, step: Cut | StreamError
) -> None:
    fake.then(step)
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client(gateway_url).messages.stream(model="single", max_tokens=8, messages=HI) as stream,
    ):
        seen.extend(stream.text_stream)
    assert "".join(seen), "text before the failure reached the client"
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] in ("api_error", "overloaded_error")


@needs_local
@pytest.mark.local_model
def test_the_embedded_model_answers_an_anthropic_client(serve) -> None:
    url = serve(Config.model_validate({"server": {"preload_local": False}}))
    sdk = client(url, "unused")
    out = sdk.messages.create(
        model="local",
        max_tokens=8,
        system="Be brief.",
        messages=HI,
        extra_body={"temperature": 0},
    )
    assert out.content[0].text.strip()
    assert out.stop_reason in ("end_turn", "max_tokens")
    assert out.usage.input_tokens > 5 and 0 < out.usage.output_tokens <= 8
    with sdk.messages.stream(
        model="local", max_tokens=8, messages=HI, extra_body={"temperature": 0}
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() and final.content[0].text == text
    assert 0 < final.usage.output_tokens <= 8 and final.usage.input_tokens > 5


def test_gateway_keys_limits_and_routing_hints_apply_to_anthropic_clients(
    serve, tmp_path: Any, fake: FakeOpenAI, fake_url: str
) -> None:
    config = make_config(
        fake_url,
        server={"master_key": MASTER_KEY, "preload_local": False},
        database_url=f"sqlite:///{tmp_path / 'gw.db'}",
        request_log={"flush_interval": 0.02},
    )
    url = serve(config)
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    made = httpx.post(url + "/api/keys", headers=admin, json={"rpm": 1, "models": ["chain"]})
    assert made.status_code == 201, made.text
    secret = made.json()["key"]
    sdk = client(url, secret)
    raw = sdk.messages.with_raw_response.create(model="chain", max_tokens=8, messages=HI)
    assert raw.parse().content[0].text and raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(anthropic.RateLimitError) as info:
        sdk.messages.create(model="chain", max_tokens=8, messages=HI)
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError):
        client(url, secret).messages.create(model="single", max_tokens=8, messages=HI)
    bad = httpx.post(
        url + "/v1/messages",
        headers={"x-api-key": MASTER_KEY, "x-turnout-strategy": "telepathy"},
        json={"model": "chain", "max_tokens": 8, "messages": HI},
    )
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    hinted = httpx.post(
        url + "/v1/messages",
        headers={"x-api-key": MASTER_KEY},
        json={"model": "chain", "max_tokens": 8, "messages": HI, "turnout": {"strategy": "cost"}},
    )
    assert hinted.status_code == 200 and hinted.headers["x-turnout-strategy"] == "cost"
