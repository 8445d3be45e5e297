"""``POST /v1/messages``: the Anthropic-compatible ingress. A thin handler: parse with
``anthropic_wire``, call the gateway (any backend the route picks), serialise; every error
leaves in Anthropic's error shape, a failure mid-stream as ``event: error``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

import orjson
from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..errors import BadRequestError, TurnoutError
from ..gateway import Gateway
from ..metrics import Metrics
from ..redaction import Redactor
from ..streaming import ChatStream
from .anthropic_wire import (
    MessageStreamWriter,
    error_body,
    error_frame,
    error_status,
    message_body,
    to_chat_request,
)
from .app import _observe, _read_body, _routing_hints, _served_headers, error_headers
from .metering import Meter, authorize
from .openai_wire import format_usd

__all__ = ["anthropic_routes", "plain_error"]

log = logging.getLogger("turnout.server")


def _error(err: TurnoutError, redact: Redactor) -> Response:
    return Response(
        orjson.dumps(error_body(err, redact)),
        status_code=error_status(err),
        media_type="application/json",
        headers=error_headers(err),
    )


async def messages(request: Request) -> Response:
    try:
        return await _messages(request)
    except TurnoutError as err:
        if err.status_code >= 500:
            log.warning("POST /v1/messages -> %d: %s", err.status_code, err)
        request.app.state.metrics.observe_error(err)
        return _error(err, request.app.state.gateway.redactor)
    except ClientDisconnect:
        raise  # nobody to answer: the app's handler for it keeps it out of the error log
    except Exception:
        log.exception("unexpected error on POST /v1/messages")
        return plain_error(500, "api_error", "internal error in the gateway")


def plain_error(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An Anthropic-shaped error for what never reached the handler (404, 405)."""
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


async def _messages(request: Request) -> Response:
    # The same key check and metering as the OpenAI route: ``authorize`` reads ``x-api-key``
    # (classic SDKs, curl) and ``Authorization: Bearer`` (recent SDKs); any
    # ``anthropic-version`` is accepted.
    key = await authorize(request)
    gateway: Gateway = request.app.state.gateway
    raw = await _read_body(request, request.app.state.max_body)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    chat = _routing_hints(request, to_chat_request(obj), key.id if key is not None else None)
    meter = Meter(request, key, chat.model, bool(chat.stream))
    try:
        await meter.admit()
        if chat.stream:
            stream = await gateway.stream(chat)
        else:
            result = await gateway.chat(chat)
    except TurnoutError as err:
        await meter.failed(err)
        raise
    if chat.stream:
        return StreamingResponse(
            _events(stream, chat.model, meter, request.app.state),
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
        message_body(result, chat.model),
        media_type="application/json",
        headers={
            **_served_headers(result),
            **meter.headers,
        },
    )


async def _events(
    stream: ChatStream, model: str, meter: Meter, state: State
) -> AsyncIterator[bytes]:
    metrics: Metrics = state.metrics
    writer = MessageStreamWriter(stream.id, model)
    failure: TurnoutError | None = None
    try:
        yield writer.start()
        async for event in stream:
            frame = writer.event(event)
            if frame:
                yield frame
        cost = stream.cost
        _observe(metrics, stream)
        if cost is not None:
            # Known only now, after the headers: an SSE comment (clients skip it) carries it.
            yield b": x-turnout-cost-usd=" + format_usd(cost).encode() + b"\n\n"
        yield writer.finish(stream.usage)
    except TurnoutError as err:
        # The status went out with the first byte: report in-band, as Anthropic does.
        failure = err
        log.warning("stream from %s failed mid-way: %s", stream.deployment, err)
        metrics.observe_error(err)
        yield error_frame(err, state.gateway.redactor)
    finally:
        await stream.aclose()
        meter.stream_closed(stream, stream.cost, failure)


def anthropic_routes() -> list[Route]:
    return [Route("/v1/messages", messages, methods=["POST"])]
