"""Property-based tests of the decoders of upstream bytes: the SSE decoder (with the OpenAI and
Anthropic event parsers behind it), Ollama's NDJSON reader and the Bedrock event-stream
decoder. Whatever the bytes and however the network cuts them: the same events, only the
gateway's own errors (``TurnoutError``), well-typed events, and no hang."""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from turnout import errors
from turnout.adapters import anthropic_messages, edge, ollama_chat, openai_chat, openai_responses
from turnout.adapters.bedrock_response import EventStreamDecoder
from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.deployment import Deployment, resolve_deployment
from turnout.sse import ServerSentEvent, SSEDecoder
from turnout.types import StreamEvent

from .properties import SECRET, check_events, json_like, no_hang, splits


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    with no_hang(60):
        yield


def deploy(model_id: str, **provider: Any) -> Deployment:
    name = model_id.partition(":")[0]
    config = Config.model_validate({"providers": {name: {"api_key": SECRET, **provider}}})
    return resolve_deployment(model_id, config, Catalogue.default())


OPENAI = deploy("openai:gpt-x")
ANTHROPIC = deploy("anthropic:claude-x")
RESPONSES = deploy("openai_responses:gpt-x")
OLLAMA = deploy("ollama:llama3.2:3b")
BEDROCK = deploy(
    "bedrock:anthropic.claude-x",
    settings={"access_key_id": "AKIDPROPERTY01", "secret_access_key": SECRET},
)


# --- SSE -----------------------------------------------------------------------------------

SSE_BYTES = st.lists(
    st.sampled_from(
        [b"data: ", b"data:", b"event: ", b"id: ", b"retry: 1", b": ping", b"\n", b"\r\n", b"\r"]
        + [b"\n\n", b"{}", b"[DONE]", b"\xc3\xa9", b"\xe2\x98", b"\xff", b" ", b"x"]
    )
    | st.binary(max_size=12),
    max_size=40,
).map(b"".join)


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.close()


@given(st.data(), SSE_BYTES)
@example(None, b"data: a\r")  # a CR at the end of a read ends the line now
def test_sse_events_do_not_depend_on_how_the_bytes_are_cut(
    data: st.DataObject | None, raw: bytes
) -> None:
    whole = decode([raw])
    cut = data.draw(splits(raw)) if data is not None else [raw[:-1], raw[-1:]]
    assert decode(cut) == whole
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == whole
    for event in whole:
        assert isinstance(event.data, str)


FIELD = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=16)


@given(
    st.lists(
        st.tuples(
            st.lists(FIELD, min_size=1, max_size=3),
            st.none() | FIELD.filter(bool),
        ),
        max_size=6,
    ),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.data(),
)
def test_sse_round_trip(
    events: list[tuple[list[str], str | None]], nl: bytes, data: st.DataObject
) -> None:
    """Events written the way servers write them (multi-line data, named or not, any line
    ending) come back exactly, with comments between them ignored."""
    wire = b""
    for lines, name in events:
        wire += b": keep-alive" + nl
        if name is not None:
            wire += b"event: " + name.encode() + nl
        wire += b"".join(b"data: " + line.encode() + nl for line in lines) + nl
    got = decode(data.draw(splits(wire)))
    assert [(e.data, e.event) for e in got] == [("\n".join(ls), n) for ls, n in events]


OPENAI_KEYS = [
    *("id", "object", "created", "model", "choices", "index", "delta", "role", "content"),
    *("tool_calls", "function", "name", "arguments", "type", "finish_reason", "usage"),
    *("prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"),
    *("completion_tokens_details", "cached_tokens", "reasoning_tokens", "error", "message"),
    *("code", "refusal", "reasoning_content", "logprobs", "system_fingerprint"),
]
OPENAI_WORDS = ["assistant", "stop", "length", "tool_calls", "function", "chat.completion.chunk"]


def sse_stream(objects: Any) -> Any:
    """A stream of SSE events, each a JSON object of the wire vocabulary or stray bytes."""
    event = objects.map(lambda o: b"data: " + orjson.dumps(o) + b"\n\n") | st.binary(max_size=20)
    return st.lists(event, max_size=6).map(b"".join)


def run_openai(chunks: list[bytes]) -> list[StreamEvent]:
    """What ``OpenAIChatAdapter.stream`` does with the bytes it reads."""
    decoder, out = SSEDecoder(), []
    for chunk in [*chunks, None]:
        for sse in decoder.feed(chunk) if chunk is not None else decoder.close():
            if sse.data == "[DONE]":
                return out
            out.extend(openai_chat.parse_chunk(edge.loads(sse.data, OPENAI), OPENAI))
    return out


@given(st.data(), sse_stream(json_like(OPENAI_KEYS, OPENAI_WORDS)))
@example(None, b'data: {"choices": [{"delta": {"tool_calls": 5}}]}\n\n')
@example(None, b'data: {"choices": [{"delta": {"content": 5}}]}\n\n')
@example(None, b'data: {"choices": 1}\n\n')
@example(None, b'data: {"usage": {"prompt_tokens": "x"}}\n\n')
def test_openai_stream_parser_raises_only_gateway_errors(
    data: st.DataObject | None, raw: bytes
) -> None:
    chunks = data.draw(splits(raw)) if data is not None else [raw]
    with contextlib.suppress(errors.TurnoutError):
        check_events(run_openai(chunks))


ANTHROPIC_KEYS = [
    *("type", "index", "delta", "text", "partial_json", "content_block", "id", "name"),
    *("input", "message", "usage", "input_tokens", "output_tokens", "stop_reason", "error"),
    *("cache_read_input_tokens", "cache_creation_input_tokens", "thinking", "signature"),
]
ANTHROPIC_WORDS = [
    *("message_start", "content_block_start", "content_block_delta", "content_block_stop"),
    *("message_delta", "message_stop", "ping", "error", "text_delta", "input_json_delta"),
    *("text", "tool_use", "end_turn", "max_tokens", "overloaded_error", "thinking_delta"),
]


def run_anthropic(chunks: list[bytes]) -> list[StreamEvent]:
    """What ``AnthropicMessagesAdapter.stream`` does with the bytes it reads."""
    decoder, parser, out = SSEDecoder(), anthropic_messages.StreamParser(ANTHROPIC), []
    for chunk in [*chunks, None]:
        for sse in decoder.feed(chunk) if chunk is not None else decoder.close():
            out.extend(parser.event(sse.event, edge.loads(sse.data, ANTHROPIC)))
    return out


@given(st.data(), sse_stream(json_like(ANTHROPIC_KEYS, ANTHROPIC_WORDS)))
@example(None, b'data: {"type": "content_block_delta", "delta": []}\n\n')
@example(None, b'data: {"type": "content_block_start", "content_block": 1}\n\n')
@example(None, b'data: {"type": "message_delta", "usage": {"output_tokens": "x"}}\n\n')
@example(None, b'data: {"type": "content_block_start", "index": [], "content_block": {}}\n\n')
def test_anthropic_stream_parser_raises_only_gateway_errors(
    data: st.DataObject | None, raw: bytes
) -> None:
    chunks = data.draw(splits(raw)) if data is not None else [raw]
    with contextlib.suppress(errors.TurnoutError):
        check_events(run_anthropic(chunks))


RESPONSES_KEYS = [
    *("type", "delta", "item", "output_index", "item_id", "call_id", "name", "arguments"),
    *("response", "status", "usage", "input_tokens", "output_tokens", "incomplete_details"),
    *("reason", "error", "code", "message", "sequence_number", "id"),
]
RESPONSES_WORDS = [
    *("response.output_text.delta", "response.output_item.added", "function_call"),
    *("response.function_call_arguments.delta", "response.completed", "response.incomplete"),
    *("response.failed", "error", "message", "max_output_tokens", "rate_limit_exceeded"),
]


def run_responses(chunks: list[bytes]) -> list[StreamEvent]:
    """What ``OpenAIResponsesAdapter.stream`` does with the bytes it reads."""
    decoder, parser, out = SSEDecoder(), openai_responses.StreamParser(RESPONSES), []
    for chunk in [*chunks, None]:
        for sse in decoder.feed(chunk) if chunk is not None else decoder.close():
            out.extend(parser.event(sse.event, edge.loads(sse.data, RESPONSES)))
    return out


@given(st.data(), sse_stream(json_like(RESPONSES_KEYS, RESPONSES_WORDS)))
@example(None, b'data: {"type": "response.output_text.delta", "delta": 5}\n\n')
@example(
    None,
    b'data: {"type": "response.output_item.added", "output_index": [],'
    b' "item": {"type": "function_call"}}\n\n',
)
@example(
    None, b'data: {"type": "response.completed", "response": {"usage": {"input_tokens": "x"}}}\n\n'
)
@example(None, b'data: {"type": "response.failed", "response": "x"}\n\n')
def test_responses_stream_parser_raises_only_gateway_errors(
    data: st.DataObject | None, raw: bytes
) -> None:
    chunks = data.draw(splits(raw)) if data is not None else [raw]
    with contextlib.suppress(errors.TurnoutError):
        check_events(run_responses(chunks))


# --- Ollama NDJSON -------------------------------------------------------------------------

OLLAMA_KEYS = [
    *("model", "created_at", "message", "role", "content", "thinking", "tool_calls"),
    *("function", "name", "arguments", "done", "done_reason", "prompt_eval_count"),
    *("eval_count", "error", "id", "images"),
]


def ndjson(objects: Any) -> Any:
    line = objects.map(orjson.dumps) | st.binary(max_size=16)
    ending = st.sampled_from([b"\n", b"\r\n", b"\n\n", b""])
    return st.lists(st.tuples(line, ending).map(b"".join), max_size=6).map(b"".join)


def read_ndjson(chunks: list[bytes]) -> list[bytes]:
    decoder = ollama_chat.NDJSONDecoder()
    return [line for chunk in chunks for line in decoder.feed(chunk)] + decoder.close()


@given(st.data(), ndjson(json_like(OLLAMA_KEYS)))
def test_ndjson_lines_do_not_depend_on_how_the_bytes_are_cut(
    data: st.DataObject, raw: bytes
) -> None:
    lines = read_ndjson([raw])
    assert lines == [line for line in raw.split(b"\n") if line.strip()]
    assert read_ndjson(data.draw(splits(raw))) == lines


@given(st.data(), ndjson(json_like(OLLAMA_KEYS, ["assistant", "stop", "length"])))
@example(None, b'{"message": {"tool_calls": 3}}\n')
@example(None, b'{"message": {"tool_calls": [{"function": []}]}}\n')
@example(None, b'{"message": {}, "done": true, "eval_count": "many"}\n')
def test_ollama_stream_parser_raises_only_gateway_errors(
    data: st.DataObject | None, raw: bytes
) -> None:
    chunks = data.draw(splits(raw)) if data is not None else [raw]
    state, events = ollama_chat.StreamState(), []
    try:
        for line in read_ndjson(chunks):
            events.extend(ollama_chat.parse_line(edge.loads(line, OLLAMA), OLLAMA, state))
        check_events(events)
    except errors.TurnoutError:
        pass


# --- Bedrock event stream ------------------------------------------------------------------

BEDROCK_KEYS = [
    *("contentBlockIndex", "delta", "text", "toolUse", "input", "start", "toolUseId", "name"),
    *("stopReason", "usage", "inputTokens", "outputTokens", "totalTokens", "message"),
    *("cacheReadInputTokens", "cacheWriteInputTokens", "reasoningContent", "role", "metrics"),
]
BEDROCK_EVENTS = [
    *("messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop"),
    *("messageStop", "metadata", "throttlingException", "validationException"),
]


def header(name: bytes, value: bytes, kind: int = 7) -> bytes:
    """One event-stream header; type 7 (string) and 6 (bytes) carry a 2-byte length."""
    return bytes([len(name)]) + name + bytes([kind]) + struct.pack(">H", len(value)) + value


def frame(head: bytes, payload: bytes) -> bytes:
    """An event-stream message with correct CRCs around whatever headers and payload."""
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


HEADER_NAMES = [b":message-type", b":event-type", b":exception-type", b":error-code"]
HEADER_VALUES = ["event", "exception", "error", *BEDROCK_EVENTS]
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(HEADER_NAMES) | st.binary(min_size=1, max_size=8),
        st.sampled_from(HEADER_VALUES).map(str.encode) | st.binary(max_size=8),
        st.sampled_from([7, 6]),
    ).map(lambda h: header(*h)),
    max_size=4,
).map(b"".join)
PAYLOAD = json_like(BEDROCK_KEYS, BEDROCK_EVENTS).map(orjson.dumps) | st.binary(max_size=24)
FRAMES = st.lists(
    st.tuples(HEADERS, PAYLOAD).map(lambda hp: frame(*hp)) | st.binary(max_size=24),
    max_size=5,
).map(b"".join)


def decode_bedrock(chunks: list[bytes]) -> list[StreamEvent]:
    decoder = EventStreamDecoder(BEDROCK)
    return [e for chunk in chunks for e in decoder.feed(chunk)]


def event_frame(kind: str, payload: bytes) -> bytes:
    return frame(
        header(b":message-type", b"event") + header(b":event-type", kind.encode()), payload
    )


@given(st.data(), FRAMES)
@example(None, event_frame("contentBlockDelta", b'{"contentBlockIndex": "x", "delta": {}}'))
@example(None, event_frame("contentBlockDelta", b'{"delta": 5}'))
@example(None, event_frame("contentBlockDelta", b'{"delta": {"toolUse": 5}}'))
@example(None, event_frame("contentBlockStart", b'{"start": []}'))
@example(None, event_frame("metadata", b'{"usage": {"inputTokens": "x"}}'))
@example(None, frame(header(b":message-type", b"\xff\xfe"), b"{}"))
def test_bedrock_event_stream_decoder_raises_only_gateway_errors(
    data: st.DataObject | None, raw: bytes
) -> None:
    chunks = data.draw(splits(raw)) if data is not None else [raw]
    try:
        events = decode_bedrock(chunks)
    except errors.TurnoutError:
        return
    check_events(events)
    assert decode_bedrock([raw]) == events  # cut anywhere: the same events
