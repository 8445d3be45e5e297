"""Pure translation for the Anthropic Messages adapter: request, response, stream events and
errors. No sockets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from turnout.adapters.anthropic_messages import (
    StreamParser,
    from_response,
    map_error,
    parse_stream,
    to_request,
)
from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.deployment import Deployment, resolve_deployment
from turnout.errors import (
    BadRequestError,
    OverloadedError,
    RateLimitError,
    UnsupportedParameterError,
    UpstreamServerError,
)
from turnout.sse import ServerSentEvent
from turnout.types import ChatRequest, Finish, TextDelta, ToolCallDelta, Usage, UsageUpdate

from .anthropic_spec import spec_errors

KEY = "sk-ant-api03-secret-wxyz"


def deploy(drop_params: bool = False, **provider: Any) -> Deployment:
    config = Config.model_validate(
        {"providers": {"anthropic": {"api_key": KEY, **provider}}, "drop_params": drop_params}
    )
    return resolve_deployment("anthropic:claude-x", config, Catalogue.default())


def body_of(d: Deployment | None = None, stream: bool = False, **fields: Any) -> dict[str, Any]:
    fields.setdefault("model", "m")
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    _, _, raw = to_request(ChatRequest.model_validate(fields), d or deploy(), stream=stream)
    body: dict[str, Any] = orjson.loads(raw)
    assert spec_errors("CreateMessageRequest", body) == []
    return body


def test_url_headers_and_the_version_setting() -> None:
    url, headers, _ = to_request(
        ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]), deploy(), stream=True
    )
    assert url == "https://api.anthropic.com/v1/messages"
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert headers["Accept"] == "text/event-stream"
    d = deploy(settings={"anthropic_version": "2025-01-01"}, headers={"anthropic-beta": "x"})
    _, headers, _ = to_request(
        ChatRequest(model="m", messages=[{"role": "user", "content": "h"}]), d, stream=False
    )
    assert headers["anthropic-version"] == "2025-01-01" and headers["anthropic-beta"] == "x"


def test_system_and_developer_messages_go_to_the_top_level_wherever_they_stand() -> None:
    body = body_of(
        messages=[
            {"role": "system", "content": "Rule one."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
            {"role": "user", "content": "again"},
        ]
    )
    assert body["system"] == "Rule one.\n\nRule two."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_cache_control_is_kept_and_makes_the_system_a_block_list() -> None:
    cached = {"type": "text", "text": "Long context.", "cache_control": {"type": "ephemeral"}}
    body = body_of(
        messages=[{"role": "system", "content": [cached]}, {"role": "user", "content": [cached]}]
    )
    assert body["system"] == [cached]
    assert body["messages"][0]["content"] == [cached]


def test_parallel_tool_results_merge_into_one_user_turn() -> None:
    calls = [
        {"id": f"toolu_{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        for i in (1, 2)
    ]
    body = body_of(
        messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "one"},
            {
                "role": "tool",
                "tool_call_id": "toolu_2",
                "content": [{"type": "text", "text": "two"}],
            },
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}},
    ]
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": [{"type": "text", "text": "two"}],
            },
        ],
    }
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


def test_pdf_files_become_documents_and_audio_is_refused() -> None:
    pdf = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
    }
    body = body_of(
        messages=[{"role": "user", "content": [pdf, {"type": "text", "text": "sum up"}]}]
    )
    assert body["messages"][0]["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    messages = [{"role": "user", "content": [audio, {"type": "text", "text": "hi"}]}]
    with pytest.raises(BadRequestError, match="input_audio"):
        body_of(messages=messages)
    assert body_of(deploy(drop_params=True), messages=messages)["messages"][0]["content"] == "hi"


def test_fields_without_a_messages_equivalent_are_refused_unless_dropped() -> None:
    with pytest.raises(UnsupportedParameterError) as info:
        body_of(logprobs=True)
    assert info.value.param == "logprobs"
    assert "logprobs" not in body_of(deploy(drop_params=True), logprobs=True)
    assert "n" not in body_of(n=1), "n: 1 asks for nothing and is not refused"
    body = body_of(top_k=5, thinking={"type": "enabled", "budget_tokens": 2048}, max_tokens=4000)
    assert (body["top_k"], body["thinking"]["budget_tokens"]) == (5, 2048)


def test_tool_arguments_that_are_not_json_are_the_callers_fault() -> None:
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(BadRequestError, match="not valid JSON"):
        body_of(
            messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
        )


def test_spec_validator_is_not_a_rubber_stamp() -> None:
    assert spec_errors("CreateMessageRequest", {"model": "m", "messages": []})
    bad_block = {"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}
    assert spec_errors(
        "CreateMessageRequest", {"model": "m", "max_tokens": 1, "messages": [bad_block]}
    )
    assert spec_errors(
        "MessageStreamEvent",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta"}},
    )


def test_response_with_thinking_text_and_tools() -> None:
    obj = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 9, "cache_creation_input_tokens": 100},
    }
    result = from_response(obj, deploy())
    choice = result.choices[0]
    assert (choice.content, choice.finish_reason) == ("Calling.", "tool_calls")
    assert choice.tool_calls == [
        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a":[1,2]}'}}
    ]
    assert choice.extra["reasoning_content"] == "hmm"
    assert [b["type"] for b in choice.extra["thinking_blocks"]] == ["thinking"]  # kept whole
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (105, 0)
    assert result.usage.cache_write_tokens == 100
    with pytest.raises(UpstreamServerError, match="content"):
        from_response({"type": "message"}, deploy())


def sse(name: str, **data: Any) -> ServerSentEvent:
    return ServerSentEvent(orjson.dumps({"type": name, **data}).decode(), name)


def test_stream_parser_usage_pings_and_a_tool_input_given_whole() -> None:
    d = deploy()
    events = parse_stream(
        [
            sse(
                "message_start",
                message={
                    "usage": {"input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 1}
                },
            ),
            sse("ping"),
            sse(
                "content_block_start",
                index=0,
                content_block={"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
            ),
            sse("content_block_stop", index=0),
            sse("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 12}),
            sse("message_stop"),
        ],
        d,
    )
    # The input usage of message_start goes out with the first content event.
    assert isinstance(events[0], UsageUpdate) and events[0].usage.prompt_tokens == 10
    assert events[1] == ToolCallDelta(0, "", "t1", "f")
    assert events[2] == ToolCallDelta(0, '{"x":1}')
    assert events[3] == Finish("tool_calls")
    assert isinstance(events[4], UsageUpdate)
    usage = events[4].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (10, 12, 3)
    assert len(events) == 5


def test_stream_parser_text_in_the_start_block_and_data_without_event_names() -> None:
    parser = StreamParser(deploy())
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": "Hi"},
    }
    assert parser.event(None, start) == [UsageUpdate(Usage()), TextDelta("Hi")]
    assert parser.event(None, {"type": "brand_new_event"}) == []
    assert not parser.done
    parser.event("message_stop", {"type": "message_stop"})
    assert parser.done


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("overloaded_error", OverloadedError), ("rate_limit_error", RateLimitError)],
)
def test_stream_error_events_raise(kind: str, expected: type) -> None:
    parser = StreamParser(deploy())
    with pytest.raises(expected, match="busy"):
        parser.event("error", {"type": "error", "error": {"type": kind, "message": "busy"}})
    with pytest.raises(UpstreamServerError):
        parser.event("message_start", ["not", "an", "object"])


def test_map_error_reads_the_error_shape_and_hides_the_key() -> None:
    body = orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": f"Overloaded {KEY}"}}
    )
    err = map_error(529, body, {}, deploy())
    assert isinstance(err, OverloadedError) and err.code == "overloaded_error"
    assert KEY not in err.message and "...wxyz" in err.message
    err = map_error(429, b"slow", {"retry-after": "2"}, deploy())
    assert isinstance(err, RateLimitError) and err.retry_after == 2 and err.message == "slow"
