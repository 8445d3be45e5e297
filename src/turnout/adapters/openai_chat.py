"""OpenAI Chat Completions wire API, spoken by every OpenAI-compatible host (see ``hosts``).

Translation is pure functions (``to_request``, ``from_response``, ``parse_chunk``,
``map_error``); ``OpenAIChatAdapter`` is the thin network edge around them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import (
    TurnoutError,
    UnsupportedParameterError,
    UpstreamServerError,
    from_status,
)
from ..sse import SSEDecoder
from ..streaming import ChatStream
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
from .edge import excerpt, redact
from .malformed import stream_parser
from .openai_embeddings import from_embedding_response, to_embedding_request

__all__ = ["OpenAIChatAdapter", "from_response", "map_error", "parse_chunk", "to_request"]


# --- pure translation ----------------------------------------------------------------------


def _mistral(body: dict[str, Any]) -> None:
    # Mistral accepts "any" where OpenAI says "required"; everything else already matches.
    if body.get("tool_choice") == "required":
        body["tool_choice"] = "any"


_BODY_QUIRKS: Mapping[str, Callable[[dict[str, Any]], None]] = {"mistral": _mistral}


def _without_anthropic_fields(body: dict[str, Any], keep_cache: bool) -> None:
    """Take out what only Anthropic-style backends read: the ``thinking`` setting, assistant
    ``thinking_blocks`` (signed reasoning no OpenAI-compatible host verifies or accepts), a
    tool message's
    ``is_error`` flag and, unless the host
    reads them, ``cache_control`` breakpoints (OpenAI-compatible hosts cache prompts on their
    own). The conversation means the same without them."""
    body.pop("thinking", None)  # Anthropic's reasoning switch: no OpenAI spelling to map to
    for m in body.get("messages") or ():
        m.pop("thinking_blocks", None)
        m.pop("is_error", None)  # the tool result's text says so (convert.TOOL_ERROR_MARK)
        if keep_cache:
            continue
        m.pop("cache_control", None)
        if isinstance(m.get("content"), list):
            for part in m["content"]:
                part.pop("cache_control", None)
        for call in m.get("tool_calls") or ():
            call.pop("cache_control", None)
    if not keep_cache:
        for tool in body.get("tools") or ():
            tool.pop("cache_control", None)


def to_request(
    request: ChatRequest, d: Deployment, *, stream: bool
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and JSON body for one upstream call."""
    host = d.host
    body = request.to_openai()
    _without_anthropic_fields(body, host.cache_control)
    for key, value in d.params.items():
        body.setdefault(key, value)
    body["model"] = d.model
    if stream:
        body["stream"] = True
        if host.stream_usage:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        else:
            body.pop("stream_options", None)
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    for name in host.unsupported & body.keys():
        if not d.drop_params:
            raise UnsupportedParameterError(
                f"'{name}' is not supported by {d.provider}; remove it or set drop_params",
                provider=d.provider,
                model=d.model,
                param=name,
            )
        del body[name]
    for old, new in host.renames.items():
        if old in body:
            body[new] = body.pop(old)
    if host.body_quirks:
        _BODY_QUIRKS[host.body_quirks](body)

    url = d.base_url + host.path
    if d.query:
        url += "?" + urlencode(d.query)
    headers = {"Content-Type": "application/json", **d.headers}
    api_key = d.require_key()
    if api_key:
        headers[host.auth_header] = host.auth_prefix + api_key
    if stream:
        headers["Accept"] = "text/event-stream"
    return url, headers, orjson.dumps(body)


def _usage(raw: Mapping[str, Any] | None) -> Usage:
    if not raw:
        return Usage()
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(prompt.get("cached_tokens") or 0),
        reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
    )


_MESSAGE_KNOWN = frozenset({"role", "content", "tool_calls", "refusal"})


def from_response(obj: Any, d: Deployment) -> ChatResult:
    """A ChatResult from an upstream ``chat.completion`` body."""
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        raise UpstreamServerError(
            "malformed response: no 'choices' list", provider=d.provider, model=d.model
        )
    choices = []
    for i, raw in enumerate(obj["choices"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("message") or {}, dict):
            raise UpstreamServerError(
                f"malformed response: choices[{i}] is not an object",
                provider=d.provider,
                model=d.model,
            )
        message = raw.get("message") or {}
        extra = {k: v for k, v in message.items() if k not in _MESSAGE_KNOWN and v is not None}
        matched = raw.get("stop_reason")  # vLLM and SGLang: the stop string that matched
        choices.append(
            Choice(
                index=raw.get("index", i),
                content=message.get("content"),
                tool_calls=message.get("tool_calls") or None,
                finish_reason=raw.get("finish_reason"),
                refusal=message.get("refusal"),
                extra=extra,
                stop_sequence=matched if isinstance(matched, str) else None,
            )
        )
    return ChatResult(
        id=str(obj.get("id") or ""),
        model=d.model,
        provider=d.provider,
        choices=choices,
        usage=_usage(obj.get("usage")),
        created=int(obj.get("created") or time.time()),
        deployment=d.id,
        system_fingerprint=obj.get("system_fingerprint"),
    )


@stream_parser
def parse_chunk(obj: Any, d: Deployment) -> list[StreamEvent]:
    """Events from one ``chat.completion.chunk``; an in-stream ``error`` object raises."""
    if not isinstance(obj, dict):
        raise UpstreamServerError("malformed stream chunk", provider=d.provider, model=d.model)
    if obj.get("error"):
        err = obj["error"]
        code = err.get("code") if isinstance(err, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        message = redact(_message(err), d)
        raise from_status(status, message, provider=d.provider, model=d.model)
    events: list[StreamEvent] = []
    for raw in obj.get("choices") or ():
        if not isinstance(raw, dict) or not isinstance(raw.get("delta") or {}, dict):
            raise UpstreamServerError(
                "malformed stream chunk: a choice is not an object",
                provider=d.provider,
                model=d.model,
            )
        index = raw.get("index", 0)
        delta = raw.get("delta") or {}
        text = delta.get("content")
        if text:
            events.append(TextDelta(text, index))
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            events.append(
                ToolCallDelta(
                    index=call.get("index", 0),
                    arguments=fn.get("arguments") or "",
                    id=call.get("id"),
                    name=fn.get("name"),
                    choice=index,
                )
            )
        if raw.get("finish_reason"):
            matched = raw.get("stop_reason")  # vLLM and SGLang: the stop string that matched
            matched = matched if isinstance(matched, str) else None
            events.append(Finish(raw["finish_reason"], index, matched))
    if obj.get("usage"):
        events.append(UsageUpdate(_usage(obj["usage"])))
    return events


def _message(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or err.get("error") or err)
    return str(err)


def map_error(status: int, raw: bytes, headers: Mapping[str, str], d: Deployment) -> TurnoutError:
    """The hierarchy's error for an upstream HTTP error response."""
    code: str | None = None
    try:
        obj = orjson.loads(raw)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        message = _message(err)
        if isinstance(err, dict) and isinstance(err.get("code"), str):
            code = err["code"]
    except orjson.JSONDecodeError:
        message = excerpt(raw, 500) or f"HTTP {status}"
    message = redact(message, d)
    if status == 403 and "not allowed on sandbox model" in message.lower():
        from ..blaxel import sandbox_error

        return sandbox_error(message, d.provider, d.model, d.settings.get("workspace"))
    return from_status(
        status, message, headers=headers, provider=d.provider, model=d.model, code=code
    )


# --- network edge --------------------------------------------------------------------------


class OpenAIChatAdapter(HttpAdapter):
    wire_api = "openai_chat"
    reasoning_effort = True
    """Carries ``reasoning_effort`` (see ``routing.executor.fitted``)."""
    map_error = staticmethod(map_error)

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        limit = d.host.stream_above_max_tokens
        if limit is not None and (request.output_limit or 0) > limit:
            stream = ChatStream(
                self.stream(request, d, t),
                id="",
                provider=d.provider,
                model=d.model,
                deployment=d.id,
            )
            return await stream.collect()
        url, headers, body = to_request(request, d, stream=False)
        return from_response(await self.call(d, t).post_json(url, headers, body), d)

    async def embed(
        self, request: EmbeddingRequest, d: Deployment, t: TimeoutsConfig
    ) -> EmbeddingResult:
        url, headers, body = to_embedding_request(request, d)
        count = len(request.texts or request.tokens or ())
        obj = await self.call(d, t).post_json(url, headers, body)
        return from_embedding_response(obj, d, count)

    async def stream(
        self, request: ChatRequest, d: Deployment, t: TimeoutsConfig
    ) -> AsyncIterator[StreamEvent]:
        url, headers, body = to_request(request, d, stream=True)
        call = self.call(d, t)
        async with call.open_stream(url, headers, body) as resp:
            if resp.content_type == "application/json":
                # Some hosts ignore "stream": answer whole; replay it as events.
                for event in _replay(from_response(call.loads(await resp.read()), d)):
                    yield event
                return
            decoder = SSEDecoder()
            async for chunk in resp.content.iter_any():
                for sse in decoder.feed(chunk):
                    if sse.data == "[DONE]":
                        return
                    for event in parse_chunk(call.loads(sse.data), d):
                        yield event
            for sse in decoder.close():
                if sse.data != "[DONE]":
                    for event in parse_chunk(call.loads(sse.data), d):
                        yield event


def _replay(result: ChatResult) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for choice in result.choices:
        if choice.content:
            events.append(TextDelta(choice.content, choice.index))
        for n, call in enumerate(choice.tool_calls or ()):
            fn = call.get("function", {})
            events.append(
                ToolCallDelta(
                    n, fn.get("arguments", ""), call.get("id"), fn.get("name"), choice.index
                )
            )
        events.append(Finish(choice.finish_reason or "stop", choice.index, choice.stop_sequence))
    events.append(UsageUpdate(result.usage))
    return events
