"""A fake OpenAI-compatible upstream on loopback, scripted per test.

Each incoming request pops the next behaviour from ``script`` (``Reply`` when the script is
empty) and is recorded in ``calls``. Replies follow the OpenAI spec (tests validate them
against ``../shared/specs/openai-openapi.yaml`` and parse them with the official SDK).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

_ids = itertools.count(1)


@dataclass
class Reply:
    text: str = "Hello from the fake upstream."
    tool_call: tuple[str, str] | None = None
    """(name, JSON arguments): answer with a tool call instead of text."""
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0
    crlf: bool = False
    comments: bool = False
    split: bool = False
    """Write the stream a few bytes at a time, splitting events and lines."""
    done: bool = True
    delay: float = 0.0
    """Seconds before the response (headers) is sent."""
    chunk_delay: float = 0.0

    def completion(self, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text, "refusal": None}
        finish = "stop"
        if self.tool_call:
            name, args = self.tool_call
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": "call_fake_1",
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                }
            ]
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-fake{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": self.usage(),
        }

    def usage(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out

    def chunks(self, model: str, include_usage: bool) -> list[dict[str, Any]]:
        head = {
            "id": f"chatcmpl-fake{next(_ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                **head,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
            }

        out = [chunk({"role": "assistant", "content": ""})]
        if self.tool_call:
            name, args = self.tool_call
            out.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_fake_1",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for i in range(0, len(args), 4):
                out.append(
                    chunk(
                        {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 4]}}]}
                    )
                )
            out.append(chunk({}, "tool_calls"))
        else:
            for word in self.text.split(" "):
                out.append(chunk({"content": word + " "}))
            out[-1]["choices"][0]["delta"]["content"] = out[-1]["choices"][0]["delta"][
                "content"
            ].rstrip()
            out.append(chunk({}, "stop"))
        if include_usage:
            out.append({**head, "choices": [], "usage": self.usage()})
        return out

    async def respond(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        model = body.get("model", "fake")
        if not body.get("stream"):
            return web.json_response(
                self.completion(model), dumps=lambda o: orjson.dumps(o).decode()
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        nl = b"\r\n" if self.crlf else b"\n"
        payload = b""
        if self.comments:
            payload += b": keep-alive" + nl + nl
        frames = [b"data: " + orjson.dumps(c) + nl + nl for c in self.chunks(model, include_usage)]
        if self.comments:
            frames = [f + b": ping" + nl + nl for f in frames]
        if self.done:
            frames.append(b"data: [DONE]" + nl + nl)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if payload:
            await resp.write(payload)
        for frame in frames:
            if self.split:
                for i in range(0, len(frame), 7):
                    await resp.write(frame[i : i + 7])
                    await asyncio.sleep(0)
            else:
                await resp.write(frame)
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        await resp.write_eof()
        return resp


@dataclass
class Fail:
    status: int
    message: str = "upstream failure"
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None
    type: str = "server_error"

    async def respond(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        err = {
            "error": {"message": self.message, "type": self.type, "param": None, "code": self.code}
        }
        return web.json_response(err, status=self.status, headers=self.headers)


@dataclass
class Hang:
    """Accept the request and say nothing for ``seconds``."""

    seconds: float = 30.0

    async def respond(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(self.seconds)
        return web.json_response(Reply().completion(body.get("model", "fake")))


@dataclass
class Cut:
    """Stream ``keep`` chunks, then drop the connection without finishing."""

    keep: int = 2

    async def respond(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for c in Reply(text="one two three four five").chunks(body.get("model", "fake"), False)[
            : self.keep
        ]:
            await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
        assert request.transport is not None
        request.transport.close()
        return resp


@dataclass
class Raw:
    body: bytes
    status: int = 200
    content_type: str = "application/json"

    async def respond(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(body=self.body, status=self.status, content_type=self.content_type)


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.calls: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self._handle)
        self.app.router.add_get("/v1/models", self._models)

    def reset(self) -> None:
        self.script.clear()
        self.calls.clear()

    def then(self, *behaviours: Any) -> FakeOpenAI:
        self.script.extend(behaviours)
        return self

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}],
            }
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        self.calls.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        behaviour = self.script.popleft() if self.script else Reply()
        return await behaviour.respond(request, body)
