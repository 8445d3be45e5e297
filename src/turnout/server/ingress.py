"""The one ingress pipeline: resolve the caller, read and parse the body, call the gateway
through the meter, serialise. What differs between wire APIs is the ``Dialect``; what a route
needs of its caller is declared where the route is made (``endpoint``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..accounting.responses import ResponseStore
from ..config import STRATEGIES
from ..errors import BadRequestError, DatabaseUnavailableError, RequestTooLargeError, TurnoutError
from ..gateway import Gateway
from ..streaming import ChatStream
from ..types import ChatRequest, EmbeddingRequest, RoutingHints
from .anthropic_wire import ANTHROPIC_MESSAGES
from .auth import Caller, Need, resolve_caller
from .dialect import JSON, Dialect, ErrorDialect, error_response, json_response
from .embeddings_wire import EmbeddingsDialect
from .metering import Meter
from .openai_wire import OPENAI_CHAT
from .responses_wire import OpenAIResponses, ResponsesCall, ResponseStreamWriter

__all__ = [
    "SSE_HEADERS",
    "Handler",
    "caller_of",
    "chat_handler",
    "embeddings_handler",
    "endpoint",
    "internal_error",
    "read_body",
    "responses_handler",
    "route_dialect",
]

log = logging.getLogger("turnout.server")

Handler = Callable[[Request], Awaitable[Response]]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def caller_of(request: Request) -> Caller:
    """The caller ``endpoint`` resolved for this request (kept in the ASGI scope's ``auth``,
    where Starlette's own ``AuthenticationMiddleware`` keeps its credentials)."""
    caller: Caller = request.scope["auth"]
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
            request.scope["auth"] = await resolve_caller(request, need, surface)
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
    run.dialect = dialect  # type: ignore[attr-defined]  # read by ``route_dialect``
    return run


def route_dialect(routes: Sequence[BaseRoute], path: str) -> ErrorDialect:
    """The error shape of a request for ``path``: the dialect of the route that serves it,
    as ``endpoint`` declared it; for a path no route serves, the wire API its prefix belongs
    to (an unknown path under ``/v1/messages`` answers as Anthropic's API would)."""
    for route in routes:
        if isinstance(route, Route) and route.path_regex.match(path):
            dialect: ErrorDialect = getattr(route.endpoint, "dialect", OPENAI_CHAT)
            return dialect
    return ANTHROPIC_MESSAGES if path.startswith("/v1/messages") else OPENAI_CHAT


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


def response_store(request: Request) -> ResponseStore | None:
    """Where ``/v1/responses`` keeps responses: the accounting database; None without one."""
    accounting = request.app.state.accounting
    return accounting.responses if accounting is not None else None


async def _continue(request: Request, call: ResponsesCall, caller: Caller) -> None:
    """Put the conversation ``previous_response_id`` names before ``call``'s input: its
    input items, then its output (a key sees only its own responses)."""
    previous = call.request.previous_response_id
    if previous is None:
        return
    store = response_store(request)
    if store is None:
        raise BadRequestError(
            "previous_response_id: this server keeps no responses (database_url is none)",
            param="previous_response_id",
        )
    found = await store.get(previous, caller.key_id, caller.key is None)
    if found is None:
        raise BadRequestError(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    call.history = [*found.input_items, *found.response.get("output", [])]


async def _keep(
    request: Request, call: ResponsesCall, response: dict[str, Any], caller: Caller
) -> None:
    """Store a finished response; a database that fails to take it costs a warning, never
    the answer."""
    store = response_store(request)
    if store is None or not call.stored:
        return
    try:
        await store.save(response, call.context, caller.key_id)
    except DatabaseUnavailableError as err:
        log.warning("response %s not stored: %s", call.id, err)


def responses_handler(dialect: OpenAIResponses) -> Handler:
    """The handler of the Responses surface: the chat pipeline (caller, body, routing hints,
    limits, the call, metering) with ``dialect`` doing the wire format, plus what the
    surface adds: an earlier stored conversation before the input, the answer stored after
    (before the client sees ``response.completed``, so it can continue at once)."""

    async def handle(request: Request) -> Response:
        caller = caller_of(request)
        gateway: Gateway = request.app.state.gateway
        call = dialect.parse(await read_json(request))
        await _continue(request, call, caller)
        call.stored = call.request.store is not False and response_store(request) is not None
        chat = routing_hints(request, dialect.chat_request(call), caller.key_id)
        meter = Meter(request, caller, chat.model, bool(chat.stream))
        served = await meter.call(gateway, chat)
        if isinstance(served, ChatStream):
            writer = dialect.stream(call, chat)
            return StreamingResponse(
                _stored_at_end(meter.relay(served, writer), writer, request, call, caller),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **meter.response_headers(served)},
            )
        await meter.served(served)
        body = dialect.result(served, call, chat)
        await _keep(request, call, body, caller)
        return Response(orjson.dumps(body), media_type=JSON, headers=meter.response_headers(served))

    handle.__name__ = f"{dialect.name}_handler"
    return handle


async def _stored_at_end(
    frames: AsyncGenerator[bytes, None],
    writer: ResponseStreamWriter,
    request: Request,
    call: ResponsesCall,
    caller: Caller,
) -> AsyncIterator[bytes]:
    """``frames``, with the finished response stored just before its last frame goes out."""
    try:
        async for frame in frames:
            if writer.final is not None:
                final, writer.final = writer.final, None
                await _keep(request, call, final, caller)
            yield frame
    finally:
        await frames.aclose()  # a client gone mid-way: the meter's record is written now
