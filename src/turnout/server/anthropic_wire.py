"""The Anthropic Messages dialect of the ingress (``POST /v1/messages``): the request parsed
by ``anthropic_request``, and results, stream events and errors in Anthropic's shapes. Pure
functions from library types to bytes; any backend may have answered, nothing here knows
which one did."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..errors import AllAttemptsFailedError, TurnoutError
from ..redaction import Redactor
from ..streaming import ChatStream
from ..types import (
    ChatRequest,
    ChatResult,
    Finish,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from .anthropic_request import to_chat_request
from .openai_wire import cost_comment

__all__ = [
    "ANTHROPIC_MESSAGES",
    "AnthropicMessages",
    "MessageStreamWriter",
    "error_body",
    "error_frame",
    "error_status",
    "message_body",
    "to_chat_request",
]


# --- results ---------------------------------------------------------------------------------

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _message_id(id: str) -> str:
    return id if id.startswith("msg_") else f"msg_{uuid.uuid4().hex[:24]}"


def _usage(usage: Usage) -> dict[str, Any]:
    """Anthropic counts cache reads and writes apart from ``input_tokens``."""
    written = usage.cache_write_tokens
    hour = min(usage.cache_write_1h_tokens, written)
    return {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens - written),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written - hour,
            "ephemeral_1h_input_tokens": hour,
        },
    }


def stop_fields(finish: str | None, matched: str | None, chat: ChatRequest) -> dict[str, Any]:
    """``stop_reason`` and ``stop_sequence``: "stop_sequence" with the string when the backend
    said which of the caller's stop sequences ended the answer, else from the finish reason."""
    asked = [chat.stop] if isinstance(chat.stop, str) else (chat.stop or [])
    if finish in (None, "stop") and matched is not None and matched in asked:
        return {"stop_reason": "stop_sequence", "stop_sequence": matched}
    return {"stop_reason": STOP_REASONS.get(finish or "stop", "end_turn"), "stop_sequence": None}


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}  # what the backend produced, kept visible
    return value if isinstance(value, dict) else {"value": value}


def _thinking(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The signed reasoning blocks a backend returned (Anthropic, Bedrock Converse), verbatim.
    Plain reasoning text (``reasoning_content`` of OpenAI-compatible hosts) is not sent: an
    unsigned block would be refused when the client sends it back to a backend that checks."""
    blocks = extra.get("thinking_blocks")
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []


def message_body(result: ChatResult, chat: ChatRequest) -> bytes:
    """A whole Anthropic ``message`` for a finished result."""
    choice = result.choices[0] if result.choices else None
    content: list[dict[str, Any]] = _thinking(choice.extra) if choice is not None else []
    if choice is not None and choice.content:
        content.append({"type": "text", "text": choice.content})
    for call in (choice.tool_calls if choice else None) or ():
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": fn.get("name") or "",
                "input": _tool_input(fn.get("arguments") or ""),
            }
        )
    finish = choice.finish_reason if choice else None
    body = {
        "id": _message_id(result.id),
        "type": "message",
        "role": "assistant",
        "model": chat.model,
        "content": content,
        **stop_fields(finish, choice.stop_sequence if choice else None, chat),
        "usage": _usage(result.usage),
    }
    return orjson.dumps(body)


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageStreamWriter:
    """Stream events to Anthropic's named SSE events for one response: ``message_start``,
    ``ping``, one ``content_block_start`` / ``_delta`` / ``_stop`` run per text run or tool
    call, then ``message_delta`` (stop reason, final usage) and ``message_stop``. Only the
    first choice is sent (the Messages API has no ``n``)."""

    __slots__ = ("_chat", "_id", "_model", "_next", "_open", "_stop", "_tools")

    def __init__(self, id: str, chat: ChatRequest) -> None:
        self._id = _message_id(id)
        self._chat = chat
        self._model = chat.model
        self._next = 0
        self._open: tuple[str, int] | None = None
        """(kind, block index) of the block being streamed: ("text", i), ("tool3", i) or
        ("thinking2", i)."""
        self._tools: dict[int, int] = {}
        self._stop: dict[str, Any] | None = None

    def start(self, usage: Usage | None = None) -> bytes:
        """``message_start`` (with the input usage when the backend gave it before its first
        token, as Anthropic does), then a ``ping``."""
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(usage or Usage()),
        }
        start = _frame("message_start", {"type": "message_start", "message": message})
        return start + _frame("ping", {"type": "ping"})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index = self._open[1]
        self._open = None
        return _frame("content_block_stop", {"type": "content_block_stop", "index": index})

    def _begin(self, kind: str, block: dict[str, Any]) -> tuple[bytes, int]:
        out = self._close()
        index = self._next
        self._next += 1
        self._open = (kind, index)
        start = {"type": "content_block_start", "index": index, "content_block": block}
        return out + _frame("content_block_start", start), index

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        data = {"type": "content_block_delta", "index": index, "delta": delta}
        return _frame("content_block_delta", data)

    def event(self, event: StreamEvent) -> bytes:
        if isinstance(event, UsageUpdate) or event.choice != 0:
            return b""  # usage goes once, in message_delta (see ``finish``)
        if isinstance(event, TextDelta):
            out = b""
            if self._open is None or self._open[0] != "text":
                out, _ = self._begin("text", {"type": "text", "text": ""})
            assert self._open is not None
            return out + self._delta(self._open[1], {"type": "text_delta", "text": event.text})
        if isinstance(event, ToolCallDelta):
            out = b""
            index = self._tools.get(event.index)
            if index is None:
                block = {
                    "type": "tool_use",
                    "id": event.id or f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": event.name or "",
                    "input": {},
                }
                out, index = self._begin(f"tool{event.index}", block)
                self._tools[event.index] = index
            if event.arguments:
                delta = {"type": "input_json_delta", "partial_json": event.arguments}
                out += self._delta(index, delta)
            return out
        if isinstance(event, ThinkingDelta):
            return self._think(event)
        if isinstance(event, Finish):
            self._stop = stop_fields(event.reason, event.stop_sequence, self._chat)
            return b""
        raise TypeError(f"unknown stream event {event!r}")

    def _think(self, event: ThinkingDelta) -> bytes:
        """Reasoning as Anthropic streams it: a ``thinking`` block of ``thinking_delta``s
        closed by a ``signature_delta``, or a ``redacted_thinking`` block sent whole."""
        kind = f"thinking{event.block}"
        out = b""
        if self._open is None or self._open[0] != kind:
            if event.redacted is not None:
                block = {"type": "redacted_thinking", "data": event.redacted}
                out, _ = self._begin(kind, block)
                return out
            out, _ = self._begin(kind, {"type": "thinking", "thinking": "", "signature": ""})
        assert self._open is not None
        index = self._open[1]
        if event.thinking:
            out += self._delta(index, {"type": "thinking_delta", "thinking": event.thinking})
        if event.signature is not None:
            out += self._delta(index, {"type": "signature_delta", "signature": event.signature})
        return out

    def finish(self, usage: Usage) -> bytes:
        stop = self._stop or {"stop_reason": "end_turn", "stop_sequence": None}
        delta = {
            "type": "message_delta",
            "delta": stop,
            "usage": _usage(usage),
        }
        return (
            self._close()
            + _frame("message_delta", delta)
            + _frame("message_stop", {"type": "message_stop"})
        )


# --- errors ----------------------------------------------------------------------------------

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}


def _overloaded(err: TurnoutError) -> bool:
    return err.type == "overloaded_error"  # an OverloadedError, or an aggregate ending in one


def error_status(err: TurnoutError) -> int:
    """The HTTP status an Anthropic client expects: overloaded is 529 there."""
    return 529 if _overloaded(err) else err.status_code


def error_body(err: TurnoutError, redact: Redactor) -> dict[str, Any]:
    """``{"type": "error", "error": {"type": ..., "message": ...}}``, the message through
    ``redact`` (an upstream's message may quote a key)."""
    message = err.message if isinstance(err, AllAttemptsFailedError) else str(err)
    if _overloaded(err):
        kind = "overloaded_error"
    elif err.status_code in _ERROR_TYPES:
        kind = _ERROR_TYPES[err.status_code]
    else:
        kind = "invalid_request_error" if 400 <= err.status_code < 500 else "api_error"
    return {"type": "error", "error": {"type": kind, "message": redact(message)}}


def error_frame(err: TurnoutError, redact: Redactor) -> bytes:
    """A mid-stream failure, as the API reports one: ``event: error``."""
    return _frame("error", error_body(err, redact))


def plain_error(status: int, kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class _EventStream:
    __slots__ = ("_stream", "_writer")

    def __init__(self, writer: MessageStreamWriter, stream: ChatStream) -> None:
        self._writer = writer
        self._stream = stream

    def start(self) -> bytes:
        # The stream's first event is in by now: its usage is the input usage, if any yet.
        return self._writer.start(self._stream.usage)

    def event(self, event: StreamEvent) -> bytes:
        return self._writer.event(event)

    def end(self, stream: ChatStream) -> bytes:
        return cost_comment(stream.request_cost) + self._writer.finish(stream.usage)

    def error(self, err: TurnoutError, redact: Redactor) -> bytes:
        return error_frame(err, redact)  # in-band, as Anthropic reports a failure mid-stream


class AnthropicMessages:
    """``POST /v1/messages``. Any ``anthropic-version`` is accepted."""

    name = "anthropic_messages"

    def parse(self, obj: Any) -> ChatRequest:
        return to_chat_request(obj)

    def result(self, result: ChatResult, chat: ChatRequest) -> bytes:
        return message_body(result, chat)

    def stream(self, stream: ChatStream, chat: ChatRequest) -> _EventStream:
        return _EventStream(MessageStreamWriter(stream.id, chat), stream)

    def error_body(self, err: TurnoutError, redact: Redactor) -> dict[str, Any]:
        return error_body(err, redact)

    def error_status(self, err: TurnoutError) -> int:
        return error_status(err)

    def plain_error(
        self, status: int, kind: str, message: str, code: str | None = None
    ) -> dict[str, Any]:
        return plain_error(status, kind, message, code)

    def stream_error(self, err: TurnoutError, redact: Redactor) -> bytes:
        return error_frame(err, redact)


ANTHROPIC_MESSAGES = AnthropicMessages()
