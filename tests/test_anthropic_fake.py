"""The fake Anthropic upstream is faithful: the official anthropic SDK parses everything it
sends (whole messages, streams, tool use, errors into the SDK's own exception types), and its
bodies and events validate against the Anthropic spec."""

from __future__ import annotations

import anthropic
import httpx
import httpx2  # the anthropic SDK's HTTP client (a dependency of anthropic>=2.12)
import pytest

from .anthropic_spec import spec_errors
from .conftest import anthropic_clients
from .fakes.anthropic_upstream import (
    FakeAnthropic,
    Message,
    fake_count,
    message_body,
    stream_events,
)
from .fakes.script import Cut, Fail, Reply, StreamError

HI = [{"role": "user", "content": "hi"}]
ARGS = '{"city": "Paris", "days": [1, 2, 3], "note": "a \\"quoted\\" word"}'


client, _close_clients = anthropic_clients("sk-ant-test")


def test_sdk_parses_a_whole_message(anthropic_fake: FakeAnthropic, anthropic_url: str) -> None:
    anthropic_fake.then(Reply(text="Bonjour.", prompt_tokens=20, cached_tokens=8))
    out = client(anthropic_url).messages.create(model="claude-x", max_tokens=50, messages=HI)
    assert out.content[0].type == "text" and out.content[0].text == "Bonjour."
    assert out.stop_reason == "end_turn" and out.model == "claude-x"
    assert (out.usage.input_tokens, out.usage.cache_read_input_tokens) == (12, 8)
    assert out.usage.output_tokens == 7
    assert spec_errors("Message", message_body(Message([{"type": "text", "text": "x"}]), "m")) == []


def test_sdk_parses_tool_use(anthropic_fake: FakeAnthropic, anthropic_url: str) -> None:
    anthropic_fake.then(Reply(tool_call=("lookup", ARGS)))
    out = client(anthropic_url).messages.create(
        model="claude-x",
        max_tokens=50,
        messages=HI,
        tools=[{"name": "lookup", "input_schema": {"type": "object"}}],
    )
    block = out.content[0]
    assert block.type == "tool_use" and block.name == "lookup"
    assert block.input == {"city": "Paris", "days": [1, 2, 3], "note": 'a "quoted" word'}
    assert out.stop_reason == "tool_use"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(text="one two three"),
        Reply(text="split and crlf", crlf=True, split=True, comments=True),
    ],
    ids=["plain", "crlf-split-comments"],
)
def test_sdk_streams_text(anthropic_fake: FakeAnthropic, anthropic_url: str, reply: Reply) -> None:
    anthropic_fake.then(reply)
    with client(anthropic_url).messages.stream(
        model="claude-x", max_tokens=50, messages=HI
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == reply.text == final.content[0].text
    assert final.usage.output_tokens == reply.completion_tokens
    assert final.usage.input_tokens == reply.prompt_tokens
    assert final.stop_reason == "end_turn"


def test_sdk_reassembles_streamed_tool_input(
    anthropic_fake: FakeAnthropic, anthropic_url: str
) -> None:
    blocks = [
        {"type": "thinking", "thinking": "Let me look.", "signature": "sig1"},
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "toolu_a", "name": "lookup", "input": ARGS},
        {"type": "tool_use", "id": "toolu_b", "name": "lookup", "input": '{"city": "Oslo"}'},
    ]
    anthropic_fake.then(Message(blocks, "tool_use"))
    with client(anthropic_url).messages.stream(
        model="claude-x", max_tokens=50, messages=HI
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].thinking == "Let me look."
    assert final.content[2].input == {"city": "Paris", "days": [1, 2, 3], "note": 'a "quoted" word'}
    assert final.content[3].input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"


def test_every_event_and_body_follows_the_spec() -> None:
    blocks = [
        {"type": "thinking", "thinking": "Hmm.", "signature": "s"},
        {"type": "text", "text": "Here."},
        {"type": "tool_use", "id": "toolu_a", "name": "f", "input": '{"a": 1}'},
    ]
    message = Message(blocks, "tool_use", cached_tokens=3)
    for _name, event in stream_events(message, "m"):
        assert spec_errors("MessageStreamEvent", event) == [], event
    assert spec_errors("Message", message_body(message, "m")) == []


@pytest.mark.parametrize(
    ("status", "sdk_error"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (403, anthropic.PermissionDeniedError),
        (404, anthropic.NotFoundError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
    ],
)
def test_sdk_reads_errors(
    anthropic_fake: FakeAnthropic, anthropic_url: str, status: int, sdk_error: type
) -> None:
    anthropic_fake.then(Fail(status, "it went wrong", headers={"Retry-After": "3"}))
    with pytest.raises(sdk_error) as info:
        client(anthropic_url).messages.create(model="claude-x", max_tokens=5, messages=HI)
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["message"] == "it went wrong"
    assert spec_errors("Error", body["error"]) == []
    assert info.value.response.headers["retry-after"] == "3"


def test_sdk_raises_on_an_in_stream_error_event(
    anthropic_fake: FakeAnthropic, anthropic_url: str
) -> None:
    anthropic_fake.then(StreamError(after=2, message="Overloaded"))
    seen = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client(anthropic_url).messages.stream(
            model="claude-x", max_tokens=50, messages=HI
        ) as stream,
    ):
        seen.extend(stream.text_stream)
    assert "".join(seen) == "one two "
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_sdk_sees_a_cut_stream_as_incomplete(
    anthropic_fake: FakeAnthropic, anthropic_url: str
) -> None:
    anthropic_fake.then(Cut(keep=3))
    with (
        pytest.raises(httpx2.RemoteProtocolError, match="incomplete"),
        client(anthropic_url).messages.stream(
            model="claude-x", max_tokens=50, messages=HI
        ) as stream,
    ):
        stream.get_final_message()


def test_fake_refuses_what_the_api_refuses(
    anthropic_fake: FakeAnthropic, anthropic_url: str
) -> None:
    url = anthropic_url + "/v1/messages"
    ok = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "claude-x", "max_tokens": 5, "messages": HI}
    cases = [
        ({"anthropic-version": "2023-06-01"}, body, 401, "authentication_error"),
        ({"x-api-key": "k"}, body, 400, "invalid_request_error"),
        (ok, {"model": "claude-x", "messages": HI}, 400, "invalid_request_error"),
    ]
    for headers, sent, status, kind in cases:
        resp = httpx.post(url, headers=headers, json=sent)
        assert resp.status_code == status
        assert resp.json()["error"]["type"] == kind
    assert httpx.post(url, headers=ok, json=body).status_code == 200


def test_sdk_lists_models(anthropic_fake: FakeAnthropic, anthropic_url: str) -> None:
    page = client(anthropic_url).models.list()
    assert [m.id for m in page.data] == ["claude-fake-1"]


def test_sdk_reads_signed_reasoning_and_cache_writes(
    anthropic_fake: FakeAnthropic, anthropic_url: str
) -> None:
    blocks = [
        {"type": "thinking", "thinking": "Think twice.", "signature": "EqQBsig"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "text", "text": "Done."},
    ]
    reply = Message(blocks, prompt_tokens=100, cached_tokens=20, cache_creation_tokens=50,
                    cache_creation_1h_tokens=30)  # fmt: skip
    anthropic_fake.then(reply, reply)
    sdk = client(anthropic_url)
    whole = sdk.messages.create(model="claude-x", max_tokens=50, messages=HI)
    with sdk.messages.stream(model="claude-x", max_tokens=50, messages=HI) as stream:
        streamed = stream.get_final_message()
    for out in (whole, streamed):
        assert [b.model_dump(exclude_none=True) for b in out.content] == blocks
        assert out.usage.cache_creation_input_tokens == 50
        assert out.usage.cache_creation is not None
        assert out.usage.cache_creation.ephemeral_1h_input_tokens == 30
        assert out.usage.cache_creation.ephemeral_5m_input_tokens == 20
    for _name, event in stream_events(reply, "m"):
        assert spec_errors("MessageStreamEvent", event) == [], event


def test_sdk_counts_tokens(anthropic_fake: FakeAnthropic, anthropic_url: str) -> None:
    request = {
        "model": "claude-x",
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "How many words are here?"}],
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
    }
    counted = client(anthropic_url).messages.count_tokens(**request)
    sent = anthropic_fake.calls[-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    assert spec_errors("CountMessageTokensRequest", sent["body"]) == []
    # "Be brief." 2, "user" and the question 6, "lookup" 1, one message and one tool 3 each
    assert counted.input_tokens == fake_count(request) == 2 + 6 + 1 + 3 + 3
    assert spec_errors("CountMessageTokensResponse", counted.model_dump()) == []
    url = anthropic_url + "/v1/messages/count_tokens"
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    refused = httpx.post(url, headers=headers, json={**request, "max_tokens": 10})
    assert refused.status_code == 400 and "max_tokens" in refused.json()["error"]["message"]
    refused = httpx.post(url, headers=headers, json={"model": "claude-x"})
    assert refused.status_code == 400 and "messages" in refused.json()["error"]["message"]
    anthropic_fake.count_failures.append(Fail(529, "Overloaded", type="overloaded_error"))
    with pytest.raises(anthropic.OverloadedError):
        client(anthropic_url).messages.count_tokens(**request)
