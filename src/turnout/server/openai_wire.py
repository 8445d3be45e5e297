"""The OpenAI Chat Completions dialect of the ingress: the request body parsed into the
canonical request, and results, stream chunks and errors in the OpenAI shape. Pure functions
from library types to bytes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from ..errors import AllAttemptsFailedError, TurnoutError
from ..gateway import parse_request
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

__all__ = [
    "OPENAI_CHAT",
    "ChunkWriter",
    "OpenAIChat",
    "OpenAIErrors",
    "error_body",
    "format_usd",
    "header_text",
    "header_texts",
    "result_body",
]

_DONE = b"data: [DONE]\n\n"
# Printable ASCII but '%': what a header value may hold as is.
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%")


def format_usd(cost: float) -> str:
    """A cost as a plain decimal (never ``1e-07``), to the micro-cent."""
    return f"{cost:.10f}".rstrip("0").rstrip(".") or "0"


def header_text(value: str) -> str:
    """``value`` fit for a response header: printable ASCII passes as is; anything else
    (non-Latin-1 text, control characters, CR/LF that would split the response, and ``%``)
    is percent-encoded as UTF-8, so no text from a client or an upstream can break a
    response or inject a header."""
    if value.isascii() and value.isprintable() and "%" not in value:
        return value
    return quote(value, safe=_HEADER_SAFE)


def header_texts(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with every value through ``header_text``; all of them checked in one scan
    first, since they are nearly always plain already (a response's seven headers)."""
    joined = "".join(headers.values())
    if joined.isascii() and joined.isprintable() and "%" not in joined:
        return headers
    return {k: header_text(v) for k, v in headers.items()}


def result_body(result: ChatResult, public_model: str) -> bytes:
    choices = []
    for c in result.choices:
        message: dict[str, Any] = {"role": "assistant", "content": c.content}
        if c.tool_calls:
            message["tool_calls"] = c.tool_calls
        message["refusal"] = c.refusal
        message.update(c.extra)
        choices.append(
            {
                "index": c.index,
                "message": message,
                "finish_reason": c.finish_reason,
                "logprobs": None,
            }
        )
    body: dict[str, Any] = {
        "id": result.id,
        "object": "chat.completion",
        "created": result.created,
        "model": public_model,
        "choices": choices,
        "usage": result.usage.to_openai(),
    }
    if result.system_fingerprint:
        body["system_fingerprint"] = result.system_fingerprint
    return orjson.dumps(body)


class ChunkWriter:
    """Turns stream events into ``data: {chunk}\\n\\n`` frames for one response (the
    dialect's ``StreamRender``: ``start``, ``event`` per event, ``end`` or ``error``)."""

    __slots__ = ("_head", "_include_usage", "_roles_sent")

    def __init__(self, id: str, created: int, model: str, include_usage: bool) -> None:
        self._head = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._roles_sent: set[int] = set()
        self._include_usage = include_usage

    def _frame(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**self._head, "choices": choices, **extra}) + b"\n\n"

    def _delta(self, choice: int, delta: dict[str, Any]) -> dict[str, Any]:
        if choice not in self._roles_sent:
            self._roles_sent.add(choice)
            delta = {"role": "assistant", **delta}
        return {"index": choice, "delta": delta, "finish_reason": None, "logprobs": None}

    def event(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            return self._frame([self._delta(event.choice, {"content": event.text})])
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
            fn: dict[str, Any] = {"arguments": event.arguments}
            if event.name is not None:
                fn["name"] = event.name
            call["function"] = fn
            if event.extra:
                call.update(event.extra)
            return self._frame([self._delta(event.choice, {"tool_calls": [call]})])
        if isinstance(event, Finish):
            choice = self._delta(event.choice, {})
            choice["finish_reason"] = event.reason
            return self._frame([choice])
        if isinstance(event, ThinkingDelta):
            if not event.thinking:
                return b""  # signatures and redacted blocks: in the final message's extras only
            return self._frame([self._delta(event.choice, {"reasoning_content": event.thinking})])
        if isinstance(event, UsageUpdate):
            return b""  # usage goes once, at the end (see ``usage``)
        raise TypeError(f"unknown stream event {event!r}")

    def start(self) -> bytes:
        return b""

    def end(self, stream: ChatStream) -> bytes:
        cost = stream.request_cost
        return self.usage(stream.usage, cost) + cost_comment(cost) + _DONE

    def error(self, err: TurnoutError, redact: Redactor) -> bytes:
        return error_frame(err, redact)

    def usage(self, usage: Usage, cost: float | None = None) -> bytes:
        """The final usage chunk (when the client asked for it), with ``cost_usd`` added
        when the price is known."""
        if not self._include_usage:
            return b""
        body = usage.to_openai()
        if cost is not None:
            body["cost_usd"] = cost
        return self._frame([], usage=body)


def error_body(err: TurnoutError, redact: Redactor) -> dict[str, Any]:
    """The OpenAI error object, every string in it through ``redact`` (an upstream's message
    may quote a key)."""
    error: dict[str, Any] = {
        "message": str(err) if not isinstance(err, AllAttemptsFailedError) else err.message,
        "type": err.type,
        "param": err.param,
        "code": err.code,
    }
    if isinstance(err, AllAttemptsFailedError):
        error["attempts"] = [
            {
                "deployment": a.deployment,
                "status": a.error.status_code,
                "type": a.error.type,
                "message": a.error.message,
            }
            for a in err.attempts
        ]
        if err.skipped:
            error["skipped"] = [{"deployment": d, "reason": why} for d, why in err.skipped]
    return {"error": redact.value(error)}


def error_frame(err: TurnoutError, redact: Redactor) -> bytes:
    """A mid-stream failure: a chunk that carries ``error`` (OpenAI SDKs raise on it)."""
    return b"data: " + orjson.dumps(error_body(err, redact)) + b"\n\n"


def plain_error(status: int, kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def cost_comment(cost: float | None) -> bytes:
    """A stream's cost is known only at its end, after the headers: an SSE comment (which
    every SSE client skips) carries it, as a trailer would."""
    if cost is None:
        return b""
    return b": x-turnout-cost-usd=" + format_usd(cost).encode() + b"\n\n"


class OpenAIErrors:
    """Errors in OpenAI's shape: the part every OpenAI surface (chat, embeddings, responses)
    shares."""

    def error_body(self, err: TurnoutError, redact: Redactor) -> dict[str, Any]:
        return error_body(err, redact)

    def error_status(self, err: TurnoutError) -> int:
        return err.status_code

    def plain_error(
        self, status: int, kind: str, message: str, code: str | None = None
    ) -> dict[str, Any]:
        return plain_error(status, kind, message, code)

    def stream_error(self, err: TurnoutError, redact: Redactor) -> bytes:
        return error_frame(err, redact)


class OpenAIChat(OpenAIErrors):
    """``POST /v1/chat/completions``."""

    name = "openai_chat"

    def parse(self, obj: Any) -> ChatRequest:
        return parse_request(obj)

    def result(self, result: ChatResult, chat: ChatRequest) -> bytes:
        return result_body(result, chat.model)

    def stream(self, stream: ChatStream, chat: ChatRequest) -> ChunkWriter:
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        return ChunkWriter(stream.id, stream.created, chat.model, include_usage)


OPENAI_CHAT = OpenAIChat()
