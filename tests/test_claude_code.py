"""Claude Code on ``/v1/messages``, end to end with the official anthropic SDK as the client:
``messages.count_tokens`` (exact from Anthropic, the embedded model's own tokenizer, an
estimate elsewhere), a Claude Code-shaped conversation (system blocks with ``cache_control``,
tools, thinking with signatures, tool results, five streamed turns) that reaches the Anthropic
fake block for block and an OpenAI-compatible backend without what it cannot take, cache
writes in usage and cost, and Anthropic-shaped 4xx for bad input."""

from __future__ import annotations

import copy
from typing import Any

import anthropic
import httpx
import pytest

from turnout.catalogue import Catalogue
from turnout.config import ProviderConfig
from turnout.types import Usage

from .conftest import (
    MASTER_KEY,
    UPSTREAM_KEY,
    anthropic_clients,
    make_config,
    needs_local,
    openai_validator,
)
from .fakes.anthropic_upstream import COUNT_FIELDS, FakeAnthropic, Message, fake_count
from .fakes.openai_upstream import FakeOpenAI
from .fakes.script import Fail, Reply

SONNET = "anthropic:claude-sonnet-4-6"
EPHEMERAL = {"type": "ephemeral"}
SYSTEM = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
     "cache_control": EPHEMERAL},
    {"type": "text", "text": "You are an interactive CLI tool that helps users with software "
     "engineering tasks. Use the tools available to you.", "cache_control": EPHEMERAL},
]  # fmt: skip
TOOLS = [
    {
        "name": "Read",
        "description": "Reads a file from the local filesystem.",
        "input_schema": {
            "type": "object",
            "properties": {"file_path": {"type": "string"}},
            "required": ["file_path"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Bash",
        "description": "Executes a given bash command.",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
            "required": ["command"],
        },
    },
    {
        "name": "Edit",
        "description": "Performs exact string replacements in files.",
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
            },
            "required": ["file_path", "old_string", "new_string"],
        },
        "cache_control": EPHEMERAL,
    },
]
THINKING = {"type": "enabled", "budget_tokens": 1024}
METADATA = {"user_id": "user_3f2a_account__session_9c1d"}
EDIT = {"file_path": "/repo/calc.py", "old_string": "a - b", "new_string": "a + b"}

# What the model answers at each of the five turns, with the prompt cache filling up.
REPLIES = [
    Message(
        [
            {"type": "thinking", "thinking": "The failing test is about add(). Read calc.py.",
             "signature": "EqQBCkYIARgCKkDsig1"},
            {"type": "text", "text": "I'll read calc.py."},
            {"type": "tool_use", "id": "toolu_cc1", "name": "Read",
             "input": {"file_path": "/repo/calc.py"}},
        ],
        "tool_use", prompt_tokens=3200, cache_creation_tokens=3100,
    ),
    Message(
        [
            {"type": "thinking", "thinking": "add() subtracts. Run the tests to confirm.",
             "signature": "EqQBCkYIARgCKkDsig2"},
            {"type": "tool_use", "id": "toolu_cc2", "name": "Bash",
             "input": {"command": "pytest -q tests/test_calc.py"}},
        ],
        "tool_use", prompt_tokens=3400, cached_tokens=3100, cache_creation_tokens=250,
    ),
    Message(
        [
            {"type": "thinking", "thinking": "Confirmed. Fix the operator.",
             "signature": "EqQBCkYIARgCKkDsig3"},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
            {"type": "tool_use", "id": "toolu_cc3", "name": "Edit", "input": EDIT},
        ],
        "tool_use", prompt_tokens=3600, cached_tokens=3350, cache_creation_tokens=200,
        cache_creation_1h_tokens=50,
    ),
    Message(
        [
            {"type": "thinking", "thinking": "The edit applied.", "signature": "EqQBsig4"},
            {"type": "text", "text": "Fixed: add() now returns a + b."},
        ],
        prompt_tokens=3700, cached_tokens=3550,
    ),
    Message(
        [
            {"type": "thinking", "thinking": "Run them.", "signature": "EqQBsig5"},
            {"type": "text", "text": "All 3 tests pass."},
        ],
        prompt_tokens=3800, cached_tokens=3700,
    ),
]  # fmt: skip

# What the user (and the tools Claude Code runs) add before each turn.
USER_TURNS: list[list[dict[str, Any]]] = [
    [
        {"type": "text", "text": "<system-reminder>This is a reminder.</system-reminder>"},
        {"type": "text", "text": "The test in tests/test_calc.py fails. Fix it.",
         "cache_control": EPHEMERAL},
    ],
    [
        {"type": "tool_result", "tool_use_id": "toolu_cc1",
         "content": "     1\tdef add(a, b):\n     2\t    return a - b\n",
         "cache_control": EPHEMERAL},
    ],
    [
        {"type": "tool_result", "tool_use_id": "toolu_cc2", "is_error": True,
         "content": [{"type": "text", "text": "FAILED tests/test_calc.py::test_add"},
                     {"type": "text", "text": "1 failed in 0.02s", "cache_control": EPHEMERAL}]},
    ],
    [
        {"type": "tool_result", "tool_use_id": "toolu_cc3",
         "content": "The file /repo/calc.py has been updated.", "cache_control": EPHEMERAL},
    ],
    [{"type": "text", "text": "Thanks. Run the tests once more.", "cache_control": EPHEMERAL}],
]  # fmt: skip


@pytest.fixture
def gateway_url(serve, fake_url: str, anthropic_url: str) -> str:
    config = make_config(
        fake_url,
        server={"master_key": MASTER_KEY, "preload_local": False},
        routes=[
            {"name": "claude", "deployments": [SONNET]},
            {"name": "gpt", "deployments": ["primary:model-a"]},
        ],
    )
    config.providers["anthropic"] = ProviderConfig.model_validate(
        {"base_url": anthropic_url + "/v1", "api_key": UPSTREAM_KEY}
    )
    return serve(config)


client, _close_clients = anthropic_clients(MASTER_KEY)


def _blocks(content: Any) -> list[dict[str, Any]]:
    """Message content as a block list: a string is one text block (the same to the API)."""
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def same_meaning(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": m["role"], "content": _blocks(m["content"])} for m in messages]


def request(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "max_tokens": 8192,
        "system": SYSTEM,
        "tools": TOOLS,
        "thinking": THINKING,
        "metadata": METADATA,
        "messages": messages,
        # Claude Code sends it with the 4.6 models (a beta): accepted, not forwarded.
        "extra_body": {
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
        },
    }


@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "whole"])
def test_claude_code_conversation_reaches_anthropic_block_for_block(
    gateway_url: str, anthropic_fake: FakeAnthropic, streamed: bool
) -> None:
    sdk = client(gateway_url)
    anthropic_fake.then(*REPLIES)
    messages: list[dict[str, Any]] = []
    for turn, (user, reply) in enumerate(zip(USER_TURNS, REPLIES, strict=True)):
        messages.append({"role": "user", "content": user})
        if streamed:
            with sdk.messages.stream(model="claude", **request(messages)) as stream:
                final = stream.get_final_message()
        else:
            final = sdk.messages.create(model="claude", **request(messages))
        upstream = anthropic_fake.calls[-1]["body"]
        assert upstream.get("stream", False) is streamed
        assert upstream["model"] == "claude-sonnet-4-6"
        for name in ("system", "tools", "thinking", "metadata", "max_tokens"):
            assert upstream[name] == request(messages)[name], (turn, name)
        assert same_meaning(upstream["messages"]) == same_meaning(messages), turn
        assert "context_management" not in upstream
        # What streamed back is the model's answer, reasoning and signatures included.
        content = [b.model_dump(exclude_none=True) for b in final.content]
        assert content == reply.content, turn
        assert final.stop_reason == reply.stop_reason
        usage = final.usage
        assert usage.cache_read_input_tokens == reply.cached_tokens
        assert usage.cache_creation_input_tokens == reply.cache_creation_tokens
        assert usage.cache_creation is not None
        assert usage.cache_creation.ephemeral_1h_input_tokens == reply.cache_creation_1h_tokens
        messages.append({"role": "assistant", "content": content})
    assert len(anthropic_fake.calls) == 5


def test_same_conversation_on_an_openai_compatible_backend(
    gateway_url: str, fake: FakeOpenAI
) -> None:
    messages: list[dict[str, Any]] = []
    for user, reply in zip(USER_TURNS, REPLIES, strict=True):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": []}]
        messages[-1]["content"] = copy.deepcopy(reply.content)
    messages.pop()  # the conversation ends on the user's fifth turn
    fake.then(Reply(text="All 3 tests pass."), Reply(text="Streamed: all pass."))
    sdk = client(gateway_url)
    out = sdk.messages.create(model="gpt", **request(messages))
    assert out.content[0].type == "text" and out.content[0].text == "All 3 tests pass."
    assert out.stop_reason == "end_turn" and out.stop_sequence is None
    body = fake.calls[-1]["body"]
    assert openai_validator("CreateChatCompletionRequest").is_valid(body)
    text = fake.calls[-1]["raw"].decode()
    for gone in ("cache_control", "thinking_blocks", "signature", "redacted", "is_error"):
        assert gone not in text, gone
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool",
                     "assistant", "tool", "assistant", "user"]  # fmt: skip
    assert body["messages"][5]["content"][0]["text"].startswith("[tool error] FAILED")
    assert [t["function"]["name"] for t in body["tools"]] == ["Read", "Bash", "Edit"]
    with sdk.messages.stream(model="gpt", **request(messages)) as stream:
        assert "".join(stream.text_stream) == "Streamed: all pass."


def test_count_tokens_exact_through_anthropic(
    gateway_url: str, anthropic_fake: FakeAnthropic
) -> None:
    messages = [{"role": "user", "content": USER_TURNS[0]}]
    body = request(messages)
    del body["max_tokens"], body["metadata"], body["extra_body"]
    counted = client(gateway_url).messages.count_tokens(model="claude", **body)
    upstream = anthropic_fake.calls[-1]
    assert upstream["path"] == "/v1/messages/count_tokens"
    assert set(upstream["body"]) <= COUNT_FIELDS
    assert upstream["body"]["system"] == SYSTEM and upstream["body"]["tools"] == TOOLS
    assert counted.input_tokens == fake_count(upstream["body"]) > 0
    raw = httpx.post(
        gateway_url + "/v1/messages/count_tokens",
        headers={"x-api-key": MASTER_KEY},
        json={"model": "claude", **body},
    )
    assert raw.json() == {"input_tokens": counted.input_tokens}
    assert raw.headers["x-turnout-token-count"] == "exact"
    assert raw.headers["x-turnout-deployment"] == SONNET


def test_count_tokens_estimates_where_the_backend_cannot_count(
    gateway_url: str, anthropic_fake: FakeAnthropic, fake: FakeOpenAI
) -> None:
    sdk = client(gateway_url)
    short = sdk.messages.count_tokens(model="gpt", messages=[{"role": "user", "content": "hi"}])
    body = request([{"role": "user", "content": USER_TURNS[0]}])
    del body["max_tokens"], body["metadata"], body["extra_body"]
    long = sdk.messages.count_tokens(model="gpt", **body)
    assert 0 < short.input_tokens < long.input_tokens
    assert fake.calls == []  # an estimate asks no upstream
    # Anthropic overloaded: the count is estimated rather than failed.
    anthropic_fake.count_failures.append(Fail(529, "Overloaded", type="overloaded_error"))
    resp = httpx.post(
        gateway_url + "/v1/messages/count_tokens",
        headers={"x-api-key": MASTER_KEY},
        json={"model": "claude", **body},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-turnout-token-count"] in ("cl100k_base", "bytes")
    assert resp.json()["input_tokens"] > 0


@needs_local
@pytest.mark.local_model
def test_count_tokens_exact_for_the_embedded_model(gateway_url: str) -> None:
    sdk = client(gateway_url)
    messages = [{"role": "user", "content": "Name three rivers in Europe."}]
    counted = sdk.messages.count_tokens(model="smollm2", system="Be brief.", messages=messages)
    out = sdk.messages.create(model="smollm2", max_tokens=4, system="Be brief.", messages=messages)
    assert counted.input_tokens == out.usage.input_tokens > 0


def test_cache_writes_in_the_cost_header(gateway_url: str, anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.then(
        Message(
            [{"type": "text", "text": "ok"}],
            prompt_tokens=10_000,
            cached_tokens=2_000,
            cache_creation_tokens=6_000,
            cache_creation_1h_tokens=1_000,
            completion_tokens=100,
        )
    )
    raw = client(gateway_url).messages.with_raw_response.create(
        model="claude", max_tokens=100, system=SYSTEM, messages=[{"role": "user", "content": "hi"}]
    )
    sonnet = Catalogue.default().get(SONNET)
    assert sonnet is not None
    usage = Usage(10_000, 100, 2_000, cache_write_tokens=6_000, cache_write_1h_tokens=1_000)
    expected = sonnet.cost(usage)
    assert expected is not None
    # 2,000 plain input, 2,000 reads, 5,000 five-minute and 1,000 one-hour writes, 100 out.
    by_hand = (2_000 * 3 + 2_000 * 0.3 + 5_000 * 3.75 + 1_000 * 6 + 100 * 15) / 1e6
    assert expected == pytest.approx(by_hand)
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(expected, rel=1e-3)
    message = raw.parse()
    assert message.usage.cache_creation_input_tokens == 6_000
    assert message.usage.input_tokens == 2_000
    metrics = httpx.get(gateway_url + "/metrics", headers={"x-api-key": MASTER_KEY}).text
    labels = 'kind="cache_write_input",model="claude-sonnet-4-6",provider="anthropic"'
    assert f"turnout_tokens_total{{{labels}}} 6000.0" in metrics


def test_stop_sequence_from_anthropic(gateway_url: str, anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.then(
        Message([{"type": "text", "text": "1, 2"}], "stop_sequence", stop_sequence=", 3"),
        Message([{"type": "text", "text": "1, 2"}], "stop_sequence", stop_sequence=", 3"),
    )
    sdk = client(gateway_url)
    args: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 20,
        "stop_sequences": [", 3"],
        "messages": [{"role": "user", "content": "Count to five."}],
    }
    out = sdk.messages.create(**args)
    assert (out.stop_reason, out.stop_sequence) == ("stop_sequence", ", 3")
    with sdk.messages.stream(**args) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", ", 3")


BAD_INPUTS = [
    ({"model": "claude"}, "messages"),
    ({"model": "claude", "messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "claude", "messages": [{"role": "assistant", "content": [
        {"type": "thinking", "signature": "s"}]}]}, "thinking"),
    ({"model": "claude", "messages": [{"role": "assistant", "content": [
        {"type": "redacted_thinking"}]}]}, "data"),
    ({"model": "claude", "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"}]}]}, "tool_use_id"),
    ({"model": "claude", "messages": [{"role": "user", "content": "hi"}],
      "tools": [{"name": "web", "type": "web_search_20250305"}]}, "tools"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "says"), BAD_INPUTS)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_bad_input_is_an_anthropic_400(
    gateway_url: str, anthropic_fake: FakeAnthropic, path: str, body: dict[str, Any], says: str
) -> None:
    if path == "/v1/messages":
        body = {"max_tokens": 10, **body}
    resp = httpx.post(gateway_url + path, headers={"x-api-key": MASTER_KEY}, json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert says in error["error"]["message"]
    assert anthropic_fake.calls == []


def test_count_tokens_errors_are_anthropic_shaped(gateway_url: str) -> None:
    url = gateway_url + "/v1/messages/count_tokens"
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(url, json=body).json()["error"]["type"] == "authentication_error"
    resp = httpx.post(url, headers={"x-api-key": MASTER_KEY}, content=b"{not json")
    assert resp.status_code == 400 and resp.json()["type"] == "error"
    resp = httpx.post(url, headers={"x-api-key": MASTER_KEY}, json={**body, "model": "nope"})
    assert 400 <= resp.status_code < 500 and resp.json()["type"] == "error"
    resp = httpx.get(url, headers={"x-api-key": MASTER_KEY})
    assert resp.status_code == 405 and resp.json()["type"] == "error"
    with pytest.raises(anthropic.BadRequestError):
        client(gateway_url).messages.count_tokens(model="claude", messages=[])
