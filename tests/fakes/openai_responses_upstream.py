"""A fake OpenAI Responses upstream (``POST /v1/responses``) on loopback, scripted per test.

Renders the vendor-neutral steps of ``script.py`` as the Responses API does: a ``response``
object, or its typed SSE events (``response.created`` ... ``response.completed``, each with a
``sequence_number``). Bodies follow ``../shared/specs/openai-openapi.yaml`` (the tests validate
them against the ``Response`` schema and read them with the official SDK).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import orjson
from aiohttp import web

from .openai_upstream import error_body, models_listing
from .script import Cut, Fail, FakeUpstream, Hang, Reply, Stall, StreamError, drop

__all__ = ["FakeOpenAIResponses", "response_events", "response_object"]

_ids = itertools.count(1)


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _items(reply: Reply, n: int) -> list[dict[str, Any]]:
    if reply.tool_call:
        name, args = reply.tool_call
        return [
            {
                "id": f"fc_fake{n}",
                "type": "function_call",
                "call_id": "call_fake_1",
                "name": name,
                "arguments": args,
                "status": "completed",
            }
        ]
    return [
        {
            "id": f"msg_fake{n}",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [_text_part(reply.text)],
        }
    ]


def response_object(
    reply: Reply, body: dict[str, Any], n: int, *, status: str = "completed"
) -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": f"resp_fake{n}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "completed_at": int(time.time()) if done else None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model", "fake"),
        "output": _items(reply, n) if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": None,
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [{"parameters": None, "strict": True, **t} for t in body.get("tools") or ()],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "metadata": {},
        **({"usage": _usage(reply)} if done else {}),
    }


def response_events(reply: Reply, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The typed events of a streamed reply, in order, numbered from 0."""
    n = next(_ids)
    start = response_object(reply, body, n, status="in_progress")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    item = _items(reply, n)[0]
    ids = {"item_id": item["id"], "output_index": 0}
    if reply.tool_call:
        name, args = reply.tool_call
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "arguments": "", "status": "in_progress"},
            }
        )
        for i in range(0, len(args), 4):
            delta = args[i : i + 4]
            events.append({"type": "response.function_call_arguments.delta", **ids, "delta": delta})
        events.append(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "name": name,
                "arguments": args,
            }
        )
    else:
        added = {**item, "content": [], "status": "in_progress"}
        events.append({"type": "response.output_item.added", "output_index": 0, "item": added})
        part = {**ids, "content_index": 0}
        events.append({"type": "response.content_part.added", **part, "part": _text_part("")})
        for word in reply.words:
            events.append(
                {"type": "response.output_text.delta", **part, "delta": word, "logprobs": []}
            )
        events.append(
            {"type": "response.output_text.done", **part, "text": reply.text, "logprobs": []}
        )
        events.append(
            {"type": "response.content_part.done", **part, "part": _text_part(reply.text)}
        )
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    events.append({"type": "response.completed", "response": response_object(reply, body, n)})
    return [{**e, "sequence_number": i} for i, e in enumerate(events)]


def _frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def _sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    return resp


class FakeOpenAIResponses(FakeUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/v1/responses", self.handle)
        self.app.router.add_get("/v1/models", models_listing)

    async def render(
        self, step: Any, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        text = Reply(text="one two three four five")
        if isinstance(step, Fail):
            return web.json_response(error_body(step), status=step.status, headers=step.headers)
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            return web.json_response(response_object(Reply(), body, next(_ids)))
        if isinstance(step, Cut):
            resp = await _sse(request)
            for event in response_events(text, body)[: step.keep + 3]:
                await resp.write(_frame(event))
            return await drop(request, resp)
        if isinstance(step, Stall):
            resp = await _sse(request)
            await resp.write(_frame(response_events(Reply(), body)[0]))
            await asyncio.sleep(step.seconds)
            return resp
        if isinstance(step, StreamError):
            resp = await _sse(request)
            events = response_events(text, body)
            for event in events[: 4 + step.after]:  # created ... part.added, then the deltas
                await resp.write(_frame(event))
            error = {
                "type": "error",
                "code": "server_error",
                "message": step.message,
                "param": None,
                "sequence_number": 4 + step.after,
            }
            await resp.write(_frame(error))
            await resp.write_eof()
            return resp
        assert isinstance(step, Reply), step
        if step.delay:
            await asyncio.sleep(step.delay)
        if not body.get("stream"):
            return web.json_response(
                response_object(step, body, next(_ids)), dumps=lambda o: orjson.dumps(o).decode()
            )
        resp = await _sse(request)
        for event in response_events(step, body):
            await resp.write(_frame(event))
            if step.chunk_delay:
                await asyncio.sleep(step.chunk_delay)
        await resp.write_eof()
        return resp
