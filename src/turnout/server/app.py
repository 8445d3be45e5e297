"""The HTTP server: a thin Starlette layer over ``Gateway``. Handlers parse, call the library,
serialise; every error leaves in the OpenAI error shape with its status code."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Match, Route

from ..accounting import Accounting, database_url
from ..config import STRATEGIES
from ..console import STATIC
from ..errors import (
    AuthenticationError,
    BadRequestError,
    PermissionDeniedError,
    RequestTooLargeError,
    TurnoutError,
)
from ..gateway import Gateway, parse_request
from ..keyhealth import KeyMonitor
from ..metrics import Metrics
from ..redaction import Redactor
from ..streaming import ChatStream
from ..types import ChatRequest, ChatResult, RoutingHints
from .admin import admin_routes, presented_key
from .connections import GUARD_STATE_KEY, ConnectionGuard
from .console import console_routes
from .console_api import console_api_routes
from .health import Readiness, health_routes
from .lifecycle import Lifecycle, TrackRequests
from .management import management_routes
from .metering import Meter, authorize
from .openai_wire import ChunkWriter, error_body, format_usd, header_text, result_body
from .reload import ConfigReloader, config_routes
from .request_id import RequestIdMiddleware

__all__ = ["create_app"]

log = logging.getLogger("turnout.server")

_JSON = "application/json"
_DONE = b"data: [DONE]\n\n"


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=_JSON, headers=headers)


def error_response(err: TurnoutError, redact: Redactor) -> Response:
    return _json(error_body(err, redact), err.status_code, error_headers(err))


def error_headers(err: TurnoutError) -> dict[str, str]:
    """The headers an error carries (a gateway key's limits, ``Retry-After``), made safe."""
    headers = {k: header_text(v) for k, v in (err.headers or {}).items()}
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return headers


def _served_headers(served: ChatResult | ChatStream) -> dict[str, str]:
    """Who served a request. The values echo text from the client (a task hint) and the
    upstream (the model it reports), so each goes through ``header_text``."""
    headers = {
        "x-turnout-provider": served.provider,
        "x-turnout-model": served.model,
        "x-turnout-deployment": served.deployment,
        "x-turnout-attempts": str(served.attempts),
        "x-turnout-strategy": served.strategy or "priority",
    }
    if served.task:
        headers["x-turnout-task"] = served.task
    # A stream's cost is known only at its end (see ``_frames``); a whole result's now.
    if isinstance(served, ChatResult) and served.cost is not None:
        headers["x-turnout-cost-usd"] = format_usd(served.cost)
    return {name: header_text(value) for name, value in headers.items()}


def _routing_hints(request: Request, chat: ChatRequest, caller: str | None) -> ChatRequest:
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


async def _read_body(request: Request, limit: int) -> bytes:
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


async def chat_completions(request: Request) -> Response:
    key = await authorize(request)
    gateway: Gateway = request.app.state.gateway
    raw = await _read_body(request, request.app.state.max_body)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    chat = _routing_hints(request, parse_request(obj), key.id if key is not None else None)
    meter = Meter(request, key, chat.model, bool(chat.stream))
    try:
        await meter.admit()
        if chat.stream:
            stream = await gateway.stream(chat)
        else:
            result: ChatResult = await gateway.chat(chat)
    except TurnoutError as err:
        await meter.failed(err)
        raise
    if chat.stream:
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        return StreamingResponse(
            _frames(stream, chat.model, include_usage, meter, request.app.state),
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **_served_headers(stream),
                **meter.headers,
            },
        )
    await meter.served(result, result.cost)
    _observe(request.app.state.metrics, result)
    return Response(
        result_body(result, chat.model),
        media_type=_JSON,
        headers={
            **_served_headers(result),
            **meter.headers,
        },
    )


def _observe(metrics: Metrics, r: ChatResult | ChatStream) -> None:
    model = r.deployment.partition(":")[2] or r.model
    metrics.observe(r.provider, model, r.usage, r.cost, r.time_to_first_token, r.latency)


async def _frames(
    stream: ChatStream, model: str, include_usage: bool, meter: Meter, state: State
) -> AsyncIterator[bytes]:
    metrics: Metrics = state.metrics
    writer = ChunkWriter(stream.id, stream.created, model, include_usage)
    failure: TurnoutError | None = None
    try:
        async for event in stream:
            frame = writer.event(event)
            if frame:
                yield frame
        cost = stream.cost
        _observe(metrics, stream)
        tail = writer.usage(stream.usage, cost)
        if tail:
            yield tail
        if cost is not None:
            # The stream's cost is known only now, after the headers: an SSE comment (which
            # every SSE client skips) carries it, as a trailer would.
            yield b": x-turnout-cost-usd=" + format_usd(cost).encode() + b"\n\n"
        yield _DONE
    except TurnoutError as err:
        # Bytes already went out, so the status is fixed: report in-band, never truncate
        # silently. OpenAI SDKs raise on a chunk that carries "error".
        failure = err
        log.warning("stream from %s failed mid-way: %s", stream.deployment, err)
        metrics.observe_error(err)
        yield b"data: " + orjson.dumps(error_body(err, state.gateway.redactor)) + b"\n\n"
    finally:
        await stream.aclose()
        meter.stream_closed(stream, stream.cost, failure)


async def list_models(request: Request) -> Response:
    """What the caller may ask for: every model, or those a gateway key is allowed."""
    key = await authorize(request)
    gateway: Gateway = request.app.state.gateway
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": entry.provider if entry else "turnout",
        }
        for name, entry in gateway.models()
        if key is None or key.allows(name)
    ]
    return _json({"object": "list", "data": data})


async def routing_status(request: Request) -> Response:
    """Routes and live deployment stats; a gateway key sees only the routes it may use and
    the deployments behind them."""
    key = await authorize(request)
    gateway: Gateway = request.app.state.gateway
    return _json(gateway.routing_status(key.allows if key is not None else None))


async def provider_keys(request: Request) -> Response:
    """Key health per provider, as last checked by the background monitor. Behind the master
    key when one is set (gateway keys may not see it)."""
    master: str | None = request.app.state.master_key
    if master is not None:
        token = presented_key(request)
        if token is None:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <master key>'")
        if not hmac.compare_digest(token.encode(), master.encode()):
            raise PermissionDeniedError("provider key health needs the master key")
    monitor = request.app.state.key_monitor
    redact: Redactor = request.app.state.gateway.redactor
    # An upstream's answer to the key check is quoted in last_error: redacted like any error.
    data = [redact.value(s.to_json()) for s in monitor.snapshot()] if monitor is not None else []
    return _json({"object": "list", "data": data})


async def health(request: Request) -> Response:
    state = request.app.state
    return _json(
        {
            "status": "ok",
            "uptime_s": round(time.monotonic() - state.started, 3),
            "local_model": state.local_status,
            "task_classifier": state.classifier_status,
        }
    )


async def _on_turnout_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TurnoutError)
    request.app.state.metrics.observe_error(exc)
    if exc.status_code >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc)
    return error_response(exc, request.app.state.gateway.redactor)


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its request body was in: nothing to answer
    (the connection layer counts it and logs one line), so no error and no traceback."""
    log.debug(
        "%s %s: client disconnected while the body was read", request.method, request.url.path
    )
    return Response(status_code=400)  # goes nowhere: the server drops it


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _json(
        {
            "error": {
                "message": "internal error in the gateway",
                "type": "api_error",
                "param": None,
                "code": "internal_error",
            }
        },
        500,
    )


def _allowed(request: Request) -> str:
    """Every method some route takes at this path (Starlette's own 405 names only the first
    route that matched the path, and the admin API has one route per method)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL and isinstance(route, Route) and route.methods:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _not_found(request: Request, exc: Exception) -> Response:
    """404 and 405 from the router; a 405 keeps the ``Allow`` header Starlette gives it."""
    status = getattr(exc, "status_code", 404)
    headers = {"Allow": _allowed(request)} if status == 405 else None
    redact: Redactor = request.app.state.gateway.redactor
    if request.url.path.startswith("/v1/messages"):
        from .anthropic_route import plain_error

        kind = "not_found_error" if status == 404 else "invalid_request_error"
        message = f"{request.method} {request.url.path}: use POST /v1/messages"
        return plain_error(status, kind, redact(message), headers)
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    return _json(
        {
            "error": {
                "message": redact(
                    f"{request.method} {request.url.path}: {getattr(exc, 'detail', '')}"
                ),
                "type": kind,
                "param": None,
                "code": None,
            }
        },
        status,
        headers,
    )


def create_app(gateway: Gateway, accounting: Accounting | None = None) -> Starlette:
    """The server for ``gateway``; ``accounting`` defaults to one built from its config
    (request log, gateway keys, limits), or none when ``database_url`` is ``none`` and no
    Redis is set."""
    config = gateway.config
    if accounting is None and (database_url(config) is not None or config.redis_url):
        accounting = Accounting(config)

    guard = ConnectionGuard.from_config(config.server)
    readiness = Readiness(accounting, config.source, config.server.ready_requires_database)
    lifecycle = Lifecycle(
        readiness, config.server.shutdown_grace_period, config.server.shutdown_timeout
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, object]]:
        lifecycle.install()
        reloader.install(config.server.watch_config)
        tasks = []
        await gateway.state.start()
        if config.server.preload_local:
            tasks.append(asyncio.create_task(_preload(app, gateway)))
        if gateway.planner.needs_classifier(gateway.router.routes()):
            tasks.append(asyncio.create_task(_preload_classifier(app, gateway)))
        if accounting is not None:
            await accounting.start()
        if app.state.key_monitor is not None:
            tasks.append(asyncio.create_task(app.state.key_monitor.run()))
        try:
            # The lifespan state reaches every connection's protocol (see connections.py).
            yield {GUARD_STATE_KEY: guard}
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if accounting is not None:
                await accounting.aclose()
            await reloader.aclose()
            await app.state.gateway.aclose()  # the current one: a reload may have swapped it

    from .anthropic_route import anthropic_routes  # it builds on this module's helpers

    app = Starlette(
        routes=[
            *anthropic_routes(),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/api/models/providers", provider_keys, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            *health_routes(),
            Route("/api/routing", routing_status, methods=["GET"]),
            *admin_routes(),
            *management_routes(),
            *(console_routes(STATIC) if config.server.console else []),
            *config_routes(),
            *console_api_routes(),
        ],
        exception_handlers={
            TurnoutError: _on_turnout_error,
            ClientDisconnect: _on_client_disconnect,
            Exception: _on_unexpected,
            404: _not_found,
            405: _not_found,
        },
        lifespan=lifespan,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(TrackRequests, lifecycle=lifecycle),
        ],
    )
    master = config.server.master_key
    app.state.gateway = gateway
    app.state.metrics = Metrics()
    app.state.metrics.add_connections(guard)
    if accounting is not None:
        app.state.metrics.add_accounting(accounting)
    app.state.accounting = accounting
    app.state.readiness = readiness
    app.state.lifecycle = lifecycle
    reloader = app.state.reloader = ConfigReloader(app, gateway)
    app.state.master_key = master.get_secret_value() if master else None
    app.state.max_body = config.server.max_body_bytes
    app.state.started = time.monotonic()
    app.state.local_status = "not loaded"
    app.state.classifier_status = "not used"
    app.state.key_monitor = (
        KeyMonitor(config, gateway.catalogue, gateway.adapters.http)
        if config.key_health.enabled
        else None
    )
    return app


async def _preload_classifier(app: Starlette, gateway: Gateway) -> None:
    app.state.classifier_status = "loading"
    try:
        await gateway.planner.preload(gateway.router.routes())
        app.state.classifier_status = "loaded"
    except TurnoutError as exc:
        app.state.classifier_status = f"unavailable: {exc.message}"
        log.warning("task classifier not loaded: %s", exc.message)


async def _preload(app: Starlette, gateway: Gateway) -> None:
    app.state.local_status = "loading"
    try:
        loaded = await gateway.preload()
        app.state.local_status = "loaded" if loaded else "not used"
    except TurnoutError as exc:
        app.state.local_status = f"unavailable: {exc.message}"
        log.warning("embedded model not preloaded: %s", exc.message)
