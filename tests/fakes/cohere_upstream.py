"""A fake Cohere v2 chat API on loopback, scripted per test with the neutral steps.

``POST /v2/chat`` answers a ``V2ChatResponse``, or with ``"stream": true`` named SSE events
(``message-start``, ``content-start`` / ``-delta`` / ``-end``, ``tool-plan-delta``,
``tool-call-start`` / ``-delta`` / ``-end``, ``message-end`` with finish reason and usage), then
``data: [DONE]``. Usage has ``billed_units`` and ``tokens`` (the latter counts the prompt
template too, so it is larger). Errors are ``{"id", "message"}``; a failed generation
mid-stream ends with ``message-end`` whose finish reason is ``ERROR`` and whose ``error`` says
why. Built from Cohere's v2 chat reference and the SDK's types; proven by the ``cohere``
SDK in ``tests/test_cohere.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
from aiohttp import web

from .openai_upstream import fake_vector
from .script import Cut, Fail, FakeUpstream, Hang, Reply, StreamError
from .streams import write_frames

_ids = itertools.count(1)
TEMPLATE_TOKENS = 180
"""Tokens Cohere's prompt template adds: counted in ``tokens``, never billed."""


def usage(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {
        "billed_units": {
            "input_tokens": reply.prompt_tokens,
            "output_tokens": reply.completion_tokens,
        },
        "tokens": {
            "input_tokens": reply.prompt_tokens + TEMPLATE_TOKENS,
            "output_tokens": reply.completion_tokens + 2,
        },
    }
    if reply.cached_tokens:
        out["cached_tokens"] = reply.cached_tokens
    return out


def plan(name: str) -> str:
    return f"I will use {name} to answer."


def whole(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if reply.tool_call:
        name, args = reply.tool_call
        message["tool_plan"] = plan(name)
        message["tool_calls"] = [
            {
                "id": f"{name}_fake1",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
        ]
        finish = "TOOL_CALL"
    else:
        message["content"] = [{"type": "text", "text": reply.text}]
        finish = "COMPLETE"
    return {
        "id": f"fake-cohere-{next(_ids)}",
        "finish_reason": finish,
        "message": message,
        "usage": usage(reply),
    }


def events(reply: Reply) -> list[dict[str, Any]]:
    """The named events of a stream, in Cohere's order."""
    start = {
        "id": f"fake-cohere-{next(_ids)}",
        "type": "message-start",
        "delta": {
            "message": {
                "role": "assistant",
                "content": [],
                "tool_plan": "",
                "tool_calls": [],
                "citations": [],
            }
        },
    }
    out = [start]
    if reply.tool_call:
        name, args = reply.tool_call
        out += [
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": p}}}
            for p in Reply(plan(name)).words
        ]
        call = {
            "id": f"{name}_fake1",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        out.append(
            {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": call}}}
        )
        for i in range(0, len(args), 5):
            piece = {"tool_calls": {"function": {"arguments": args[i : i + 5]}}}
            out.append({"type": "tool-call-delta", "index": 0, "delta": {"message": piece}})
        out.append({"type": "tool-call-end", "index": 0})
        finish = "TOOL_CALL"
    else:
        out.append(
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            }
        )
        for piece in reply.words:
            out.append(
                {
                    "type": "content-delta",
                    "index": 0,
                    "delta": {"message": {"content": {"text": piece}}},
                }
            )
        out.append({"type": "content-end", "index": 0})
        finish = "COMPLETE"
    out.append({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage(reply)}})
    return out


def sse(obj: dict[str, Any]) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def embed_response(body: dict[str, Any]) -> dict[str, Any]:
    """Cohere v2 ``/v2/embed``'s answer: float vectors (8 values unless ``output_dimension``),
    billed input tokens at a token per four characters."""
    texts = body["texts"]
    dims = int(body.get("output_dimension") or 8)
    tokens = sum(max(1, len(t) // 4) for t in texts)
    return {
        "id": f"fake-embed-{next(_ids)}",
        "embeddings": {"float": [fake_vector(t, dims) for t in texts]},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
    }


class FakeCohere(FakeUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/v2/chat", self.handle)
        self.app.router.add_post("/v2/embed", self.handle)
        self.app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.Response:
        model = {"name": "command-a-03-2025", "endpoints": ["chat"], "context_length": 256000}
        return web.json_response({"models": [model]})

    async def render(
        self, step: Any, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        stream = bool(body.get("stream"))
        if isinstance(step, Fail):
            status = 503 if step.status == 529 else step.status
            err = {"id": f"fake-err-{next(_ids)}", "message": step.message}
            return web.json_response(err, status=status, headers=step.headers)
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            step = Reply()
        if isinstance(step, Cut):
            frames = [sse(e) for e in events(Reply(text="one two three four five"))]
            return await write_frames(request, frames[: step.keep], "text/event-stream", cut=True)
        if isinstance(step, StreamError):
            head = events(Reply(text="one two three four five"))[: 2 + step.after]
            end = {
                "type": "message-end",
                "delta": {"finish_reason": "ERROR", "error": step.message},
            }
            frames = [sse(e) for e in (*head, end)] + [DONE]
            return await write_frames(request, frames, "text/event-stream")
        assert isinstance(step, Reply), step
        if request.path == "/v2/embed":
            return web.json_response(embed_response(body))
        if step.delay:
            await asyncio.sleep(step.delay)
        if not stream:
            return web.json_response(whole(step), dumps=lambda o: orjson.dumps(o).decode())
        frames = [sse(e) for e in events(step)] + [DONE]
        return await write_frames(
            request, frames, "text/event-stream", chunk_delay=step.chunk_delay
        )
