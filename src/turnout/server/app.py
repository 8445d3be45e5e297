"""The HTTP server: a thin Starlette layer over ``Gateway``. This module only assembles the
route table, the error handlers for what never reaches a handler, and the app's lifetime
(start-up, background tasks, shutdown); the request pipeline is ``ingress``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp

from ..accounting import Accounting, database_url
from ..console import STATIC
from ..errors import TurnoutError
from ..gateway import Gateway
from ..keyhealth import KeyMonitor
from ..metrics import Metrics
from ..redaction import Redactor
from .admin import admin_routes
from .anthropic_wire import ANTHROPIC_MESSAGES
from .connections import GUARD_STATE_KEY, ConnectionGuard
from .console import console_routes
from .console_api import console_api_routes
from .count_tokens import count_tokens
from .dialect import ErrorDialect, error_response, json_response
from .embeddings_wire import OPENAI_EMBEDDINGS
from .feedback import feedback_routes, load_feedback_outcomes
from .health import Readiness, health_routes
from .ingress import chat_handler, embeddings_handler, endpoint, internal_error, route_dialect
from .lifecycle import Lifecycle, TrackRequests
from .management import management_routes
from .openai_wire import OPENAI_CHAT
from .reload import ConfigReloader, config_routes
from .responses_api import responses_routes
from .status import health, list_models, provider_keys, routing_status
from .trace_context import TraceContextMiddleware

__all__ = ["create_app"]

log = logging.getLogger("turnout.server")


def _dialect_of(request: Request) -> ErrorDialect:
    """The error shape for what never reached a handler (or escaped it)."""
    return route_dialect(request.app.routes, request.url.path)


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
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    path = request.url.path
    dialect = _dialect_of(request)
    if dialect is ANTHROPIC_MESSAGES:
        message = f"{request.method} {path}: use POST /v1/messages or /v1/messages/count_tokens"
    else:
        message = f"{request.method} {path}: {getattr(exc, 'detail', '')}"
    redact: Redactor = request.app.state.gateway.redactor
    return json_response(dialect.plain_error(status, kind, redact(message)), status, headers)


async def _on_turnout_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TurnoutError)  # raised outside ``endpoint``: none today
    request.app.state.metrics.observe_error(exc)
    redact: Redactor = request.app.state.gateway.redactor
    return error_response(exc, _dialect_of(request), redact)


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its request body was in: nothing to answer
    (the connection layer counts it and logs one line), so no error and no traceback."""
    log.debug(
        "%s %s: client disconnected while the body was read", request.method, request.url.path
    )
    return Response(status_code=400)  # goes nowhere: the server drops it


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return internal_error(_dialect_of(request))


def routes(*, console: bool = True) -> list[Route]:
    """The route table: each route's handler, what it needs of its caller, and (for the
    chat surfaces) its dialect. ``/openapi.json`` is checked against it by the tests."""
    openai_chat = endpoint(chat_handler(OPENAI_CHAT), "caller")
    embeddings = endpoint(
        embeddings_handler(OPENAI_EMBEDDINGS), "caller", dialect=OPENAI_EMBEDDINGS
    )
    # The router tries routes in order: the busiest path first.
    return [
        Route("/v1/chat/completions", openai_chat, methods=["POST"]),
        Route(
            "/v1/messages",
            endpoint(chat_handler(ANTHROPIC_MESSAGES), "caller", dialect=ANTHROPIC_MESSAGES),
            methods=["POST"],
        ),
        Route(
            "/v1/messages/count_tokens",
            endpoint(count_tokens, "caller", dialect=ANTHROPIC_MESSAGES),
            methods=["POST"],
        ),
        Route("/chat/completions", openai_chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/embeddings", embeddings, methods=["POST"]),
        *responses_routes(),
        Route("/v1/models", endpoint(list_models, "caller"), methods=["GET"]),
        Route(
            "/api/models/providers",
            endpoint(provider_keys, "master", surface="provider key health"),
            methods=["GET"],
        ),
        Route("/health", endpoint(health, "public"), methods=["GET"]),
        *health_routes(),
        Route("/api/routing", endpoint(routing_status, "caller"), methods=["GET"]),
        *admin_routes(),
        *feedback_routes(),
        *management_routes(),
        *(console_routes(STATIC) if console else []),
        *config_routes(),
        *console_api_routes(),
    ]


class _Server(Starlette):
    """Starlette with ``TrackRequests`` (request id, shutdown tracking) outermost: its own
    middleware list sits inside the ``ServerErrorMiddleware`` that renders the ``Exception``
    handler's 500, which would then go out without ``x-request-id``."""

    def build_middleware_stack(self) -> ASGIApp:
        return TrackRequests(super().build_middleware_stack(), self.state.lifecycle)


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
            tasks.append(asyncio.create_task(_load_feedback(app)))
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

    app = _Server(
        routes=routes(console=config.server.console),
        exception_handlers={
            TurnoutError: _on_turnout_error,
            ClientDisconnect: _on_client_disconnect,
            Exception: _on_unexpected,
            404: _not_found,
            405: _not_found,
        },
        lifespan=lifespan,
        middleware=[Middleware(TraceContextMiddleware)] if gateway.tracing is not None else [],
    )
    master = config.server.master_key
    app.state.gateway = gateway
    app.state.metrics = Metrics()
    app.state.metrics.add_connections(guard)
    guard.dialect_for = lifecycle.dialect_for = lambda path: route_dialect(app.routes, path)
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


async def _load_feedback(app: Starlette) -> None:
    try:
        await load_feedback_outcomes(app)
    except TurnoutError as exc:
        log.warning("feedback outcomes not loaded: %s", exc.message)


async def _preload(app: Starlette, gateway: Gateway) -> None:
    app.state.local_status = "loading"
    try:
        loaded = await gateway.preload()
        app.state.local_status = "loaded" if loaded else "not used"
    except TurnoutError as exc:
        app.state.local_status = f"unavailable: {exc.message}"
        log.warning("embedded model not preloaded: %s", exc.message)
