"""W3C trace context in: with OpenTelemetry on, a request's ``traceparent`` (and
``tracestate``) becomes the parent of the gateway's request span. Added to the app only when
``otel.enabled``, so it costs nothing otherwise."""

from __future__ import annotations

from typing import Any

__all__ = ["TraceContextMiddleware"]


class TraceContextMiddleware:
    def __init__(self, app: Any) -> None:
        from opentelemetry import context, propagate

        self.app = app
        self._context = context
        self._propagate = propagate

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate")
        }
        if not carrier:
            await self.app(scope, receive, send)
            return
        token = self._context.attach(self._propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            self._context.detach(token)
