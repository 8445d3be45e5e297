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


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}  # what the backend produced, kept visible
    return value if isinstance(value, dict) else {"value": value}


def message_body(result: ChatResult, public_model: str) -> bytes:
    """A whole Anthropic ``message`` for a finished result."""
    choice = result.choices[0] if result.choices else None
    content: list[dict[str, Any]] = []
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
        "model": public_model,
        "content": content,
        "stop_reason": STOP_REASONS.get(finish or "stop", "end_turn"),
        "stop_sequence": None,
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

    __slots__ = ("_id", "_model", "_next", "_open", "_stop", "_tools")

    def __init__(self, id: str, model: str) -> None:
        self._id = _message_id(id)
        self._model = model
        self._next = 0
        self._open: tuple[str, int] | None = None
        """(kind, block index) of the block being streamed: ("text", i) or ("tool3", i)."""
        self._tools: dict[int, int] = {}
        self._stop: str | None = None

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(Usage()),
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
        if isinstance(event, Finish):
            self._stop = STOP_REASONS.get(event.reason, "end_turn")
            return b""
        raise TypeError(f"unknown stream event {event!r}")

    def finish(self, usage: Usage) -> bytes:
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
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
    __slots__ = ("_writer",)

    def __init__(self, writer: MessageStreamWriter) -> None:
        self._writer = writer

    def start(self) -> bytes:
        return self._writer.start()

    def event(self, event: StreamEvent) -> bytes:
        return self._writer.event(event)

    def end(self, stream: ChatStream) -> bytes:
        return cost_comment(stream.cost) + self._writer.finish(stream.usage)

    def error(self, err: TurnoutError, redact: Redactor) -> bytes:
        return error_frame(err, redact)  # in-band, as Anthropic reports a failure mid-stream


class AnthropicMessages:
    """``POST /v1/messages``. Any ``anthropic-version`` is accepted."""

    name = "anthropic_messages"

    def parse(self, obj: Any) -> ChatRequest:
        return to_chat_request(obj)

    def result(self, result: ChatResult, chat: ChatRequest) -> bytes:
        return message_body(result, chat.model)

    def stream(self, stream: ChatStream, chat: ChatRequest) -> _EventStream:
        return _EventStream(MessageStreamWriter(stream.id, chat.model))

    def error_body(self, err: TurnoutError, redact: Redactor) -> dict[str, Any]:
        return error_body(err, redact)

    def error_status(self, err: TurnoutError) -> int:
        return error_status(err)

    def plain_error(
        self, status: int, kind: str, message: str, code: str | None = None
    ) -> dict[str, Any]:
        return plain_error(status, kind, message, code)


ANTHROPIC_MESSAGES = AnthropicMessages()
