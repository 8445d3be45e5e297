"""A fake Gemini Developer API (v1beta) on loopback, scripted per test with the neutral steps.

``POST /v1beta/models/{model}:generateContent`` answers a ``GenerateContentResponse``;
``:streamGenerateContent?alt=sse`` answers data-only SSE events (CRLF-framed, no ``[DONE]``),
each a ``GenerateContentResponse``; errors are ``google.rpc.Status`` JSON with the canonical
status name for the HTTP code, and a 429's wait travels as ``RetryInfo`` in ``details`` as
Gemini sends it. Built from ``gemini-native.openapi.json`` and the v1beta protos; proven by
the ``google-genai`` SDK in ``tests/test_gemini.py``.
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

RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def usage(reply: Reply, final: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"promptTokenCount": reply.prompt_tokens}
    if final:
        out["candidatesTokenCount"] = reply.completion_tokens
        out["totalTokenCount"] = reply.prompt_tokens + reply.completion_tokens
    else:
        out["totalTokenCount"] = reply.prompt_tokens
    if reply.cached_tokens:
        out["cachedContentTokenCount"] = reply.cached_tokens
    return out


def response(
    parts: list[dict[str, Any]],
    model: str,
    finish: str | None = None,
    usage_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": model,
        "responseId": f"fake-gemini-{next(_ids)}",
    }
    if usage_metadata:
        out["usageMetadata"] = usage_metadata
    return out


SIGNATURE = "c2lnbmVkLXRob3VnaHQtZmFrZQ=="
"""Thinking models sign their function calls; the signature must come back next turn."""


def call_part(reply: Reply) -> dict[str, Any]:
    assert reply.tool_call is not None
    name, args = reply.tool_call
    return {
        "functionCall": {"name": name, "args": orjson.loads(args)},
        "thoughtSignature": SIGNATURE,
    }


def whole(reply: Reply, model: str) -> dict[str, Any]:
    parts = [call_part(reply)] if reply.tool_call else [{"text": reply.text}]
    return response(parts, model, "STOP", usage(reply))


def chunks(reply: Reply, model: str) -> list[dict[str, Any]]:
    """A stream as Gemini sends it: text in pieces, a function call whole in one part, the
    finish reason and final usage on the last chunk."""
    if reply.tool_call:
        return [response([call_part(reply)], model, "STOP", usage(reply))]
    pieces = reply.words
    out = [response([{"text": p}], model, None, usage(reply, False)) for p in pieces[:-1]]
    out.append(response([{"text": pieces[-1]}], model, "STOP", usage(reply)))
    return out


def error_body(status: int, message: str, rpc: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "status": rpc or RPC_STATUS.get(status, "UNKNOWN"),
        }
    }


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"


def batch_embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """``BatchEmbedContentsResponse``: a vector per request (8 values unless
    ``outputDimensionality`` says otherwise), no token count (Gemini reports none)."""
    out = []
    for item in body.get("requests", []):
        text = "".join(p.get("text", "") for p in item["content"]["parts"])
        out.append({"values": fake_vector(text, int(item.get("outputDimensionality") or 8))})
    return {"embeddings": out}


class FakeGemini(FakeUpstream):
    def __init__(self) -> None:
        super().__init__()
        for version in ("v1beta", "v1"):  # the SDK defaults to v1; the gateway speaks v1beta
            self.app.router.add_post(f"/{version}/models/{{call}}", self.handle)
            self.app.router.add_get(f"/{version}/models", self._models)

    async def _models(self, request: web.Request) -> web.Response:
        model = {
            "name": "models/gemini-fake",
            "displayName": "Gemini fake",
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        }
        return web.json_response({"models": [model]})

    async def render(
        self, step: Any, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        model, _, method = request.match_info["call"].partition(":")
        if method == "batchEmbedContents":
            if isinstance(step, Fail):
                return self._fail(step)
            return web.json_response(batch_embeddings(body))
        if method not in ("generateContent", "streamGenerateContent"):
            return web.json_response(error_body(404, f"Method {method!r} not found."), status=404)
        if isinstance(step, Fail):
            return self._fail(step)
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            step = Reply()
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            # Without alt=sse Gemini streams one JSON array; the gateway never asks for it.
            return web.json_response(error_body(400, "fake: only alt=sse is served"), status=400)
        if isinstance(step, Cut):
            frames = [sse(c) for c in chunks(Reply(text="one two three four five"), model)]
            return await write_frames(request, frames[: step.keep], "text/event-stream", cut=True)
        if isinstance(step, StreamError):
            pieces = chunks(Reply(text="one two three four five"), model)[: step.after]
            frames = [sse(c) for c in pieces] + [sse(error_body(500, step.message))]
            return await write_frames(request, frames, "text/event-stream")
        assert isinstance(step, Reply), step
        if step.delay:
            await asyncio.sleep(step.delay)
        if not stream:
            return web.json_response(whole(step, model), dumps=lambda o: orjson.dumps(o).decode())
        frames = [sse(c) for c in chunks(step, model)]
        return await write_frames(
            request, frames, "text/event-stream", chunk_delay=step.chunk_delay
        )

    def _fail(self, step: Fail) -> web.Response:
        status = 503 if step.status == 529 else step.status  # Gemini's overload is a 503
        body = error_body(status, step.message, step.code)
        headers = dict(step.headers)
        wait = headers.pop("Retry-After", None) or headers.pop("retry-after", None)
        if wait is not None:
            body["error"]["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait}s"}
            ]
        return web.json_response(body, status=status, headers=headers)
