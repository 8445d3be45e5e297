"""OpenAI Responses wire API (``POST /v1/responses``), for models OpenAI serves only there.

Translation is pure functions (``to_request``, ``from_response``, ``StreamParser``,
``map_error``); ``OpenAIResponsesAdapter`` is the thin network edge around them. The gateway
keeps conversations itself, so every request carries its whole input and ``store: false``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson

from ..config import TimeoutsConfig
from ..deployment import Deployment
from ..errors import TurnoutError, UpstreamServerError, from_status
from ..sse import ServerSentEvent, SSEDecoder
from ..types import (
    ChatRequest,
    ChatResult,
    Choice,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from .base import HttpAdapter
from .convert import request_fields, take_unsupported, text_of
from .edge import loads, redact
from .malformed import stream_parser
from .openai_chat import map_error

__all__ = [
    "OpenAIResponsesAdapter",
    "StreamParser",
    "from_response",
    "map_error",
    "parse_stream",
    "to_request",
]

_HANDLED = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "metadata",
        "user",
    }
)


# --- request -----------------------------------------------------------------------------------


def _parts(content: Any) -> str | list[dict[str, Any]]:
    """User content as Responses input content (text stays a string)."""
    if isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            out.append({"type": "input_text", "text": part.get("text") or ""})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            item = {"type": "input_image", "image_url": image.get("url"), "detail": "auto"}
            if image.get("detail"):
                item["detail"] = image["detail"]
            out.append(item)
        elif kind == "file":
            file = part.get("file") or {}
            out.append(
                {
                    "type": "input_file",
                    "file_data": file.get("file_data"),
                    "filename": file.get("filename") or "document.pdf",
                }
            )
    return out


def _input(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as Responses input items."""
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            items.append({"role": role, "content": text_of(m.get("content"))})
        elif role == "user":
            items.append({"role": "user", "content": _parts(m.get("content"))})
        elif role == "assistant":
            text = text_of(m.get("content"))
            if text:
                items.append({"role": "assistant", "content": text})
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": fn.get("arguments") or "",
                    }
                )
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": m.get("tool_call_id"),
                    "output": text_of(m.get("content")),
                }
            )
    return items


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        fn = tool.get("function") or {}
        item: dict[str, Any] = {
            "type": "function",
            "name": fn.get("name"),
            "parameters": fn["parameters"]
            if fn.get("parameters") is not None
            else {"type": "object", "properties": {}},
            # Chat Completions' functions are loose unless asked; the Responses API's are
            # strict by default.
            "strict": bool(fn.get("strict")),
        }
        if fn.get("description"):
            item["description"] = fn["description"]
        out.append(item)
    return out


def _format(fmt: Mapping[str, Any]) -> dict[str, Any]:
    if fmt.get("type") != "json_schema":
        return {"type": fmt.get("type") or "text"}
    schema = fmt.get("json_schema") or {}
    out: dict[str, Any] = {
        "type": "json_schema",
        "name": schema.get("name") or "output",
        "schema": schema["schema"] if schema.get("schema") is not None else {"type": "object"},
    }
    for key in ("description", "strict"):
        if schema.get(key) is not None:
            out[key] = schema[key]
    return out


def to_request(
    request: ChatRequest, d: Deployment, *, stream: bool
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and JSON body for one upstream call."""
    fields = request_fields(request, d)
    take_unsupported(fields, _HANDLED, d)
    body: dict[str, Any] = {
        "model": d.model,
        "input": _input(fields.get("messages") or ()),
        "store": False,
    }
    limit = fields.get("max_completion_tokens") or fields.get("max_tokens")
    if limit:
        body["max_output_tokens"] = limit
    for key in ("temperature", "top_p", "parallel_tool_calls", "metadata", "user"):
        if key in fields:
            body[key] = fields[key]
    if fields.get("tools"):
        body["tools"] = _tools(fields["tools"])
    choice = fields.get("tool_choice")
    if isinstance(choice, dict):
        body["tool_choice"] = {"type": "function", "name": (choice.get("function") or {})["name"]}
    elif choice is not None:
        body["tool_choice"] = choice
    if fields.get("response_format"):
        body["text"] = {"format": _format(fields["response_format"])}
    if fields.get("reasoning_effort"):
        body["reasoning"] = {"effort": fields["reasoning_effort"]}
    if stream:
        body["stream"] = True

    url = d.base_url + d.host.path
    if d.query:
        url += "?" + urlencode(d.query)
    headers = {"Content-Type": "application/json", **d.headers}
    api_key = d.require_key()
    if api_key:
        headers[d.host.auth_header] = d.host.auth_prefix + api_key
    if stream:
        headers["Accept"] = "text/event-stream"
    return url, headers, orjson.dumps(body)


# --- response ----------------------------------------------------------------------------------


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    cached = (raw.get("input_tokens_details") or {}).get("cached_tokens")
    reasoning = (raw.get("output_tokens_details") or {}).get("reasoning_tokens")
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=int(cached or 0),
        reasoning_tokens=int(reasoning or 0),
    )


_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _finish(obj: Mapping[str, Any], called: bool) -> str:
    if obj.get("status") == "incomplete":
        reason = (obj.get("incomplete_details") or {}).get("reason")
        return _INCOMPLETE.get(reason or "", "length")
    return "tool_calls" if called else "stop"


def _failure(obj: Mapping[str, Any], d: Deployment) -> TurnoutError:
    """A ``failed`` response (or an ``error`` event) as the hierarchy's error."""
    err: Mapping[str, Any] = obj["error"] if isinstance(obj.get("error"), dict) else obj
    code = str(err.get("code") or "server_error")
    message = redact(str(err.get("message") or "the response failed"), d)
    status = 429 if code == "rate_limit_exceeded" else 400 if code.startswith("invalid") else 500
    return from_status(status, message, provider=d.provider, model=d.model, code=code)


def from_response(obj: Any, d: Deployment) -> ChatResult:
    """A ChatResult from an upstream ``response`` object."""
    if not isinstance(obj, dict) or not isinstance(obj.get("output"), list):
        raise UpstreamServerError(
            "malformed response: no 'output' list", provider=d.provider, model=d.model
        )
    if obj.get("status") == "failed":
        raise _failure(obj, d)
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in obj["output"]:
        if not isinstance(item, dict):
            raise UpstreamServerError(
                "malformed response: an output item is not an object",
                provider=d.provider,
                model=d.model,
            )
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
                elif part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal") or ""))
        elif kind == "function_call":
            calls.append(
                {
                    "id": str(item.get("call_id") or item.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(item.get("name") or ""),
                        "arguments": str(item.get("arguments") or ""),
                    },
                }
            )
        elif kind == "reasoning":
            for part in item.get("summary") or ():
                reasoning.append(str(part.get("text") or ""))
    text = "".join(texts)
    choice = Choice(
        index=0,
        content=text if text or not calls else None,
        tool_calls=calls or None,
        finish_reason=_finish(obj, bool(calls)),
        refusal="".join(refusals) or None,
        extra={"reasoning_content": "".join(reasoning)} if reasoning else {},
    )
    return ChatResult(
        id=str(obj.get("id") or ""),
        model=d.model,
        provider=d.provider,
        choices=[choice],
        usage=_usage(obj.get("usage")),
        created=int(obj.get("created_at") or time.time()),
        deployment=d.id,
    )


class StreamParser:
    """Turns the typed SSE events of one Responses stream into stream events: text deltas,
    a tool call per ``function_call`` output item (its first piece carries id and name, each
    ``function_call_arguments.delta`` one fragment), and at ``response.completed`` (or
    ``.incomplete``) the finish reason and usage. ``response.failed`` and ``error`` raise.
    Events this code does not know are ignored, as the API asks."""

    __slots__ = ("_calls", "_d", "done")

    def __init__(self, d: Deployment) -> None:
        self._d = d
        self._calls: dict[int, int] = {}
        """output index -> tool call index"""
        self.done = False

    @stream_parser
    def event(self, name: str | None, obj: Any) -> list[StreamEvent]:
        if not isinstance(obj, dict):
            raise UpstreamServerError(
                "malformed stream event", provider=self._d.provider, model=self._d.model
            )
        kind = obj.get("type") or name
        if kind == "response.output_text.delta":
            delta = obj["delta"]
            return [TextDelta(delta)] if delta else []
        if kind == "response.output_item.added":
            item = obj["item"]
            if item.get("type") != "function_call":
                return []
            index = self._calls[obj["output_index"]] = len(self._calls)
            call_id = item.get("call_id") or item.get("id")
            return [ToolCallDelta(index, item.get("arguments") or "", call_id, item.get("name"))]
        if kind == "response.function_call_arguments.delta":
            known = self._calls.get(obj["output_index"])
            delta = obj["delta"]
            return [ToolCallDelta(known, delta)] if known is not None and delta else []
        if kind in ("response.completed", "response.incomplete"):
            self.done = True
            response = obj["response"]
            return [
                Finish(_finish(response, bool(self._calls))),
                UsageUpdate(_usage(response.get("usage"))),
            ]
        if kind == "response.failed":
            raise _failure(obj["response"], self._d)
        if kind == "error":
            raise _failure(obj, self._d)
        return []


def parse_stream(events: Iterable[ServerSentEvent], d: Deployment) -> list[StreamEvent]:
    """Every stream event of a whole SSE transcript (for tests and replays)."""
    parser = StreamParser(d)
    out: list[StreamEvent] = []
    for sse in events:
        out.extend(parser.event(sse.event, loads(sse.data, d)))
    return out


# --- network edge ------------------------------------------------------------------------------


class OpenAIResponsesAdapter(HttpAdapter):
    wire_api = "openai_responses"
    map_error = staticmethod(map_error)
    reasoning_effort = True
    """Carries ``reasoning_effort`` (as ``reasoning.effort``)."""

    async def chat(self, request: ChatRequest, d: Deployment, t: TimeoutsConfig) -> ChatResult:
        url, headers, body = to_request(request, d, stream=False)
        return from_response(await self.call(d, t).post_json(url, headers, body), d)

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
