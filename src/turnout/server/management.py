"""The management API (``/api/models...``) and ``/metrics``: thin handlers over ``Gateway``
and ``Catalogue``. Errors leave in the OpenAI error shape, like the rest of the server; model
calls (generate, stream, test) are metered like the ingresses' (``Meter``).

``POST /api/models/stream`` speaks SSE with named events: ``delta`` (``{"text": ...}``), then
one ``done`` (the same object ``/api/models/generate`` returns) or one ``error``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..config import CAPABILITIES
from ..errors import BadRequestError, TurnoutError
from ..gateway import Gateway, parse_request
from ..metrics import CONTENT_TYPE_LATEST
from ..redaction import Redactor
from ..streaming import ChatStream
from ..types import ChatResult, StreamEvent, TextDelta
from .ingress import SSE_HEADERS, Handler, caller_of, endpoint
from .metering import Meter
from .openai_wire import error_body
from .openapi import openapi_document

__all__ = ["management_routes"]

log = logging.getLogger("turnout.server")

TEST_PROMPT = "Reply with the single word: pong"
_MAX_BODY = 1024 * 1024


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers
    )


def _number(request: Request, name: str, kind: type[float] | type[int]) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise BadRequestError(
            f"query parameter '{name}' must be a {kind.__name__}, got {raw!r}", param=name
        ) from None
    if value < 0:
        raise BadRequestError(f"query parameter '{name}' must not be negative", param=name)
    return value


def _many(request: Request, name: str) -> list[str]:
    """A repeatable parameter: ``?tag=a&tag=b`` or ``?tag=a,b``."""
    return [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]


async def list_catalogue(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    caps = _many(request, "capability")
    unknown = sorted(set(caps) - set(CAPABILITIES))
    if unknown:
        raise BadRequestError(
            f"unknown capability {', '.join(unknown)}: expected one of "
            f"{', '.join(sorted(CAPABILITIES))}",
            param="capability",
        )
    entries = gateway.catalogue.query(
        capabilities=caps,
        tags=_many(request, "tag"),
        provider=request.query_params.get("provider") or None,
        max_input_price=_number(request, "max_input_price", float),
        max_output_price=_number(request, "max_output_price", float),
        min_context=_number(request, "min_context", int),
    )
    return _json({"object": "list", "data": [e.to_dict() for e in entries]})


async def _chat_body(request: Request, *, default_prompt: str | None = None) -> dict[str, Any]:
    """The request body as a chat request: ``model`` plus ``prompt`` (and an optional
    ``system``) or ``messages``; ``max_tokens`` and ``temperature`` pass through."""
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise BadRequestError(f"request body exceeds {_MAX_BODY} bytes")
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError(
            "'model' is required: a route, catalogue model or provider:model", param="model"
        )
    messages = body.get("messages")
    if messages is None:
        prompt = body.get("prompt", default_prompt)
        if not isinstance(prompt, str) or not prompt:
            raise BadRequestError(
                "send 'prompt' (a non-empty string) or 'messages'", param="prompt"
            )
        messages = [{"role": "user", "content": prompt}]
        system = body.get("system")
        if system is not None:
            if not isinstance(system, str):
                raise BadRequestError("'system' must be a string", param="system")
            messages.insert(0, {"role": "system", "content": system})
    chat: dict[str, Any] = {"model": model, "messages": messages}
    for name in ("max_tokens", "temperature"):
        if body.get(name) is not None:
            chat[name] = body[name]
    return chat


def summary(result: ChatResult, total: float) -> dict[str, Any]:
    """What generate, test and the stream's ``done`` event report about one request."""
    ttft = result.time_to_first_token
    out_tokens = result.usage.completion_tokens
    gen_time = total - ttft if ttft is not None else total
    return {
        "id": result.id,
        "model": result.model,
        "provider": result.provider,
        "deployment": result.deployment,
        "text": result.text,
        "finish_reason": result.choices[0].finish_reason if result.choices else None,
        "usage": result.usage.to_openai(),
        "cost_usd": result.request_cost,
        "attempts": result.attempts,
        "timings": {
            "ttft_s": round(ttft, 6) if ttft is not None else None,
            "total_s": round(total, 6),
            "tokens_per_s": round(out_tokens / gen_time, 3)
            if out_tokens and gen_time > 0
            else None,
        },
    }


async def _run(request: Request, body: dict[str, Any]) -> tuple[ChatResult, float, Meter]:
    """One metered request, streamed upstream so that time to first token is measured."""
    chat = parse_request(body)
    meter = Meter(request, caller_of(request), chat.model, stream=False)
    started = time.perf_counter()
    stream = await meter.open_stream(request.app.state.gateway, chat)
    result = await meter.collect(stream)
    total = time.perf_counter() - started
    await meter.served(result)
    return result, total, meter


async def generate(request: Request) -> Response:
    result, total, meter = await _run(request, await _chat_body(request))
    return _json(summary(result, total), headers=meter.response_headers(result))


async def test_model(request: Request) -> Response:
    """One real round trip. An upstream failure is the test's answer (``ok: false``), not an
    error of this endpoint; a malformed request or an unknown model still is."""
    chat = await _chat_body(request, default_prompt=TEST_PROMPT)
    chat.setdefault("max_tokens", 8)
    started = time.perf_counter()
    try:
        result, total, meter = await _run(request, chat)
    except TurnoutError as err:
        if err.status_code in (400, 404) and err.provider is None:
            raise
        request.app.state.metrics.observe_error(err)
        return _json(
            {
                "ok": False,
                "model": chat["model"],
                "error": error_body(err, request.app.state.gateway.redactor)["error"],
                "timings": {"total_s": round(time.perf_counter() - started, 6)},
            }
        )
    return _json({"ok": True, **summary(result, total)}, headers=meter.response_headers(result))


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def stream_model(request: Request) -> Response:
    chat = parse_request(await _chat_body(request))
    meter = Meter(request, caller_of(request), chat.model, stream=True)
    started = time.perf_counter()
    # fails over (or fails) before the first byte
    stream = await meter.open_stream(request.app.state.gateway, chat)
    return StreamingResponse(
        meter.relay(stream, _Events(started)),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, **meter.response_headers(stream)},
    )


class _Events:
    """The stream's frames: ``delta`` per text delta, then ``done`` or ``error``."""

    __slots__ = ("_started",)

    def __init__(self, started: float) -> None:
        self._started = started

    def start(self) -> bytes:
        return b""

    def event(self, event: StreamEvent) -> bytes:
        return _event("delta", {"text": event.text}) if isinstance(event, TextDelta) else b""

    def end(self, stream: ChatStream) -> bytes:
        return _event("done", summary(stream.final(), time.perf_counter() - self._started))

    def error(self, err: TurnoutError, redact: Redactor) -> bytes:
        return _event("error", error_body(err, redact))


async def metrics(request: Request) -> Response:
    body = request.app.state.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return Response(openapi_document(), media_type="application/json")


def management_routes() -> list[Route]:
    """The routes, each behind the master key except the OpenAPI description, which holds
    nothing secret."""

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Handler:
        return endpoint(handler, "master", surface="the management API")

    return [
        Route("/api/models", guarded(list_catalogue), methods=["GET"]),
        Route("/api/models/generate", guarded(generate), methods=["POST"]),
        Route("/api/models/stream", guarded(stream_model), methods=["POST"]),
        Route("/api/models/test", guarded(test_model), methods=["POST"]),
        Route("/metrics", guarded(metrics), methods=["GET"]),
        Route("/openapi.json", endpoint(openapi, "public"), methods=["GET"]),
    ]
