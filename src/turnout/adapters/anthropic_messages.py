"""Anthropic Messages wire API (``POST /v1/messages``), spoken by the ``anthropic`` host.

Translation is pure functions (``to_request``, ``from_response``, ``StreamParser``,
``map_error``); ``AnthropicMessagesAdapter`` is the thin network edge around them (``edge``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import orjson

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import BadRequestError, TurnoutError, UpstreamServerError, from_status
from ..sse import ServerSentEvent, SSEDecoder
from ..types import (
    ChatRequest,
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
from .base import HttpAdapter, auth_headers, join_version
from .convert import (
    arguments_object,
    arguments_text,
    data_url,
    request_fields,
    take_unsupported,
    tool_error,
)
from .edge import excerpt, loads, redact
from .malformed import stream_parser

__all__ = [
    "COUNTED",
    "DEFAULT_MAX_TOKENS",
    "JSON_OBJECT_INSTRUCTION",
    "AnthropicMessagesAdapter",
    "StreamParser",
    "count_from_response",
    "from_response",
    "map_error",
    "parse_stream",
    "to_count_request",
    "to_request",
]

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` is required by the Messages API; used when neither the caller nor the
catalogue entry (``max_output``) gives one."""

FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_HANDLED = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
    }
)
_NATIVE = frozenset({"top_k", "thinking", "output_config"})
"""Messages API fields with no OpenAI spelling, passed through as given."""

JSON_OBJECT_INSTRUCTION = (
    "Respond with one valid JSON object and nothing else: no prose, no code fences."
)
"""The Messages API constrains output only to a full JSON schema (``output_config.format``);
``json_object`` (any object) has no native equivalent, so it is asked for in the system prompt."""


# --- request ---------------------------------------------------------------------------------


def _media(url: str, d: Deployment) -> dict[str, Any]:
    """An image or document source: data URLs inline as base64, links as ``url`` sources."""
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    mime, data = data_url(url, d)
    return {"type": "base64", "media_type": mime, "data": data}


def _keep_cache(block: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _blocks(content: Any, d: Deployment) -> list[dict[str, Any]]:
    """OpenAI message content as Anthropic content blocks (empty text is dropped: the API
    rejects empty text blocks)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get("text") or part.get("refusal") or ""
            if text:
                out.append(_keep_cache({"type": "text", "text": text}, part))
        elif kind == "image_url":
            source = _media(part["image_url"]["url"], d)
            out.append(_keep_cache({"type": "image", "source": source}, part))
        elif kind == "file" and str(part["file"].get("file_data", "")).startswith("data:"):
            source = _media(part["file"]["file_data"], d)
            out.append(_keep_cache({"type": "document", "source": source}, part))
        elif not d.drop_params:
            raise BadRequestError(
                f"{d.provider} (anthropic_messages) cannot take '{kind}' content",
                provider=d.provider,
                model=d.model,
                param="messages",
            )
    return out


def _system_text(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [_keep_cache({"type": "text", "text": p["text"]}, p) for p in content if p.get("text")]


def _messages(
    messages: Iterable[Mapping[str, Any]], d: Deployment
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages). System and developer messages go to the top-level system
    prompt wherever they stood; tool results become ``tool_result`` blocks of a user turn; and
    consecutive turns of one role merge, tool results first (the API wants them so)."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role in ("system", "developer"):
            system.extend(_system_text(m["content"]))
            continue
        if role == "tool":
            failed, content = tool_error(m)
            result = content if isinstance(content, str) else _blocks(content, d)
            block = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": result}
            if failed:
                block["is_error"] = True
            blocks = [_keep_cache(block, m)]
            role = "user"
        elif role == "assistant":
            # Reasoning first, verbatim (the API checks each signature), then the content.
            blocks = [dict(b) for b in m.get("thinking_blocks") or ()]
            blocks += _blocks(m.get("content"), d)
            for call in m.get("tool_calls") or ():
                fn = call["function"]
                use = {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": fn["name"],
                    "input": arguments_object(fn.get("arguments") or "", d),
                }
                blocks.append(_keep_cache(use, call))
        else:
            blocks = _blocks(m["content"], d)
        if out and out[-1]["role"] == role:
            prev = out[-1]["content"]
            results = [b for b in blocks if b["type"] == "tool_result"]
            others = [b for b in blocks if b["type"] != "tool_result"]
            lead = sum(1 for b in prev if b["type"] == "tool_result")
            out[-1]["content"] = prev[:lead] + results + prev[lead:] + others
        else:
            out.append({"role": role, "content": blocks})
    for m in out:  # plain single-text turns stay strings, as people write them
        blocks = m["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text" and len(blocks[0]) == 2:
            m["content"] = blocks[0]["text"]
    return system, out


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        fn = tool["function"]
        entry: dict[str, Any] = {
            "name": fn["name"],
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            entry["description"] = fn["description"]
        if fn.get("strict"):
            entry["strict"] = True
        if tool.get("cache_control"):
            entry["cache_control"] = tool["cache_control"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: bool | None) -> dict[str, Any] | None:
    if isinstance(choice, dict):
        out: dict[str, Any] = {"type": "tool", "name": choice["function"]["name"]}
    else:
        kind = {"auto": "auto", "required": "any", "none": "none"}.get(choice or "auto", "auto")
        out = {"type": kind}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out if choice is not None or parallel is False else None


def to_request(
    request: ChatRequest, d: Deployment, *, stream: bool
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and JSON body for one upstream call."""
    fields = request_fields(request, d)
    take_unsupported(fields, _HANDLED | _NATIVE, d)
    system, messages = _messages(fields["messages"], d)
    limit = fields.get("max_completion_tokens") or fields.get("max_tokens")
    if limit is None:
        limit = (d.entry.max_output if d.entry else None) or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": d.model, "max_tokens": limit, "messages": messages}
    for name in ("temperature", "top_p", *sorted(_NATIVE & fields.keys())):
        if name in fields:
            body[name] = fields[name]
    stop = fields.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if fields.get("user"):
        body["metadata"] = {"user_id": fields["user"]}
    if fields.get("tools"):
        body["tools"] = _tools(fields["tools"])
        choice = _tool_choice(fields.get("tool_choice"), fields.get("parallel_tool_calls"))
        if choice:
            body["tool_choice"] = choice
    fmt = fields.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        body["output_config"] = {
            **(body.get("output_config") or {}),
            "format": {"type": "json_schema", "schema": schema},
        }
    elif fmt.get("type") == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    if system:
        plain = all(len(b) == 2 for b in system)
        body["system"] = "\n\n".join(b["text"] for b in system) if plain else system
    if stream:
        body["stream"] = True

    headers = {"Content-Type": "application/json", **d.headers}
    api_key = d.require_key()
    if api_key:
        headers[d.host.auth_header] = d.host.auth_prefix + api_key
    if stream:
        headers["Accept"] = "text/event-stream"
    return d.base_url + d.host.path, headers, orjson.dumps(body)


COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})
"""What ``POST /v1/messages/count_tokens`` takes of a Messages body (it refuses the rest)."""


def to_count_request(request: ChatRequest, d: Deployment) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and body that ask the API to count a request's input tokens: the body
    ``to_request`` makes, less what only generation reads."""
    url, headers, raw = to_request(request, d, stream=False)
    body = {k: v for k, v in orjson.loads(raw).items() if k in COUNTED}
    return url + "/count_tokens", headers, orjson.dumps(body)


def count_from_response(obj: Any, d: Deployment) -> int:
    tokens = obj.get("input_tokens") if isinstance(obj, dict) else None
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise UpstreamServerError(
            "malformed count_tokens response: no 'input_tokens' count",
            provider=d.provider,
            model=d.model,
        )
    return tokens


# --- response --------------------------------------------------------------------------------


def _usage(raw: Mapping[str, Any] | None, base: Usage | None = None) -> Usage:
    """Anthropic counts cache reads and writes apart from ``input_tokens``; OpenAI's
    ``prompt_tokens`` includes them, with reads repeated as ``cached_tokens``."""
    raw = raw or {}
    usage = Usage()
    if base is not None:
        usage.prompt_tokens, usage.cached_tokens = base.prompt_tokens, base.cached_tokens
        usage.cache_write_tokens = base.cache_write_tokens
        usage.cache_write_1h_tokens = base.cache_write_1h_tokens
    if "input_tokens" in raw or "cache_read_input_tokens" in raw:
        read = int(raw.get("cache_read_input_tokens") or 0)
        written = int(raw.get("cache_creation_input_tokens") or 0)
        usage.prompt_tokens = int(raw.get("input_tokens") or 0) + read + written
        usage.cached_tokens = read
        usage.cache_write_tokens = written
    creation = raw.get("cache_creation")
    if isinstance(creation, dict):  # the split of the writes by lifetime
        usage.cache_write_1h_tokens = int(creation.get("ephemeral_1h_input_tokens") or 0)
    usage.cache_write_1h_tokens = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    usage.completion_tokens = int(raw.get("output_tokens") or 0)
    return usage


def from_response(obj: Any, d: Deployment) -> ChatResult:
    """A ChatResult from an upstream ``message`` body."""
    if not isinstance(obj, dict) or not isinstance(obj.get("content"), list):
        raise UpstreamServerError(
            "malformed response: no 'content' list", provider=d.provider, model=d.model
        )
    texts: list[str] = []
    thinking: list[str] = []
    reasoning: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in obj["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in ("thinking", "redacted_thinking"):
            reasoning.append(block)  # kept whole: the client sends it back, signature and all
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id") or "",
                    "type": "function",
                    "function": {
                        "name": block.get("name") or "",
                        "arguments": arguments_text(block.get("input")),
                    },
                }
            )
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
    stop = obj.get("stop_reason")
    extra: dict[str, Any] = {"reasoning_content": "".join(thinking)} if thinking else {}
    if reasoning:
        extra["thinking_blocks"] = reasoning
    matched = obj.get("stop_sequence")
    return ChatResult(
        id=str(obj.get("id") or ""),
        model=d.model,
        provider=d.provider,
        choices=[
            Choice(
                content="".join(texts) if texts or not calls else None,
                tool_calls=calls or None,
                finish_reason=FINISH_REASONS.get(stop, "stop") if stop else "stop",
                extra=extra,
                stop_sequence=matched if isinstance(matched, str) else None,
            )
        ],
        usage=_usage(obj.get("usage")),
        created=int(time.time()),
        deployment=d.id,
    )


# --- stream ----------------------------------------------------------------------------------

_ERROR_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class StreamParser:
    """Turns the named SSE events of one Messages stream into stream events.

    Content blocks are numbered across text and tool use; tool calls get their own indexes
    (0, 1, ...), the first piece carrying id and name and each ``input_json_delta`` one
    fragment of the arguments, so the fragments concatenate to exactly what was streamed.
    ``message_delta`` carries the cumulative output tokens; input tokens come from
    ``message_start``. Unknown events and block types are ignored, as the API asks.
    """

    __slots__ = ("_blocks", "_d", "_reasoning", "_started", "_tools", "done", "usage")

    def __init__(self, d: Deployment) -> None:
        self._d = d
        self._blocks: dict[int, list[Any]] = {}
        """content block index -> [tool index, input from the start event, got deltas]"""
        self._tools = 0
        self._reasoning: dict[int, int] = {}
        """content block index -> reasoning block number, for thinking blocks"""
        self._started = False
        self.usage = Usage()
        self.done = False

    @stream_parser
    def event(self, name: str | None, obj: Any) -> list[StreamEvent]:
        if not isinstance(obj, dict):
            raise UpstreamServerError(
                "malformed stream event", provider=self._d.provider, model=self._d.model
            )
        events = self._event(obj.get("type") or name, obj)
        if events and not self._started:
            # The input usage of ``message_start`` goes out with the first content, so that a
            # client's own ``message_start`` can carry it (cache writes by lifetime are there
            # only) without the first event arriving before the first token.
            self._started = True
            if not isinstance(events[0], UsageUpdate):
                events.insert(0, UsageUpdate(self.usage))
        return events

    def _event(self, kind: Any, obj: dict[str, Any]) -> list[StreamEvent]:
        if kind == "content_block_delta":
            delta = obj.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [TextDelta(delta.get("text") or "")] if delta.get("text") else []
            thought = self._reasoning.get(obj.get("index", -1))
            if thought is not None and delta.get("type") == "thinking_delta":
                text = delta.get("thinking") or ""
                return [ThinkingDelta(text, block=thought)] if text else []
            if thought is not None and delta.get("type") == "signature_delta":
                return [ThinkingDelta(signature=delta.get("signature") or "", block=thought)]
            block = self._blocks.get(obj.get("index", -1))
            if delta.get("type") == "input_json_delta" and block is not None:
                block[2] = True
                part = delta.get("partial_json") or ""
                return [ToolCallDelta(block[0], part)] if part else []
            return []
        if kind == "content_block_start":
            start = obj.get("content_block") or {}
            if start.get("type") == "text":
                return [TextDelta(start["text"])] if start.get("text") else []
            if start.get("type") in ("thinking", "redacted_thinking"):
                thought = self._reasoning[obj.get("index", -1)] = len(self._reasoning)
                if start["type"] == "redacted_thinking":
                    return [ThinkingDelta(redacted=str(start.get("data") or ""), block=thought)]
                text = start.get("thinking") or ""
                return [ThinkingDelta(text, block=thought)] if text else []
            if start.get("type") == "tool_use":
                self._blocks[obj.get("index", -1)] = [self._tools, start.get("input"), False]
                self._tools += 1
                return [ToolCallDelta(self._tools - 1, "", start.get("id"), start.get("name"))]
            return []
        if kind == "content_block_stop":
            ended = self._blocks.pop(obj.get("index", -1), None)
            if ended is not None and not ended[2] and ended[1]:
                return [ToolCallDelta(ended[0], arguments_text(ended[1]))]
            return []
        if kind == "message_start":
            self.usage = _usage((obj.get("message") or {}).get("usage"))
            return []
        if kind == "message_delta":
            self.usage = _usage(obj.get("usage"), self.usage)
            delta = obj.get("delta") or {}
            stop = delta.get("stop_reason")
            events: list[StreamEvent] = [UsageUpdate(self.usage)]
            if stop:
                matched = delta.get("stop_sequence")
                matched = matched if isinstance(matched, str) else None
                events.insert(0, Finish(FINISH_REASONS.get(stop, "stop"), stop_sequence=matched))
            return events
        if kind == "message_stop":
            self.done = True
            return []
        if kind == "error":
            err = obj.get("error") or {}
            status = _ERROR_STATUS.get(err.get("type") or "", 500)
            message = redact(str(err.get("message") or "error event in stream"), self._d)
            raise from_status(
                status, message, provider=self._d.provider, model=self._d.model,
                code=err.get("type"),
            )  # fmt: skip
        return []  # ping, and event types newer than this code


def parse_stream(events: Iterable[ServerSentEvent], d: Deployment) -> list[StreamEvent]:
    """Every stream event of a whole SSE transcript (for tests and replays)."""
    parser = StreamParser(d)
    out: list[StreamEvent] = []
    for sse in events:
        out.extend(parser.event(sse.event, loads(sse.data, d)))
    return out


def map_error(status: int, raw: bytes, headers: Mapping[str, str], d: Deployment) -> TurnoutError:
    """The hierarchy's error for an upstream HTTP error (``{"type":"error","error":{...}}``)."""
    code: str | None = None
    try:
        obj = orjson.loads(raw)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            message = str(err.get("message") or err)
            code = err.get("type") if isinstance(err.get("type"), str) else None
        else:
            message = str(err)
    except orjson.JSONDecodeError:
        message = excerpt(raw, 500) or f"HTTP {status}"
    return from_status(
        status, redact(message, d), headers=headers, provider=d.provider, model=d.model, code=code
    )


# --- network edge ----------------------------------------------------------------------------


class AnthropicMessagesAdapter(HttpAdapter):
    wire_api = "anthropic_messages"
    map_error = staticmethod(map_error)

    def models_url(self, d: Deployment) -> str:
        return join_version(d.base_url, "/v1", "/models")

    def models_headers(self, d: Deployment) -> dict[str, str]:
        return {"anthropic-version": "2023-06-01", **auth_headers(d)}

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        url, headers, body = to_request(request, d, stream=False)
        obj = await self.call(d, t).post_json(url, headers, body)
        return from_response(obj, d)

    async def count_tokens(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> int:
        """The exact input tokens of ``request``, counted by the API (it costs nothing)."""
        url, headers, body = to_count_request(request, d)
        return count_from_response(await self.call(d, t).post_json(url, headers, body), d)

    async def stream(
        self, request: ChatRequest, d: Deployment, t: TimeoutsConfig
    ) -> AsyncIterator[StreamEvent]:
        url, headers, body = to_request(request, d, stream=True)
        call = self.call(d, t)
        async with call.open_stream(url, headers, body) as resp:
            parser = StreamParser(d)
            decoder = SSEDecoder()
            async for chunk in resp.content.iter_any():
                for sse in decoder.feed(chunk):
                    for event in parser.event(sse.event, call.loads(sse.data)):
                        yield event
                if parser.done:
                    return
            for sse in decoder.close():
                for event in parser.event(sse.event, call.loads(sse.data)):
                    yield event
