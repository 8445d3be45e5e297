"""``POST /v1/messages/count_tokens``: the input tokens of an Anthropic Messages request, as
Claude Code asks before each turn to decide when to compact its context. Exact when the
route's first deployment can count (Anthropic, the embedded model), else an estimate
(``Gateway.count_tokens``); never a constant, never 0 for a request with content.

The caller rule and the key's model allow-list are those of ``/v1/messages``; a count calls
no model, so it costs nothing and is not in the request log, but it counts as a request
against a gateway key's request rate (as Anthropic rate-limits its own endpoint)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import TurnoutError
from ..gateway import Gateway
from .anthropic_request import to_count_request
from .dialect import json_response
from .ingress import caller_of, read_json, routing_hints
from .metering import Meter
from .openai_wire import header_text

__all__ = ["count_tokens"]


async def count_tokens(request: Request) -> Response:
    """``{"input_tokens": N}``, with ``x-turnout-token-count`` saying how it was counted
    (``exact``, ``cl100k_base`` or ``bytes``) and ``x-turnout-deployment`` for which model."""
    caller = caller_of(request)
    gateway: Gateway = request.app.state.gateway
    chat = routing_hints(request, to_count_request(await read_json(request)), caller.key_id)
    meter = Meter(request, caller, chat.model, False)
    try:
        await meter.admit()
    except TurnoutError as err:
        await meter.failed(err)
        raise
    count = await gateway.count_tokens(chat)
    headers = {
        "x-turnout-token-count": count.method,
        "x-turnout-deployment": header_text(count.deployment),
        **meter.headers,
    }
    return json_response({"input_tokens": count.input_tokens}, headers=headers)
