"""A fake Anthropic Messages API on loopback (``POST /v1/messages``, ``GET /v1/models``).

Renders the vendor-neutral steps of ``script.py`` the way the real API answers, after
``../shared/specs/anthropic-openapi-curated.langchain_dart.yaml``: a ``message`` object, or
named SSE events (``message_start``, ``content_block_start``, ``ping``,
``content_block_delta`` with ``text_delta`` / ``input_json_delta``, ``content_block_stop``,
``message_delta`` with cumulative ``output_tokens``, ``message_stop``), errors as
``{"type": "error", "error": {"type": ..., "message": ...}}`` (529 ``overloaded_error``), and a
mid-stream failure as ``event: error``. Tests prove it faithful with the official ``anthropic``
SDK and validate its bodies against the spec.

Besides the neutral steps it takes ``Message(content=[blocks], stop_reason=...)``: any content
blocks (text, several tool uses, thinking with its ``signature_delta``, redacted thinking),
streamed block by block, with cache reads and writes (split by lifetime in
``usage.cache_creation``).

``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}`` with N from ``fake_count``
(a deterministic stand-in for Claude's tokenizer), refuses what the API refuses (a missing
``model`` or ``messages``, a generation field such as ``max_tokens``), and fails with the next
of ``count_failures`` when one is queued.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .script import Cut, Fail, FakeUpstream, Hang, Reply, StreamError, drop

__all__ = [
    "COUNT_FIELDS",
    "ERROR_TYPES",
    "FakeAnthropic",
    "Message",
    "fake_count",
    "message_body",
    "stream_events",
]

_ids = itertools.count(1)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""The error ``type`` the API sends with each status (docs: "HTTP errors")."""


@dataclass
class Message:
    """Answer with exactly these content blocks (``tool_use`` input may be a JSON string: it
    is then streamed verbatim, so tests can check exact reassembly)."""

    content: list[dict[str, Any]]
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    """The part of ``cache_creation_tokens`` written for one hour."""
    extra_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Events sent after ``message_start`` (e.g. event types newer than the client)."""


def _as_message(step: Reply) -> Message:
    if step.tool_call:
        name, args = step.tool_call
        block = {"type": "tool_use", "id": f"toolu_fake{next(_ids)}", "name": name, "input": args}
        return Message(
            [block],
            "tool_use",
            None,
            step.prompt_tokens,
            step.completion_tokens,
            step.cached_tokens,
        )
    return Message(
        [{"type": "text", "text": step.text}],
        "end_turn",
        None,
        step.prompt_tokens,
        step.completion_tokens,
        step.cached_tokens,
    )


def _usage(m: Message, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": m.prompt_tokens - m.cached_tokens - m.cache_creation_tokens,
        "cache_creation_input_tokens": m.cache_creation_tokens,
        "cache_read_input_tokens": m.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": m.cache_creation_tokens - m.cache_creation_1h_tokens,
            "ephemeral_1h_input_tokens": m.cache_creation_1h_tokens,
        },
        "output_tokens": output_tokens,
    }


COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
)
"""The body fields ``count_tokens`` takes; the API refuses the rest."""


def _words(node: Any) -> int:
    if isinstance(node, str):
        return len(node.split())
    if isinstance(node, dict):
        return sum(_words(v) for k, v in node.items() if k not in ("type", "signature"))
    if isinstance(node, list):
        return sum(_words(v) for v in node)
    return 0


def fake_count(body: dict[str, Any]) -> int:
    """The fake's token count: every word of every string in the system prompt, messages
    and tools (signatures and block types aside), plus 3 per message and per tool."""
    framing = 3 * (len(body.get("messages") or ()) + len(body.get("tools") or ()))
    return framing + _words([body.get("system"), body.get("messages"), body.get("tools")])


def _whole(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "tool_use" and isinstance(block["input"], str):
        return {**block, "input": orjson.loads(block["input"])}
    return block


def message_body(m: Message, model: str, msg_id: str | None = None) -> dict[str, Any]:
    """The ``Message`` object of a non-streaming answer."""
    return {
        "id": msg_id or f"msg_fake{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_whole(b) for b in m.content],
        "stop_reason": m.stop_reason,
        "stop_sequence": m.stop_sequence,
        "usage": _usage(m, m.completion_tokens),
    }


def _pieces(text: str, size: int = 0) -> list[str]:
    if size:
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


def stream_events(m: Message, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The named events of a streamed answer, in the API's order."""
    start = message_body(m, model)
    start.update(content=[], stop_reason=None, stop_sequence=None, usage=_usage(m, 1))
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start})]
    events.extend(m.extra_events)
    for index, block in enumerate(m.content):
        kind = block["type"]
        if kind == "text":
            first: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif kind == "tool_use":
            first = {**block, "input": {}}
            raw = block["input"]
            raw = raw if isinstance(raw, str) else orjson.dumps(raw).decode()
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": p} for p in _pieces(raw, 5)]
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "sig")})
        else:
            first, deltas = block, []
        events.append(("content_block_start", {"index": index, "content_block": first}))
        if index == 0:
            events.append(("ping", {}))
        events.extend(("content_block_delta", {"index": index, "delta": d}) for d in deltas)
        events.append(("content_block_stop", {"index": index}))
    events.append(
        (
            "message_delta",
            {
                "delta": {"stop_reason": m.stop_reason, "stop_sequence": m.stop_sequence},
                "usage": {"output_tokens": m.completion_tokens},
            },
        )
    )
    events.append(("message_stop", {}))
    return [(name, {"type": name, **data}) for name, data in events]


def frame(name: str, data: dict[str, Any], nl: bytes = b"\n") -> bytes:
    return b"event: " + name.encode() + nl + b"data: " + orjson.dumps(data) + nl + nl


def error_body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    if kind not in ERROR_TYPES.values():
        kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class FakeAnthropic(FakeUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.count_failures: deque[Fail] = deque()
        self.app.router.add_post("/v1/messages", self.handle)
        self.app.router.add_post("/v1/messages/count_tokens", self._count)
        self.app.router.add_get("/v1/models", self._models)

    def reset(self) -> None:
        super().reset()
        self.count_failures.clear()

    async def _count(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        self.record(request, raw, body)
        refused = _check(request, body, ("model", "messages"))
        if refused is not None:
            return refused
        extra = sorted(set(body) - COUNT_FIELDS)
        if extra:
            return _json(error_body(400, f"{extra[0]}: Extra inputs are not permitted"), 400)
        if self.count_failures:
            step = self.count_failures.popleft()
            return _json(error_body(step.status, step.message, step.type), step.status)
        return _json({"input_tokens": fake_count(body)})

    async def _models(self, request: web.Request) -> web.Response:
        model = {
            "type": "model",
            "id": "claude-fake-1",
            "display_name": "Claude Fake",
            "created_at": "2025-01-01T00:00:00Z",
        }
        body = {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]}
        return web.json_response(body)

    async def render(
        self, step: Any, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        refused = _check(request, body)
        if refused is not None:
            return refused
        model = str(body.get("model"))
        if isinstance(step, Fail):
            payload = error_body(step.status, step.message, step.type)
            return _json(payload, step.status, {"request-id": "req_fake", **step.headers})
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            step = Reply()
        if isinstance(step, Cut | StreamError):
            reply = _as_message(Reply("one two three four five"))
            events = [e for e in stream_events(reply, model) if e[0] != "ping"]
            resp = await _sse(request)
            if isinstance(step, Cut):
                for name, data in events[: step.keep]:
                    await resp.write(frame(name, data))
                return await drop(request, resp)
            for name, data in events[: 2 + step.after]:
                await resp.write(frame(name, data))
            err = error_body(529, step.message)
            await resp.write(frame("error", err))
            await resp.write_eof()
            return resp
        if isinstance(step, Reply):
            if step.delay:
                await asyncio.sleep(step.delay)
            message = _as_message(step)
        else:
            assert isinstance(step, Message), step
            message, step = step, Reply()
        if not body.get("stream"):
            return _json(message_body(message, model))
        nl = b"\r\n" if step.crlf else b"\n"
        frames = [frame(name, data, nl) for name, data in stream_events(message, model)]
        if step.comments:
            frames = [b": keep-alive" + nl + nl, *frames]
        resp = await _sse(request)
        for f in frames:
            if step.split:
                for i in range(0, len(f), 7):
                    await resp.write(f[i : i + 7])
                    await asyncio.sleep(0)
            else:
                await resp.write(f)
            if step.chunk_delay:
                await asyncio.sleep(step.chunk_delay)
        await resp.write_eof()
        return resp


def _check(
    request: web.Request,
    body: dict[str, Any],
    required: tuple[str, ...] = ("model", "messages", "max_tokens"),
) -> web.Response | None:
    """What the real API refuses before looking at the model: no credentials, no version
    header, a missing required field."""
    if not request.headers.get("x-api-key") and not request.headers.get("authorization"):
        return _json(error_body(401, "x-api-key header is required"), 401)
    if not request.headers.get("anthropic-version"):
        return _json(error_body(400, "anthropic-version: header is required"), 400)
    for name in required:
        if name not in body:
            return _json(error_body(400, f"{name}: Field required"), 400)
    return None


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(obj), status=status, content_type="application/json", headers=headers
    )


async def _sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    return resp
