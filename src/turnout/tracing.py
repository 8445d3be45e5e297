"""OpenTelemetry traces (the ``otel`` extra): one span per request and one per attempt under
it, with the GenAI semantic conventions, exported over OTLP (HTTP/protobuf).

Off by default, and then nothing of OpenTelemetry is imported and the hot path pays one
``is None`` test per request and per attempt. On, the request span continues the caller's
``traceparent`` (the server attaches it, see ``server/tracing.py``) and carries the
``x-request-id``. Prompts and answers are recorded only with ``otel.capture_content``.

    chat <route>                      (INTERNAL) gen_ai.operation.name, gen_ai.request.model,
    ├── chat <upstream model>         (CLIENT)   gen_ai.provider.name, gen_ai.response.model,
    └── chat <upstream model>         (CLIENT)   gen_ai.usage.*, time to first chunk, error.type
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import orjson

from .errors import MissingDependencyError, TurnoutError
from .logs import REQUEST_ID

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

    from .config import OtelConfig
    from .deployment import Deployment
    from .streaming import ChatStream
    from .types import ChatRequest, ChatResult

__all__ = ["Tracing"]

_OPERATION = "chat"


def _error_type(error: BaseException) -> str:
    return type(error).__name__


class Tracing:
    """A tracer provider of this gateway's own (never the process-global one), its exporter
    and the span helpers the gateway and the executor call."""

    def __init__(self, config: OtelConfig, exporter: SpanExporter | None = None) -> None:
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError:
            raise MissingDependencyError(
                "otel.enabled needs the otel extra: pip install 'turnout[otel]'"
            ) from None
        from opentelemetry import trace

        self._trace = trace
        self.capture_content = config.capture_content
        name = config.service_name or os.environ.get("OTEL_SERVICE_NAME") or "turnout"
        resource = Resource.create({"service.name": name})  # + OTEL_RESOURCE_ATTRIBUTES
        self.provider = TracerProvider(resource=resource)
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # Unset endpoint and headers: the exporter reads OTEL_EXPORTER_OTLP_* itself.
            exporter = OTLPSpanExporter(endpoint=config.endpoint, headers=config.headers or None)
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        else:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("turnout")

    # --- the request span --------------------------------------------------------------------

    def start_request(self, route: str, request: ChatRequest) -> Span:
        span = self.tracer.start_span(
            f"{_OPERATION} {route}",
            attributes={
                "gen_ai.operation.name": _OPERATION,
                "gen_ai.request.model": route,
                "turnout.route": route,
            },
        )
        request_id = REQUEST_ID.get()
        if request_id is not None:
            span.set_attribute("turnout.request_id", request_id)
        if request.stream:
            span.set_attribute("turnout.stream", True)
        if self.capture_content:
            span.set_attribute(
                "gen_ai.input.messages",
                orjson.dumps([m.model_dump(exclude_none=True) for m in request.messages]).decode(),
            )
        return span

    @contextmanager
    def current(self, span: Span) -> Iterator[None]:
        """Make ``span`` the parent of the attempt spans started inside."""
        with self._trace.use_span(span, end_on_exit=False, record_exception=False):
            yield

    def end_request(
        self, span: Span, served: ChatResult | ChatStream | None, error: BaseException | None
    ) -> None:
        if served is not None:
            span.set_attributes(
                {
                    "gen_ai.provider.name": served.provider,
                    "gen_ai.response.model": served.model,
                    "gen_ai.usage.input_tokens": served.usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": served.usage.completion_tokens,
                    "turnout.deployment": served.deployment,
                    "turnout.attempts": served.attempts,
                    "turnout.strategy": served.strategy or "priority",
                }
            )
            if served.time_to_first_token is not None:
                span.set_attribute(
                    "gen_ai.response.time_to_first_chunk", served.time_to_first_token
                )
        self._finish(span, error)

    # --- attempt spans ------------------------------------------------------------------------

    def start_attempt(self, d: Deployment, request: ChatRequest) -> Span:
        return self.tracer.start_span(
            f"{_OPERATION} {d.model}",
            kind=self._trace.SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": _OPERATION,
                "gen_ai.provider.name": d.provider,
                "gen_ai.request.model": d.model,
                "turnout.deployment": d.id,
            },
        )

    def end_attempt(
        self,
        span: Span,
        served: ChatResult | ChatStream | None,
        error: BaseException | None,
        ttft: float | None = None,
    ) -> None:
        if served is not None:
            span.set_attributes(
                {
                    "gen_ai.response.model": served.model,
                    "gen_ai.usage.input_tokens": served.usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": served.usage.completion_tokens,
                }
            )
            if served.id:
                span.set_attribute("gen_ai.response.id", served.id)
            if ttft is not None:
                span.set_attribute("gen_ai.response.time_to_first_chunk", ttft)
            text = getattr(served, "text", None)
            if self.capture_content and isinstance(text, str):
                output = [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]
                span.set_attribute("gen_ai.output.messages", orjson.dumps(output).decode())
        self._finish(span, error)

    def _finish(self, span: Span, error: BaseException | None) -> None:
        if error is not None:
            span.set_attribute("error.type", _error_type(error))
            if isinstance(error, TurnoutError):
                span.set_attribute("http.response.status_code", error.status_code)
            # The class only: an upstream's message may quote the prompt.
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, _error_type(error)))
        span.end()

    def shutdown(self) -> None:
        """Export what is buffered, then stop (at the server's shutdown)."""
        self.provider.shutdown()
