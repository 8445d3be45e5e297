"""Bedrock Converse answers translated: a ``ConverseResponse`` body into a ``ChatResult``, and
each ConverseStream event-stream message into stream events (exception messages raise);
``EventStreamDecoder`` takes the stream's raw bytes as they arrive."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ..deployment import Deployment
from ..errors import UpstreamServerError
from ..redaction import excerpt
from ..types import (
    ChatResult,
    Choice,
    Finish,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from .bedrock_aws import botocore, classify
from .malformed import stream_parser

__all__ = [
    "EventStreamDecoder",
    "StreamState",
    "finish_reason",
    "from_response",
    "loads",
    "malformed",
    "parse_event",
    "usage_of",
]


_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: str | None) -> str:
    return _STOP_REASONS.get(stop_reason or "", "stop")


def usage_of(raw: Mapping[str, Any] | None) -> Usage:
    """Converse counts cache reads and writes apart from ``inputTokens``; OpenAI's
    ``prompt_tokens`` includes them, with the cache reads also in ``cached_tokens``."""
    if not raw:
        return Usage()
    read = int(raw.get("cacheReadInputTokens") or 0)
    write = int(raw.get("cacheWriteInputTokens") or 0)
    hour = sum(
        int(detail.get("inputTokens") or 0)
        for detail in raw.get("cacheDetails") or ()
        if detail.get("ttl") == "1h"
    )
    return Usage(
        prompt_tokens=int(raw.get("inputTokens") or 0) + read + write,
        completion_tokens=int(raw.get("outputTokens") or 0),
        cached_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(hour, write),
    )


def _thinking_block(reasoning: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``reasoningContent`` block as an Anthropic reasoning block (what the client sends
    back on its next turn, and ``to_body`` turns back into the same block)."""
    if "redactedContent" in reasoning:
        return {"type": "redacted_thinking", "data": str(reasoning["redactedContent"])}
    text = reasoning.get("reasoningText") or {}
    if not isinstance(text, dict):
        return None
    return {
        "type": "thinking",
        "thinking": str(text.get("text") or ""),
        "signature": str(text.get("signature") or ""),
    }


def _stop_sequence(obj: Mapping[str, Any]) -> str | None:
    """The stop sequence that matched: Claude on Bedrock names it in
    ``additionalModelResponseFields``."""
    fields = obj.get("additionalModelResponseFields")
    matched = fields.get("stop_sequence") if isinstance(fields, dict) else None
    return matched if isinstance(matched, str) else None


def malformed(what: str, d: Deployment) -> UpstreamServerError:
    return UpstreamServerError(f"malformed response: {what}", provider=d.provider, model=d.model)


def from_response(obj: Any, d: Deployment) -> ChatResult:
    """A ChatResult from a ``ConverseResponse`` body."""
    if not isinstance(obj, dict):
        raise malformed("not a JSON object", d)
    message = (obj.get("output") or {}).get("message")
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise malformed("no output.message.content list", d)
    texts: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in message["content"]:
        if not isinstance(block, dict):
            raise malformed("a content block is not an object", d)
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(
                {
                    "id": use["toolUseId"],
                    "type": "function",
                    "function": {
                        "name": use["name"],
                        "arguments": orjson.dumps(use.get("input", {})).decode(),
                    },
                }
            )
        elif "reasoningContent" in block:
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if text:
                reasoning.append(text)
            if (signed := _thinking_block(block["reasoningContent"])) is not None:
                thinking.append(signed)
    text = "".join(texts)
    extra: dict[str, Any] = {"reasoning_content": "".join(reasoning)} if reasoning else {}
    if thinking:
        extra["thinking_blocks"] = thinking
    return ChatResult(
        id=str(obj.get("ResponseMetadata", {}).get("RequestId") or ""),
        model=d.model,
        provider=d.provider,
        choices=[
            Choice(
                index=0,
                content=text if text or not calls else None,
                tool_calls=calls or None,
                finish_reason=finish_reason(obj.get("stopReason")),
                extra=extra,
                stop_sequence=_stop_sequence(obj),
            )
        ],
        usage=usage_of(obj.get("usage")),
        created=int(time.time()),
        deployment=d.id,
    )


class StreamState:
    """What a ConverseStream parser remembers between events: which content blocks are tool
    calls, and their OpenAI tool-call index."""

    __slots__ = ("reasoning", "tools")

    def __init__(self) -> None:
        self.tools: dict[int, int] = {}
        self.reasoning: dict[int, int] = {}
        """content block index -> reasoning block number"""


@stream_parser
def parse_event(
    headers: Mapping[str, Any], payload: bytes, state: StreamState, d: Deployment
) -> list[StreamEvent]:
    """Events from one event-stream message; an exception or error message raises."""
    kind = headers.get(":message-type")
    if kind == "exception":
        name = str(headers.get(":exception-type") or "")
        obj = loads(payload, d) if payload else {}
        message = (str(obj.get("message") or "") if isinstance(obj, dict) else "") or name
        raise classify(name[:1].upper() + name[1:], 500, message, {}, d)
    if kind == "error":
        code = headers.get(":error-code") or "error"
        raise UpstreamServerError(
            f"{code}: {headers.get(':error-message') or 'stream error'}",
            provider=d.provider,
            model=d.model,
        )
    if kind != "event":
        raise malformed(f"event-stream message of type {kind!r}", d)
    event = headers.get(":event-type")
    obj = loads(payload, d)
    if not isinstance(obj, dict):
        raise malformed(f"{event} event is not an object", d)
    if event == "contentBlockDelta":
        delta = obj.get("delta") or {}
        block = int(obj.get("contentBlockIndex") or 0)
        if "text" in delta:
            return [TextDelta(delta["text"])] if delta["text"] else []
        if "toolUse" in delta:
            index = state.tools.setdefault(block, len(state.tools))
            return [ToolCallDelta(index, delta["toolUse"].get("input") or "")]
        if "reasoningContent" in delta:
            thought = state.reasoning.setdefault(block, len(state.reasoning))
            part = delta["reasoningContent"]
            if "redactedContent" in part:
                return [ThinkingDelta(redacted=str(part["redactedContent"]), block=thought)]
            if "signature" in part:
                return [ThinkingDelta(signature=str(part["signature"]), block=thought)]
            text = str(part.get("text") or "")
            return [ThinkingDelta(text, block=thought)] if text else []
        return []  # citations: not part of the answer
    if event == "contentBlockStart":
        use = (obj.get("start") or {}).get("toolUse")
        if use is None:
            return []
        index = state.tools.setdefault(int(obj.get("contentBlockIndex") or 0), len(state.tools))
        return [ToolCallDelta(index, "", use.get("toolUseId"), use.get("name"))]
    if event == "messageStop":
        return [Finish(finish_reason(obj.get("stopReason")), stop_sequence=_stop_sequence(obj))]
    if event == "metadata":
        return [UsageUpdate(usage_of(obj.get("usage")))]
    return []  # messageStart, contentBlockStop and events added later


def loads(data: bytes, d: Deployment) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise malformed(f"invalid JSON {excerpt(data, 200)!r}", d) from None


_FRAME_ERRORS = (KeyError, IndexError, ValueError, struct.error)
"""What botocore raises, past its CRC checks, on headers it cannot read: an unknown value type,
a header cut short, a name that is not UTF-8."""


class EventStreamDecoder:
    """The bytes of a ``application/vnd.amazon.eventstream`` reply in, stream events out.

    botocore's ``EventStreamBuffer`` frames and CRC-checks the messages (a message may span
    network reads); ``parse_event`` reads each. A corrupt frame is the upstream's fault."""

    __slots__ = ("_buffer", "_d", "_parser_error", "_state")

    def __init__(self, d: Deployment) -> None:
        eventstream = botocore("eventstream")
        self._buffer = eventstream.EventStreamBuffer()
        self._parser_error: type[Exception] = eventstream.ParserError
        self._state = StreamState()
        self._d = d

    def feed(self, chunk: bytes) -> Iterator[StreamEvent]:
        self._buffer.add_data(chunk)
        while True:
            try:
                message = next(self._buffer)
            except StopIteration:
                return  # the rest of the message is still on the wire
            except (self._parser_error, *_FRAME_ERRORS) as exc:
                raise malformed(
                    f"corrupt event stream: {type(exc).__name__}: {exc}", self._d
                ) from None
            yield from parse_event(message.headers, message.payload, self._state, self._d)
