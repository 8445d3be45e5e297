"""Read-only views of the gateway: the models a client may name, the routing state, provider
key health and the server's own health. Thin handlers; who may call each is declared in the
route table (``app``)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from ..gateway import Gateway
from ..redaction import Redactor
from .dialect import json_response
from .ingress import caller_of

__all__ = ["health", "list_models", "provider_keys", "routing_status"]


async def list_models(request: Request) -> Response:
    """What the caller may ask for: what this server can serve (every route and catalogue
    model with ``?all=true``), or those a gateway key is allowed."""
    key = caller_of(request).key
    gateway: Gateway = request.app.state.gateway
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": entry.provider if entry else "turnout",
        }
        # ?all=true: also what this server cannot serve now (a provider without its key)
        for name, entry in gateway.models(request.query_params.get("all") in ("1", "true"))
        if key is None or key.allows(name)
    ]
    return json_response({"object": "list", "data": data})


async def routing_status(request: Request) -> Response:
    """Routes and live deployment stats; a gateway key sees only the routes it may use and
    the deployments behind them."""
    key = caller_of(request).key
    gateway: Gateway = request.app.state.gateway
    return json_response(gateway.routing_status(key.allows if key is not None else None))


async def provider_keys(request: Request) -> Response:
    """Key health per provider, as last checked by the background monitor."""
    monitor = request.app.state.key_monitor
    redact: Redactor = request.app.state.gateway.redactor
    # An upstream's answer to the key check is quoted in last_error: redacted like any error.
    data = [redact.value(s.to_json()) for s in monitor.snapshot()] if monitor is not None else []
    return json_response({"object": "list", "data": data})


async def health(request: Request) -> Response:
    state = request.app.state
    return json_response(
        {
            "status": "ok",
            "uptime_s": round(time.monotonic() - state.started, 3),
            "local_model": state.local_status,
            "task_classifier": state.classifier_status,
        }
    )
