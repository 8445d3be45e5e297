"""Ollama's native chat API: ``POST /api/chat``, answered whole (``"stream": false``) or as
newline-delimited JSON. Tool-call arguments travel as objects (the canonical form keeps them
as JSON strings), sampling settings go in ``options``, and a stream that fails midway says so
in an ``{"error": ...}`` line.

Translation is pure functions (``to_request``, ``from_response``, ``parse_line``,
``map_error``); ``OllamaChatAdapter`` is the thin network edge. The OpenAI-compatible ``/v1``
endpoint of the same server is the ``ollama_openai`` host, served by ``openai_chat``.
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
    from_status,
)
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
from .base import HttpAdapter
from .convert import (
    arguments_object,
    arguments_text,
    data_url,
    new_call_id,
    request_fields,
    take_unsupported,
    text_of,
)
from .edge import excerpt, redact
from .malformed import stream_parser
from .native_embeddings import ollama_embed_request, ollama_embed_result

__all__ = [
    "NDJSONDecoder",
    "OllamaChatAdapter",
    "StreamState",
    "from_response",
    "map_error",
    "parse_line",
    "to_request",
]

# --- pure translation: request -------------------------------------------------------------

_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
_NATIVE = frozenset({"keep_alive", "think", "options"})
"""Ollama's own fields, accepted as is (``options`` is merged with the translated ones)."""
_HANDLED = frozenset(
    {
        *_OPTIONS,
        *_NATIVE,
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "parallel_tool_calls",  # the model decides; Ollama has no switch to forward
    }
)


def _messages(messages: list[dict[str, Any]], d: Deployment) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for ``tool_name``
    for m in messages:
        role = m["role"]
        content = m.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text_of(content)})
        elif role == "user":
            msg: dict[str, Any] = {"role": "user", "content": ""}
            if isinstance(content, str):
                msg["content"] = content
            else:
                texts, images = [], []
                for part in content or ():
                    if part.get("type") == "text":
                        texts.append(part["text"])
                    elif part.get("type") == "image_url":
                        images.append(data_url(part["image_url"]["url"], d)[1])
                    else:
                        raise BadRequestError(
                            f"content part of type '{part.get('type')}' cannot be sent to "
                            f"{d.provider} (Ollama takes text and images)",
                            provider=d.provider,
                            model=d.model,
                            param="messages",
                        )
                msg["content"] = "\n".join(texts)
                if images:
                    msg["images"] = images
            out.append(msg)
        elif role == "assistant":
            msg = {"role": "assistant", "content": text_of(content)}
            calls = []
            for call in m.get("tool_calls") or ():
                fn = call["function"]
                names[call["id"]] = fn["name"]
                calls.append(
                    {
                        "function": {
                            "name": fn["name"],
                            "arguments": arguments_object(fn["arguments"], d),
                        }
                    }
                )
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
        elif role == "tool":
            msg = {"role": "tool", "content": text_of(content)}
            name = names.get(m["tool_call_id"]) or m.get("name")
            if name:
                msg["tool_name"] = name
            out.append(msg)
    return out


def to_request(
    request: ChatRequest, d: Deployment, *, stream: bool
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and JSON body for one ``/api/chat`` call."""
    fields = request_fields(request, d)
    if fields.get("tool_choice") not in (None, "auto", "none") and not d.drop_params:
        raise UnsupportedParameterError(
            f"{d.provider} (Ollama) cannot force a tool call: use tool_choice 'auto' or "
            "'none', or set drop_params",
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
    options: dict[str, Any] = {
        native: fields[name] for name, native in _OPTIONS.items() if name in fields
    }
    limit = fields.get("max_completion_tokens") or fields.get("max_tokens")
    if limit:
        options["num_predict"] = limit
    stop = fields.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    extra = fields.get("options") or {}
    if extra:
        options = {**extra, **options}
    if options:
        body["options"] = options

    fmt = fields.get("response_format") or {}
    if fmt.get("type") == "json_object":
        body["format"] = "json"
    elif fmt.get("type") == "json_schema":
        body["format"] = (fmt.get("json_schema") or {}).get("schema") or "json"
    # tool_choice "none" means: offer no tools; Ollama has no other tool_choice setting.
    if fields.get("tools") and fields.get("tool_choice") != "none":
        body["tools"] = fields["tools"]
    for key in ("keep_alive", "think"):
        if key in fields:
            body[key] = fields[key]

    headers = {"Content-Type": "application/json", **d.headers}
    api_key = d.require_key()
    if api_key:
        headers[d.host.auth_header] = d.host.auth_prefix + api_key
    url = d.base_url + d.host.path
    return url, headers, orjson.dumps(body)


# --- pure translation: response ------------------------------------------------------------


def finish_reason(done_reason: str | None, tool_calls: bool) -> str:
    """OpenAI's finish reason for Ollama's ``done_reason`` (``stop``, ``length``, ...)."""
    reason = "length" if done_reason == "length" else "stop"
    return "tool_calls" if tool_calls and reason == "stop" else reason


def usage(obj: Mapping[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=int(obj.get("prompt_eval_count") or 0),
        completion_tokens=int(obj.get("eval_count") or 0),
    )


def _message(obj: Any, d: Deployment) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise UpstreamServerError(
            "malformed response: not a JSON object", provider=d.provider, model=d.model
        )
    if obj.get("error"):
        raise _error(500, obj["error"], {}, d)
    message = obj.get("message") or {}
    if not isinstance(message, dict):
        raise UpstreamServerError(
            "malformed response: 'message' is not an object", provider=d.provider, model=d.model
        )
    return message


def _calls(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        out.append(
            {
                "id": call.get("id") or new_call_id(),
                "type": "function",
                "function": {
                    "name": fn.get("name", ""),
                    "arguments": arguments_text(fn.get("arguments")),
                },
            }
        )
    return out


def from_response(obj: Any, d: Deployment) -> ChatResult:
    """A ChatResult from a whole ``/api/chat`` answer."""
    message = _message(obj, d)
    calls = _calls(message)
    content = message.get("content") or ""
    extra = {"reasoning_content": message["thinking"]} if message.get("thinking") else {}
    choice = Choice(
        index=0,
        content=content if content or not calls else None,
        tool_calls=calls or None,
        finish_reason=finish_reason(obj.get("done_reason"), bool(calls)),
        extra=extra,
    )
    return ChatResult(
        id="",
        model=d.model,
        provider=d.provider,
        choices=[choice],
        usage=usage(obj),
        created=int(time.time()),
        deployment=d.id,
    )


class StreamState:
    """How many tool calls the stream has carried (each arrives whole, numbered in order)."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0


@stream_parser
def parse_line(obj: Any, d: Deployment, state: StreamState) -> list[StreamEvent]:
    """Events from one NDJSON line; an ``{"error": ...}`` line raises."""
    message = _message(obj, d)
    events: list[StreamEvent] = []
    if message.get("content"):
        events.append(TextDelta(message["content"]))
    for call in _calls(message):
        fn = call["function"]
        events.append(ToolCallDelta(state.calls, fn["arguments"], call["id"], fn["name"]))
        state.calls += 1
    if obj.get("done"):
        events.append(Finish(finish_reason(obj.get("done_reason"), state.calls > 0)))
        events.append(UsageUpdate(usage(obj)))
    return events


class NDJSONDecoder:
    """Split a byte stream into lines (a line may span network reads)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._buf + chunk).split(b"\n")
        self._buf = lines.pop()
        return [line for line in lines if line.strip()]

    def close(self) -> list[bytes]:
        rest, self._buf = self._buf, b""
        return [rest] if rest.strip() else []


# --- pure translation: errors --------------------------------------------------------------


def _error(status: int, err: Any, headers: Mapping[str, str], d: Deployment) -> TurnoutError:
    message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
    return from_status(
        status, redact(message, d), headers=headers, provider=d.provider, model=d.model
    )


def map_error(status: int, raw: bytes, headers: Mapping[str, str], d: Deployment) -> TurnoutError:
    """The hierarchy's error for an Ollama error response (``{"error": "..."}``)."""
    try:
        obj = orjson.loads(raw)
        err = obj.get("error") if isinstance(obj, dict) else None
    except orjson.JSONDecodeError:
        err = None
    if not err:
        err = excerpt(raw, 500) or f"HTTP {status}"
    return _error(status, err, headers, d)


# --- network edge --------------------------------------------------------------------------


class OllamaChatAdapter(HttpAdapter):
    wire_api = "ollama_chat"
    map_error = staticmethod(map_error)

    def models_url(self, d: Deployment) -> str:
        return d.base_url.rstrip("/") + "/api/tags"

    async def embed(
        self, request: EmbeddingRequest, d: Deployment, t: TimeoutsConfig
    ) -> EmbeddingResult:
        url, headers, body = ollama_embed_request(request, d)
        texts = request.texts or []
        obj = await self.call(d, t).post_json(url, headers, body)
        return ollama_embed_result(obj, d, len(texts))

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
            decoder = NDJSONDecoder()
            async for chunk in resp.content.iter_any():
                for line in decoder.feed(chunk):
                    for event in parse_line(call.loads(line), d, state):
                        yield event
            for line in decoder.close():
                for event in parse_line(call.loads(line), d, state):
                    yield event
