"""``POST /v1/messages``: the Anthropic-compatible ingress. A thin handler: parse with
``anthropic_wire``, call the gateway (any backend the route picks), serialise; every error
leaves in Anthropic's error shape, a failure mid-stream as ``event: error``."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..errors import AuthenticationError, BadRequestError, TurnoutError
from ..gateway import Gateway
from ..streaming import ChatStream
from .anthropic_wire import (
    MessageStreamWriter,
    error_body,
    error_frame,
    error_status,
    message_body,
    to_chat_request,
)
from .app import _read_body, _served_headers

__all__ = ["anthropic_routes"]

log = logging.getLogger("turnout.server")


def _authorize(request: Request) -> None:
    """The master key, sent the way Anthropic clients send keys: ``x-api-key`` (classic SDKs,
    curl) or ``Authorization: Bearer`` (recent SDKs). Any ``anthropic-version`` is accepted."""
    key = request.app.state.master_key
    if key is None:
        return
    token = request.headers.get("x-api-key", "").strip()
    if not token:
        scheme, _, rest = request.headers.get("authorization", "").partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else ""
    if not token:
        raise AuthenticationError("missing API key: send 'x-api-key: <key>'")
    if not hmac.compare_digest(token.encode(), key.encode()):
        raise AuthenticationError("invalid API key")


def _error(err: TurnoutError) -> Response:
    headers = {}
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return Response(
        orjson.dumps(error_body(err)),
        status_code=error_status(err),
        media_type="application/json",
        headers=headers,
    )


async def messages(request: Request) -> Response:
    try:
        if request.method != "POST":
            return _plain(405, "invalid_request_error", f"{request.method} /v1/messages: use POST")
        return await _messages(request)
    except TurnoutError as err:
        if err.status_code >= 500:
            log.warning("POST /v1/messages -> %d: %s", err.status_code, err)
        return _error(err)
    except Exception:
        log.exception("unexpected error on POST /v1/messages")
        return _plain(500, "api_error", "internal error in the gateway")


def _plain(status: int, kind: str, message: str) -> Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _messages(request: Request) -> Response:
    _authorize(request)
    gateway: Gateway = request.app.state.gateway
    raw = await _read_body(request, request.app.state.max_body)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    chat = to_chat_request(obj)
    if chat.stream:
        stream = await gateway.stream(chat)
        return StreamingResponse(
            _events(stream, chat.model),
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **_served_headers(
                    stream.provider, stream.model, stream.deployment, stream.attempts
                ),
            },
        )
    result = await gateway.chat(chat)
    return Response(
        message_body(result, chat.model),
        media_type="application/json",
        headers=_served_headers(result.provider, result.model, result.deployment, result.attempts),
    )


async def _events(stream: ChatStream, model: str) -> AsyncIterator[bytes]:
    writer = MessageStreamWriter(stream.id, model)
    try:
        yield writer.start()
        async for event in stream:
            frame = writer.event(event)
            if frame:
                yield frame
        yield writer.finish(stream.usage)
    except TurnoutError as err:
        # The status went out with the first byte: report in-band, as Anthropic does.
        log.warning("stream from %s failed mid-way: %s", stream.deployment, err)
        yield error_frame(err)
    finally:
        await stream.aclose()


def anthropic_routes() -> list[Route]:
    return [Route("/v1/messages", messages, methods=["POST", "GET", "PUT", "DELETE", "PATCH"])]
