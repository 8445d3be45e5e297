"""A fake OpenAI-compatible upstream on loopback, scripted per test.

Renders the vendor-neutral steps of ``script.py`` in the OpenAI wire format. Replies follow
the OpenAI spec (tests validate them against ``../shared/specs/openai-openapi.yaml`` and parse
them with the official SDK).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from typing import Any

import orjson
from aiohttp import web

from .script import Cut, Fail, FakeUpstream, Hang, Raw, Reply, Reset, Stall, StreamError, drop

__all__ = [
    "Cut",
    "Fail",
    "FakeOpenAI",
    "Hang",
    "Raw",
    "Reply",
    "Reset",
    "Stall",
    "StreamError",
]

_ids = itertools.count(1)


def completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    finish = "stop"
    if reply.tool_call:
        name, args = reply.tool_call
        message["content"] = None
        message["tool_calls"] = [
            {"id": "call_fake_1", "type": "function", "function": {"name": name, "arguments": args}}
        ]
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-fake{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage(reply),
    }


def usage(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }
    if reply.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return out


def chunks(reply: Reply, model: str, include_usage: bool) -> list[dict[str, Any]]:
    head = {
        "id": f"chatcmpl-fake{next(_ids)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **head,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    if reply.tool_call:
        name, args = reply.tool_call
        start = {
            "index": 0,
            "id": "call_fake_1",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        out.append(chunk({"tool_calls": [start]}))
        for i in range(0, len(args), 4):
            part = {"index": 0, "function": {"arguments": args[i : i + 4]}}
            out.append(chunk({"tool_calls": [part]}))
        out.append(chunk({}, "tool_calls"))
    else:
        out.extend(chunk({"content": word}) for word in reply.words)
        out.append(chunk({}, "stop"))
    if include_usage:
        out.append({**head, "choices": [], "usage": usage(reply)})
    return out


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic vector for ``text`` (its bytes' hash spread over ``dimensions``)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return [((seed >> (i % 56)) % 1000) / 1000 - 0.5 for i in range(dimensions)]


def embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    """OpenAI's ``CreateEmbeddingResponse`` for a request: one vector per input (a text, or a
    token array read as its numbers), 8 dimensions unless ``dimensions`` says otherwise; a
    token per four characters (or per token id)."""
    raw = body.get("input")
    items = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw)
    dims = int(body.get("dimensions") or 8)
    data, tokens = [], 0
    for i, item in enumerate(items):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += max(1, len(item) // 4) if isinstance(item, str) else len(item)
        data.append({"object": "embedding", "index": i, "embedding": fake_vector(text, dims)})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def error_body(fail: Fail) -> dict[str, Any]:
    return {"error": {"message": fail.message, "type": fail.type, "param": None, "code": fail.code}}


async def models_listing(request: web.Request) -> web.Response:
    """``GET /v1/models``: one model, as OpenAI lists them (both OpenAI fakes serve it)."""
    model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
    return web.json_response({"object": "list", "data": [model]})


class FakeOpenAI(FakeUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/{tail:.*}", self.handle)
        self.app.router.add_get("/v1/models", models_listing)

    async def render(
        self, step: Any, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        model = body.get("model", "fake")
        if isinstance(step, Fail):
            return web.json_response(error_body(step), status=step.status, headers=step.headers)
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            return web.json_response(completion(Reply(), model))
        if isinstance(step, Cut):
            resp = await _sse(request)
            for c in chunks(Reply(text="one two three four five"), model, False)[: step.keep]:
                await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
            return await drop(request, resp)
        if isinstance(step, Stall):
            resp = await _sse(request)
            first = chunks(Reply(), model, False)[0]  # the role-only chunk: no content yet
            await resp.write(b"data: " + orjson.dumps(first) + b"\n\n")
            await asyncio.sleep(step.seconds)
            return resp
        if isinstance(step, StreamError):
            resp = await _sse(request)
            for c in chunks(Reply(text="one two three four five"), model, False)[: step.after + 1]:
                await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
            err = Fail(500, step.message)
            await resp.write(b"data: " + orjson.dumps(error_body(err)) + b"\n\n")
            await resp.write_eof()
            return resp
        assert isinstance(step, Reply), step
        if request.path.endswith("/embeddings"):
            return web.json_response(embeddings(body, model))
        return await _reply(step, request, body, model)


async def _sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    return resp


async def _reply(
    reply: Reply, request: web.Request, body: dict[str, Any], model: str
) -> web.StreamResponse:
    if reply.delay:
        await asyncio.sleep(reply.delay)
    if not body.get("stream"):
        return web.json_response(completion(reply, model), dumps=lambda o: orjson.dumps(o).decode())
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    nl = b"\r\n" if reply.crlf else b"\n"
    frames = [b"data: " + orjson.dumps(c) + nl + nl for c in chunks(reply, model, include_usage)]
    if reply.comments:
        frames = [b": keep-alive" + nl + nl] + [f + b": ping" + nl + nl for f in frames]
    if reply.done:
        frames.append(b"data: [DONE]" + nl + nl)
    resp = await _sse(request)
    for frame in frames:
        if reply.split:
            for i in range(0, len(frame), 7):
                await resp.write(frame[i : i + 7])
                await asyncio.sleep(0)
        else:
            await resp.write(frame)
        if reply.chunk_delay:
            await asyncio.sleep(reply.chunk_delay)
    await resp.write_eof()
    return resp
