"""What Claude Code needs of the Anthropic ingress, translation by translation (no socket):
``cache_control`` breakpoints and signed reasoning blocks carried from an Anthropic body
through the canonical request to Anthropic (unchanged), Bedrock Converse (``cachePoint``,
``reasoningContent``) and OpenAI-compatible hosts (left out); cache writes in usage and cost;
the matched stop sequence; the token estimate."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from turnout.adapters import anthropic_messages, bedrock_converse, bedrock_response, openai_chat
from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.deployment import Deployment, resolve_deployment
from turnout.server.anthropic_request import to_chat_request, to_count_request
from turnout.server.anthropic_wire import MessageStreamWriter, message_body
from turnout.tokens import estimate_tokens
from turnout.types import ChatResult, Choice, Finish, ThinkingDelta, Usage

from .anthropic_spec import spec_errors
from .fakes import bedrock_schema

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
SIGNED = {"type": "thinking", "thinking": "Read the file first.", "signature": "c2lnLTE="}
REDACTED = {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"}
TOOLS = [
    {
        "name": "Read",
        "description": "Read a file.",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
    },
    {
        "name": "Bash",
        "description": "Run a command.",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        "cache_control": EPHEMERAL,
    },
]
BODY: dict[str, Any] = {
    "model": "claude-x",
    "max_tokens": 2048,
    "system": [
        {"type": "text", "text": "You are Claude Code.", "cache_control": EPHEMERAL},
        {"type": "text", "text": "Be concise.", "cache_control": HOUR},
    ],
    "tools": TOOLS,
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "stop_sequences": ["</done>"],
    "messages": [
        {"role": "user", "content": "Why does the test fail?"},
        {
            "role": "assistant",
            "content": [
                SIGNED,
                REDACTED,
                {"type": "text", "text": "Reading calc.py."},
                {"type": "tool_use", "id": "toolu_1", "name": "Read",
                 "input": {"file_path": "calc.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                 "content": [{"type": "text", "text": "no such file"}],
                 "cache_control": EPHEMERAL},
                {"type": "text", "text": "It is src/calc.py.", "cache_control": EPHEMERAL},
            ],
        },
    ],
}  # fmt: skip


def deploy(model: str, **provider: Any) -> Deployment:
    name = model.partition(":")[0]
    config = Config.model_validate({"providers": {name: provider}})
    return resolve_deployment(model, config, Catalogue.default())


ANTHROPIC = {"api_key": "sk-ant-test-0001"}
BEDROCK = {"settings": {"access_key_id": "AKIDTEST0001", "secret_access_key": "s3cr3t"}}


def anthropic_body(body: dict[str, Any]) -> dict[str, Any]:
    chat = to_chat_request(body)
    d = deploy("anthropic:claude-x", **ANTHROPIC)
    _, _, raw = anthropic_messages.to_request(chat, d, stream=False)
    out: dict[str, Any] = orjson.loads(raw)
    assert spec_errors("CreateMessageRequest", out) == []
    return out


def test_anthropic_upstream_gets_every_block_unchanged() -> None:
    out = anthropic_body(BODY)
    assert out["system"] == BODY["system"]
    assert out["tools"] == TOOLS
    assert out["thinking"] == BODY["thinking"]
    assert out["stop_sequences"] == ["</done>"]
    assert out["messages"][0] == {"role": "user", "content": "Why does the test fail?"}
    assert out["messages"][1] == BODY["messages"][1]  # reasoning first, signatures verbatim
    assert out["messages"][2] == BODY["messages"][2]  # is_error and both breakpoints kept


def test_breakpoint_on_a_tool_use_and_an_assistant_text() -> None:
    body = {
        **BODY,
        "messages": [
            *BODY["messages"][:1],
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "one", "cache_control": EPHEMERAL},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {},
                     "cache_control": EPHEMERAL},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": "x"}]},
        ],
    }  # fmt: skip
    out = anthropic_body(body)
    assert out["messages"][1] == body["messages"][1]
    assert out["messages"][2] == body["messages"][2]


def test_openai_compatible_host_gets_the_conversation_without_them() -> None:
    chat = to_chat_request(BODY)
    _, _, raw = openai_chat.to_request(chat, deploy("openai:gpt-x", api_key="sk-1"), stream=False)
    out = orjson.loads(raw)
    text = raw.decode()
    assert "cache_control" not in text and "thinking" not in text
    assert "signature" not in text and "is_error" not in text
    assistant = out["messages"][2]
    assert assistant["content"] == "Reading calc.py."
    assert assistant["tool_calls"][0]["function"]["name"] == "Read"
    tool = out["messages"][3]
    assert tool["content"] == [{"type": "text", "text": "[tool error] no such file"}]
    # OpenRouter reads breakpoints (a host row setting): they stay; reasoning never does.
    _, _, raw = openai_chat.to_request(
        chat, deploy("openrouter:anthropic/claude-x", api_key="k"), stream=False
    )
    assert b"cache_control" in raw and b"thinking_blocks" not in raw


def test_bedrock_gets_cache_points_and_signed_reasoning() -> None:
    chat = to_chat_request(BODY)
    out = bedrock_converse.to_body(chat, deploy("bedrock:anthropic.claude-x-v1:0", **BEDROCK))
    assert bedrock_schema.errors(out, "ConverseRequest") == []
    assert out["additionalModelRequestFields"] == {"thinking": BODY["thinking"]}
    assert out["inferenceConfig"]["stopSequences"] == ["</done>"]
    assert out["system"] == [
        {"text": "You are Claude Code."},
        {"cachePoint": {"type": "default"}},
        {"text": "Be concise."},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
    ]
    tools = out["toolConfig"]["tools"]
    assert [next(iter(t)) for t in tools] == ["toolSpec", "toolSpec", "cachePoint"]
    assistant = out["messages"][1]["content"]
    assert assistant[0] == {
        "reasoningContent": {
            "reasoningText": {"text": "Read the file first.", "signature": "c2lnLTE="}
        }
    }
    assert assistant[1] == {"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}}
    assert [next(iter(b)) for b in assistant[2:]] == ["text", "toolUse"]
    user = out["messages"][2]["content"]
    assert user[0]["toolResult"]["status"] == "error"
    assert user[0]["toolResult"]["content"] == [{"text": "no such file"}]
    assert [next(iter(b)) for b in user] == ["toolResult", "cachePoint", "text", "cachePoint"]


def test_bedrock_reasoning_and_cache_writes_come_back() -> None:
    d = deploy("bedrock:anthropic.claude-x-v1:0", **BEDROCK)
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "s1"}}},
                    {"text": "Done."},
                ],
            }
        },
        "stopReason": "stop_sequence",
        "additionalModelResponseFields": {"stop_sequence": "</done>"},
        "usage": {
            "inputTokens": 10,
            "outputTokens": 5,
            "totalTokens": 115,
            "cacheReadInputTokens": 40,
            "cacheWriteInputTokens": 60,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 20}, {"ttl": "5m", "inputTokens": 40}],
        },
        "metrics": {"latencyMs": 1},
    }
    result = bedrock_response.from_response(body, d)
    choice = result.choices[0]
    assert choice.extra["thinking_blocks"] == [
        {"type": "thinking", "thinking": "hm", "signature": "s1"}
    ]
    assert choice.stop_sequence == "</done>"
    u = result.usage
    assert (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens) == (110, 40, 60)
    assert u.cache_write_1h_tokens == 20


def test_anthropic_usage_and_reasoning_come_back() -> None:
    d = deploy("anthropic:claude-x", **ANTHROPIC)
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [SIGNED, REDACTED, {"type": "text", "text": "Done"}],
        "stop_reason": "stop_sequence",
        "stop_sequence": "</done>",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 40,
            "cache_creation_input_tokens": 60,
            "cache_creation": {"ephemeral_5m_input_tokens": 45, "ephemeral_1h_input_tokens": 15},
        },
    }
    result = anthropic_messages.from_response(body, d)
    choice = result.choices[0]
    assert choice.extra["thinking_blocks"] == [SIGNED, REDACTED]
    assert choice.stop_sequence == "</done>" and choice.finish_reason == "stop"
    u = result.usage
    assert (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens) == (110, 40, 60)
    assert u.cache_write_1h_tokens == 15
    # ... and the ingress renders the same message again.
    chat = to_chat_request(BODY)
    out = orjson.loads(message_body(result, chat))
    assert spec_errors("Message", out) == []
    assert out["content"][:2] == [SIGNED, REDACTED]
    assert (out["stop_reason"], out["stop_sequence"]) == ("stop_sequence", "</done>")
    assert out["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_input_tokens": 40,
        "cache_creation_input_tokens": 60,
        "cache_creation": {"ephemeral_5m_input_tokens": 45, "ephemeral_1h_input_tokens": 15},
    }


@pytest.mark.parametrize(
    ("finish", "matched", "reason", "sequence"),
    [
        ("stop", "</done>", "stop_sequence", "</done>"),
        ("stop", None, "end_turn", None),  # the backend did not say which
        ("stop", "<other>", "end_turn", None),  # not one the caller asked for
        ("length", None, "max_tokens", None),
    ],
)
def test_stop_sequence_reported_as_anthropic_does(
    finish: str, matched: str | None, reason: str, sequence: str | None
) -> None:
    chat = to_chat_request(BODY)
    result = ChatResult(
        "x", "m", "p", [Choice(content="ok", finish_reason=finish, stop_sequence=matched)],
        Usage(), 0,
    )  # fmt: skip
    out = orjson.loads(message_body(result, chat))
    assert (out["stop_reason"], out["stop_sequence"]) == (reason, sequence)
    writer = MessageStreamWriter("msg_1", chat)
    writer.event(Finish(finish, stop_sequence=matched))
    tail = writer.finish(Usage()).decode()
    delta = orjson.loads(tail.split("data: ")[1].split("\n")[0])
    assert delta["delta"] == {"stop_reason": reason, "stop_sequence": sequence}


def test_openai_compatible_stop_reason_names_the_sequence() -> None:
    """vLLM and SGLang say which stop string matched (``stop_reason``); OpenAI does not."""
    d = deploy("openai:gpt-x", api_key="sk-1")
    body = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
                "stop_reason": "</done>",
            }
        ],
    }
    assert openai_chat.from_response(body, d).choices[0].stop_sequence == "</done>"
    chunk = {**body, "choices": [{"index": 0, "delta": {}, **body["choices"][0]}]}
    events = openai_chat.parse_chunk(chunk, d)
    assert Finish("stop", 0, "</done>") in events
    del body["choices"][0]["stop_reason"]
    assert openai_chat.from_response(body, d).choices[0].stop_sequence is None


def test_thinking_streams_as_anthropic_events() -> None:
    chat = to_chat_request(BODY)
    writer = MessageStreamWriter("msg_1", chat)
    out = writer.start()
    for event in (
        ThinkingDelta("Read ", block=0),
        ThinkingDelta("the file.", block=0),
        ThinkingDelta(signature="c2ln", block=0),
        ThinkingDelta(redacted="ZW5j", block=1),
    ):
        out += writer.event(event)
    out += writer.finish(Usage())
    frames = [orjson.loads(line[6:]) for line in out.decode().splitlines() if line[:6] == "data: "]
    kinds = [
        (f["type"], (f.get("delta") or f.get("content_block") or {}).get("type")) for f in frames
    ]
    assert kinds[2:9] == [
        ("content_block_start", "thinking"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", None),
        ("content_block_start", "redacted_thinking"),
        ("content_block_stop", None),
    ]


def test_cache_writes_priced_at_the_write_rates() -> None:
    sonnet = Catalogue.default().get("anthropic:claude-sonnet-4-6")
    assert sonnet is not None
    assert (sonnet.cache_write_price, sonnet.cache_write_1h_price) == (3.75, 6.00)
    usage = Usage(
        prompt_tokens=1_000_000 + 2_000_000 + 3_000_000 + 4_000_000,
        completion_tokens=1_000_000,
        cached_tokens=2_000_000,
        cache_write_tokens=7_000_000,
        cache_write_1h_tokens=4_000_000,
    )
    # 1M plain input at $3, 2M cache reads at $0.30, 3M 5-minute writes at $3.75, 4M
    # one-hour writes at $6, 1M output at $15.
    assert sonnet.cost(usage) == pytest.approx(3 + 0.6 + 11.25 + 24 + 15)
    for entry in Catalogue.default().query(provider="anthropic"):
        assert entry.cache_write_price is not None and entry.cache_write_1h_price is not None
        assert entry.input_price is not None
        assert entry.cache_write_price == pytest.approx(entry.input_price * 1.25)
        assert entry.cache_write_1h_price == pytest.approx(entry.input_price * 2)


def test_count_request_and_estimate() -> None:
    chat = to_count_request({k: v for k, v in BODY.items() if k != "max_tokens"})
    d = deploy("anthropic:claude-x", **ANTHROPIC)
    url, _, raw = anthropic_messages.to_count_request(chat, d)
    assert url.endswith("/v1/messages/count_tokens")
    body = orjson.loads(raw)
    assert set(body) == {"model", "messages", "system", "tools", "thinking"}
    assert body["messages"][1] == BODY["messages"][1]
    estimate = estimate_tokens(chat)
    assert estimate.method in ("cl100k_base", "bytes")
    short = estimate_tokens(
        to_count_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    )
    assert 0 < short.input_tokens < estimate.input_tokens
