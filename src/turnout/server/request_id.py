"""A request id on every response: ``x-request-id``, the client's own when it sends a
sensible one (1-128 characters of ``A-Za-z0-9._:/+=-``), else a new one. The same id is in
the request log's ``request_id`` column and in every log record written while the request
is served (``log_format: json`` prints it; see ``logs.py``)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from ..logs import REQUEST_ID

__all__ = ["RequestIdMiddleware", "current_request_id"]

_HEADER = b"x-request-id"
_SENSIBLE = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


def current_request_id() -> str | None:
    return REQUEST_ID.get()


class RequestIdMiddleware:
    """Pure ASGI (no per-request task): sets ``REQUEST_ID`` for the request and adds the
    header to its response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == _HEADER), None)
        if raw is None or not _SENSIBLE.fullmatch(raw):
            raw = uuid.uuid4().hex.encode()
        header = (_HEADER, raw)

        async def with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(raw.decode())
        try:
            await self.app(scope, receive, with_id)
        finally:
            REQUEST_ID.reset(token)
