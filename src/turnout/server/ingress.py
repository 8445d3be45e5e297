"""The one ingress pipeline: resolve the caller, read and parse the body, call the gateway
through the meter, serialise. What differs between wire APIs is the ``Dialect``; what a route
needs of its caller is declared where the route is made (``endpoint``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from ..config import STRATEGIES
from ..errors import BadRequestError, RequestTooLargeError, TurnoutError
from ..gateway import Gateway
from ..streaming import ChatStream
from ..types import ChatRequest, EmbeddingRequest, RoutingHints
from .auth import Caller, Need, resolve_caller
from .dialect import JSON, Dialect, ErrorDialect, error_response, json_response
from .embeddings_wire import EmbeddingsDialect
from .metering import Meter
from .openai_wire import OPENAI_CHAT

__all__ = [
    "SSE_HEADERS",
    "Handler",
    "caller_of",
    "chat_handler",
    "embeddings_handler",
    "endpoint",
    "internal_error",
    "read_body",
]

log = logging.getLogger("turnout.server")

Handler = Callable[[Request], Awaitable[Response]]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def caller_of(request: Request) -> Caller:
    """The caller ``endpoint`` resolved for this request."""
    caller: Caller = request.state.caller
    return caller


def internal_error(dialect: ErrorDialect) -> Response:
    body = dialect.plain_error(500, "api_error", "internal error in the gateway", "internal_error")
    return json_response(body, 500)


def endpoint(
    handler: Handler, need: Need, *, surface: str = "", dialect: ErrorDialect = OPENAI_CHAT
) -> Handler:
    """``handler`` behind the caller rule for ``need``, with every error it raises rendered
    in ``dialect``'s shape (and counted in the metrics)."""

    async def run(request: Request) -> Response:
        try:
            request.state.caller = await resolve_caller(request, need, surface)
            return await handler(request)
        except TurnoutError as err:
            request.app.state.metrics.observe_error(err)
            if err.status_code >= 500:
                log.warning(
                    "%s %s -> %d: %s", request.method, request.url.path, err.status_code, err
                )
            return error_response(err, dialect, request.app.state.gateway.redactor)
        except ClientDisconnect:
            raise  # nobody to answer: the app's handler for it keeps it out of the error log
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            return internal_error(dialect)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    """The decoded body, within the server's size limit; 400 when it is not JSON."""
    raw = await read_body(request, request.app.state.max_body)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None


R = TypeVar("R", ChatRequest, EmbeddingRequest)


def routing_hints(request: Request, chat: R, caller: str | None) -> R:
    """``x-turnout-strategy`` overrides the route's strategy (a body ``turnout.strategy``
    wins over the header); the gateway key is the caller of sticky A/B splits unless the body
    names one (``turnout.caller`` or ``user``)."""
    name = request.headers.get("x-turnout-strategy")
    update: dict[str, str] = {}
    if name:
        name = name.strip().lower()
        if name not in STRATEGIES:
            raise BadRequestError(
                f"x-turnout-strategy: unknown strategy '{name}' (one of: {', '.join(STRATEGIES)})",
                param="x-turnout-strategy",
            )
        update["strategy"] = name
    if caller is not None and chat.user is None:
        update["caller"] = caller
    if not update:
        return chat
    hints = chat.turnout or RoutingHints()
    update = {k: v for k, v in update.items() if getattr(hints, k) is None}
    if update:
        chat.turnout = hints.model_copy(update=update)
    return chat


def chat_handler(dialect: Dialect) -> Handler:
    """The handler of a chat surface: the whole pipeline, ``dialect`` doing the wire
    format."""

    async def handle(request: Request) -> Response:
        caller = caller_of(request)
        gateway: Gateway = request.app.state.gateway
        chat = routing_hints(request, dialect.parse(await read_json(request)), caller.key_id)
        meter = Meter(request, caller, chat.model, bool(chat.stream))
        served = await meter.call(gateway, chat)
        if isinstance(served, ChatStream):
            return StreamingResponse(
                meter.relay(served, dialect.stream(served, chat)),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **meter.response_headers(served)},
            )
        await meter.served(served)
        return Response(
            dialect.result(served, chat),
            media_type=JSON,
            headers=meter.response_headers(served),
        )

    handle.__name__ = f"{dialect.name}_handler"
    return handle


def embeddings_handler(dialect: EmbeddingsDialect) -> Handler:
    """The handler of an embeddings surface: the same pipeline (caller, body, routing hints,
    limits, the call, metering) with ``dialect`` doing the wire format."""

    async def handle(request: Request) -> Response:
        caller = caller_of(request)
        gateway: Gateway = request.app.state.gateway
        req = routing_hints(request, dialect.parse(await read_json(request)), caller.key_id)
        meter = Meter(request, caller, req.model, False)
        served = await meter.embed(gateway, req)
        await meter.served(served)
        return Response(
            dialect.result(served, req), media_type=JSON, headers=meter.response_headers(served)
        )

    handle.__name__ = f"{dialect.name}_handler"
    return handle
