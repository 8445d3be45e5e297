"""A fake Ollama server (native API) on loopback, scripted per test with the neutral steps.

``POST /api/chat`` answers one JSON object with ``"stream": false``, else newline-delimited
JSON (``application/x-ndjson``): message fragments, then a ``done`` line with ``done_reason``
and the counts; a tool call arrives whole with its arguments as an object. Errors are
``{"error": "..."}`` with the status, and a failure mid-stream is an ``{"error": ...}`` line.
Built from ``ollama-openapi.yaml`` / ``ollama-api.md``; proven by the ``ollama`` SDK in
``tests/test_ollama.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from .openai_upstream import fake_vector
from .script import Cut, Fail, FakeUpstream, Hang, Reply, StreamError
from .streams import write_frames

NDJSON = "application/x-ndjson"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def event(model: str, content: str = "", **fields: Any) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": content, **fields.pop("message", {})},
        "done": False,
        **fields,
    }


def done(reply: Reply, model: str, content: str = "", **message: Any) -> dict[str, Any]:
    return event(
        model,
        content,
        message=message,
        done=True,
        done_reason="stop",
        total_duration=4_883_583,
        load_duration=1_334,
        prompt_eval_count=reply.prompt_tokens,
        prompt_eval_duration=342_546,
        eval_count=reply.completion_tokens,
        eval_duration=4_535_599,
    )


def tool_calls(reply: Reply) -> list[dict[str, Any]]:
    assert reply.tool_call is not None
    name, args = reply.tool_call
    return [{"function": {"name": name, "arguments": orjson.loads(args)}}]


def whole(reply: Reply, model: str) -> dict[str, Any]:
    if reply.tool_call:
        return done(reply, model, "", tool_calls=tool_calls(reply))
    return done(reply, model, reply.text)


def lines(reply: Reply, model: str) -> list[dict[str, Any]]:
    """A stream as Ollama sends it: fragments, a tool call whole, then the done line."""
    if reply.tool_call:
        return [event(model, message={"tool_calls": tool_calls(reply)}), done(reply, model)]
    return [event(model, piece) for piece in reply.words] + [done(reply, model)]


def ndjson(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def embed_response(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Ollama's ``EmbedResponse``: a vector per input (8 values unless ``dimensions``)."""
    raw = body["input"]
    texts = [raw] if isinstance(raw, str) else list(raw)
    dims = int(body.get("dimensions") or 8)
    return {
        "model": model,
        "embeddings": [fake_vector(t, dims) for t in texts],
        "total_duration": 1000,
        "load_duration": 10,
        "prompt_eval_count": sum(max(1, len(t) // 4) for t in texts),
    }


class FakeOllama(FakeUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/api/chat", self.handle)
        self.app.router.add_post("/api/embed", self.handle)
        self.app.router.add_get("/api/tags", self._tags)

    async def _tags(self, request: web.Request) -> web.Response:
        model = {
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "modified_at": _now(),
            "size": 2019393189,
            "digest": "a80c4f17acd5",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B"},
        }
        return web.json_response({"models": [model]})

    async def render(
        self, step: Any, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        model = body.get("model", "fake")
        stream = body.get("stream", True)  # Ollama streams unless told not to
        if isinstance(step, Fail):
            status = 503 if step.status == 529 else step.status
            return web.json_response({"error": step.message}, status=status, headers=step.headers)
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            step = Reply()
        if isinstance(step, Cut):
            frames = [ndjson(x) for x in lines(Reply(text="one two three four five"), model)]
            return await write_frames(request, frames[: step.keep], NDJSON, cut=True)
        if isinstance(step, StreamError):
            pieces = lines(Reply(text="one two three four five"), model)[: step.after]
            frames = [ndjson(x) for x in pieces] + [ndjson({"error": step.message})]
            return await write_frames(request, frames, NDJSON)
        assert isinstance(step, Reply), step
        if request.path == "/api/embed":
            return web.json_response(embed_response(body, model))
        if step.delay:
            await asyncio.sleep(step.delay)
        if not stream:
            return web.json_response(whole(step, model), dumps=lambda o: orjson.dumps(o).decode())
        frames = [ndjson(x) for x in lines(step, model)]
        return await write_frames(request, frames, NDJSON, chunk_delay=step.chunk_delay)
