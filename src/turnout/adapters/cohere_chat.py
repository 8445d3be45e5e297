"""Cohere's v2 chat API (``POST /v2/chat``): whole answers, or named SSE events
(``message-start``, ``content-delta``, ``tool-call-start`` / ``-delta`` / ``-end``,
``message-end`` carrying the finish reason and usage, or the error of a failed generation).

Translation is pure functions (``to_request``, ``from_response``, ``parse_event``,
``map_error``); ``CohereChatAdapter`` is the thin network edge. Usage counts Cohere's
``billed_units`` (what the account pays, so what cost is computed from), falling back to
``tokens`` when an answer carries no billing. A tool plan (the text Cohere writes before its
tool calls) is kept as ``reasoning_content`` of a whole answer and sent back as ``tool_plan``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import (
    BadRequestError,
    TurnoutError,
    UnsupportedParameterError,
    UpstreamServerError,
    UpstreamTimeoutError,
    from_status,
)
from ..sse import SSEDecoder
from ..types import (
    ChatRequest,
    ChatResult,
    Choice,
    EmbeddingRequest,
    EmbeddingResult,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from .base import HttpAdapter, join_version
from .convert import request_fields, take_unsupported, text_of
from .edge import excerpt, redact
from .malformed import stream_parser
from .native_embeddings import cohere_embed_request, cohere_embed_result

__all__ = [
    "CohereChatAdapter",
    "StreamState",
    "from_response",
    "map_error",
    "parse_event",
    "to_request",
]

# --- pure translation: request -------------------------------------------------------------

_SAME = ("temperature", "seed", "frequency_penalty", "presence_penalty")
_NATIVE = frozenset(
    {"k", "safety_mode", "documents", "citation_options", "thinking", "strict_tools", "priority"}
)
"""Cohere's own request fields, accepted as is (e.g. from a deployment's ``params``)."""
_HANDLED = frozenset(
    {
        *_SAME,
        *_NATIVE,
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "parallel_tool_calls",  # Cohere decides; there is no switch to forward
    }
)


def _messages(messages: list[dict[str, Any]], d: Deployment) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        content = m.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text_of(content)})
        elif role == "user":
            if isinstance(content, str):
                out.append({"role": "user", "content": content})
            else:
                # Cohere v2 takes OpenAI's text and image_url parts as they are.
                for part in content or ():
                    if part.get("type") not in ("text", "image_url"):
                        raise BadRequestError(
                            f"content part of type '{part.get('type')}' cannot be sent to "
                            f"{d.provider} (Cohere takes text and images)",
                            provider=d.provider,
                            model=d.model,
                            param="messages",
                        )
                out.append({"role": "user", "content": list(content or ())})
        elif role == "assistant":
            msg: dict[str, Any] = {"role": "assistant"}
            text = text_of(content)
            calls = m.get("tool_calls")
            if calls:
                msg["tool_calls"] = [
                    {"id": c["id"], "type": "function", "function": c["function"]} for c in calls
                ]
                if text:
                    msg["tool_plan"] = text
            else:
                msg["content"] = text
            out.append(msg)
        elif role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": m["tool_call_id"], "content": text_of(content)}
            )
    return out


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    out = {k: fn[k] for k in ("name", "description", "parameters") if fn.get(k) is not None}
    return {"type": "function", "function": out}


def to_request(
    request: ChatRequest, d: Deployment, *, stream: bool
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and JSON body for one ``/v2/chat`` call."""
    fields = request_fields(request, d)
    choice = fields.get("tool_choice")
    if isinstance(choice, dict) and not d.drop_params:
        raise UnsupportedParameterError(
            f"{d.provider} (Cohere) cannot be told which tool to call: use tool_choice "
            "'required', 'auto' or 'none', or set drop_params",
            provider=d.provider,
            model=d.model,
            param="tool_choice",
        )
    take_unsupported(fields, _HANDLED, d)
    body: dict[str, Any] = {
        "model": d.model,
        "messages": _messages(fields["messages"], d),
        "stream": stream,
    }
    body.update({k: fields[k] for k in _SAME if k in fields})
    if "top_p" in fields:
        body["p"] = fields["top_p"]
    limit = fields.get("max_completion_tokens") or fields.get("max_tokens")
    if limit:
        body["max_tokens"] = limit
    stop = fields.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if fields.get("tools"):
        body["tools"] = [_tool(t) for t in fields["tools"]]
        if choice in ("required", "none"):
            body["tool_choice"] = choice.upper()
    fmt = fields.get("response_format") or {}
    if fmt.get("type") == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        body["response_format"] = {"type": "json_object"}
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            body["response_format"]["json_schema"] = schema
    body.update({k: fields[k] for k in _NATIVE if k in fields})

    headers = {"Content-Type": "application/json", **d.headers}
    api_key = d.require_key()
    if api_key:
        headers[d.host.auth_header] = d.host.auth_prefix + api_key
    if stream:
        headers["Accept"] = "text/event-stream"
    return d.base_url + d.host.path, headers, orjson.dumps(body)


# --- pure translation: response ------------------------------------------------------------

_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}


def _finish(reason: Any, error: Any, d: Deployment) -> str:
    """OpenAI's finish reason; a generation Cohere reports as failed raises instead."""
    if reason == "TIMEOUT":
        raise UpstreamTimeoutError(
            f"generation timed out upstream: {error or 'TIMEOUT'}",
            provider=d.provider,
            model=d.model,
        )
    if reason == "ERROR" or error:
        raise UpstreamServerError(
            f"generation failed: {error or 'ERROR'}", provider=d.provider, model=d.model
        )
    return _FINISH.get(reason, "stop")


def usage(raw: Mapping[str, Any] | None) -> Usage:
    if not raw:
        return Usage()
    counts = raw.get("billed_units") or raw.get("tokens") or {}
    return Usage(
        prompt_tokens=int(counts.get("input_tokens") or 0),
        completion_tokens=int(counts.get("output_tokens") or 0),
        cached_tokens=int(raw.get("cached_tokens") or 0),
    )


def _calls(raw: Any) -> list[dict[str, Any]]:
    out = []
    for call in raw or ():
        fn = call.get("function") or {}
        out.append(
            {
                "id": call.get("id") or "",
                "type": "function",
                "function": {"name": fn.get("name", ""), "arguments": fn.get("arguments") or ""},
            }
        )
    return out


def from_response(obj: Any, d: Deployment) -> ChatResult:
    """A ChatResult from a ``/v2/chat`` answer."""
    if not isinstance(obj, dict) or not isinstance(obj.get("message"), dict):
        raise UpstreamServerError(
            "malformed response: no 'message' object", provider=d.provider, model=d.model
        )
    message = obj["message"]
    items = message.get("content") or []
    if not isinstance(items, list):
        raise UpstreamServerError(
            "malformed response: 'content' is not a list", provider=d.provider, model=d.model
        )
    text = "".join(i.get("text") or "" for i in items if i.get("type") == "text")
    thinking = "".join(i.get("thinking") or "" for i in items if i.get("type") == "thinking")
    reasoning = thinking or message.get("tool_plan") or ""
    calls = _calls(message.get("tool_calls"))
    choice = Choice(
        index=0,
        content=text if text or not calls else None,
        tool_calls=calls or None,
        finish_reason=_finish(obj.get("finish_reason"), None, d),
        extra={"reasoning_content": reasoning} if reasoning else {},
    )
    return ChatResult(
        id=str(obj.get("id") or ""),
        model=d.model,
        provider=d.provider,
        choices=[choice],
        usage=usage(obj.get("usage")),
        created=int(time.time()),
        deployment=d.id,
    )


class StreamState:
    """Cohere numbers tool calls by its own ``index``; this keeps them dense and in order."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}


@stream_parser
def parse_event(obj: Any, d: Deployment, state: StreamState) -> list[StreamEvent]:
    """Events from one v2 stream event; unknown event types are ignored."""
    if not isinstance(obj, dict):
        raise UpstreamServerError("malformed stream event", provider=d.provider, model=d.model)
    kind = obj.get("type")
    delta = obj.get("delta") or {}
    message = delta.get("message") or {}
    if kind == "content-delta":
        text = (message.get("content") or {}).get("text")
        return [TextDelta(text)] if text else []
    if kind == "tool-call-start":
        call = message.get("tool_calls") or {}
        n = state.calls.setdefault(obj.get("index", len(state.calls)), len(state.calls))
        fn = call.get("function") or {}
        return [ToolCallDelta(n, fn.get("arguments") or "", call.get("id"), fn.get("name"))]
    if kind == "tool-call-delta":
        args = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
        n = state.calls.get(obj.get("index", 0), 0)
        return [ToolCallDelta(n, args)] if args else []
    if kind == "message-end":
        reason = _finish(delta.get("finish_reason"), delta.get("error"), d)
        return [Finish(reason), UsageUpdate(usage(delta.get("usage")))]
    return []


# --- pure translation: errors --------------------------------------------------------------

_STATUS = {498: 401, 402: 403, 499: 500}
"""Cohere's own codes: 498 invalid token, 402 payment required (the account may not use the
model), 499 request cancelled upstream."""


def map_error(status: int, raw: bytes, headers: Mapping[str, str], d: Deployment) -> TurnoutError:
    """The hierarchy's error for a Cohere error response (``{"id", "message"}``)."""
    try:
        obj = orjson.loads(raw)
        message = str(obj.get("message") or obj) if isinstance(obj, dict) else str(obj)
    except orjson.JSONDecodeError:
        message = excerpt(raw, 500) or f"HTTP {status}"
    return from_status(
        _STATUS.get(status, status),
        redact(message, d),
        headers=headers,
        provider=d.provider,
        model=d.model,
    )


# --- network edge --------------------------------------------------------------------------


class CohereChatAdapter(HttpAdapter):
    wire_api = "cohere_chat"
    map_error = staticmethod(map_error)

    def models_url(self, d: Deployment) -> str:
        return join_version(d.base_url, "/v1", "/models")

    async def embed(
        self, request: EmbeddingRequest, d: Deployment, t: TimeoutsConfig
    ) -> EmbeddingResult:
        url, headers, body = cohere_embed_request(request, d)
        texts = request.texts or []
        obj = await self.call(d, t).post_json(url, headers, body)
        return cohere_embed_result(obj, d, len(texts))

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        url, headers, body = to_request(request, d, stream=False)
        obj = await self.call(d, t).post_json(url, headers, body)
        return from_response(obj, d)

    async def stream(
        self, request: ChatRequest, d: Deployment, t: TimeoutsConfig
    ) -> AsyncIterator[StreamEvent]:
        url, headers, body = to_request(request, d, stream=True)
        state = StreamState()
        call = self.call(d, t)
        async with call.open_stream(url, headers, body) as resp:
            decoder = SSEDecoder()
            async for chunk in resp.content.iter_any():
                for sse in decoder.feed(chunk):
                    if sse.data == "[DONE]":
                        return
                    for event in parse_event(call.loads(sse.data), d, state):
                        yield event
            for sse in decoder.close():
                if sse.data != "[DONE]":
                    for event in parse_event(call.loads(sse.data), d, state):
                        yield event
