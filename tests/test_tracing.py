"""OpenTelemetry on a real server: spans and their GenAI attributes checked with the SDK's
in-memory exporter (failover is two attempt spans under one request span; a ``traceparent``
is continued; prompts recorded only when asked), and OTLP/HTTP export to a small receiver on
loopback, decoded with OpenTelemetry's own protobuf classes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from turnout.config import OtelConfig
from turnout.gateway import Gateway
from turnout.server import create_app
from turnout.tracing import Tracing

from .conftest import make_config
from .fakes.openai_upstream import Fail, FakeOpenAI, Reply
from .fakes.servers import AiohttpThread, UvicornThread

HI = [{"role": "user", "content": "a secret prompt"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _serve(fake_url: str, exporter: Any, **otel: Any) -> tuple[UvicornThread, Gateway]:
    config = make_config(fake_url, otel={"enabled": True, **otel})
    gateway = Gateway(config, tracing=Tracing(config.otel, exporter=exporter))
    return UvicornThread(create_app(gateway)).start(), gateway


@pytest.fixture
def spans(fake_url: str) -> Iterator[tuple[str, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    server, _ = _serve(fake_url, exporter)
    yield server.url, exporter
    server.stop()


def test_failover_is_two_attempt_spans_under_one_request_span(
    spans: tuple[str, InMemorySpanExporter], fake: FakeOpenAI
) -> None:
    url, exporter = spans
    fake.then(Fail(500, "boom"), Reply(prompt_tokens=13, completion_tokens=5))
    headers = {
        "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
        "x-request-id": "trace-me-1",
    }
    r = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "chain", "messages": HI},
        headers=headers,
    )
    assert r.status_code == 200 and r.headers["x-turnout-attempts"] == "2"
    finished = exporter.get_finished_spans()
    (request,) = [s for s in finished if s.name == "chat chain"]
    attempts = sorted((s for s in finished if s is not request), key=lambda s: s.start_time)
    assert [s.name for s in attempts] == ["chat model-a", "chat model-b"]

    # One trace, continued from the caller's traceparent.
    assert {f"{s.context.trace_id:032x}" for s in finished} == {TRACE_ID}
    assert request.parent is not None and f"{request.parent.span_id:016x}" == PARENT_ID
    assert all(
        a.parent is not None and a.parent.span_id == request.context.span_id for a in attempts
    )

    first, second = (a.attributes for a in attempts)
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == "primary"
    assert first["gen_ai.request.model"] == "model-a"
    assert first["error.type"] == "UpstreamServerError"
    assert second["gen_ai.provider.name"] == "backup"
    assert second["gen_ai.response.model"] == "model-b"
    assert second["gen_ai.usage.input_tokens"] == 13
    assert second["gen_ai.usage.output_tokens"] == 5
    assert "error.type" not in second
    top = request.attributes
    assert top["gen_ai.request.model"] == "chain"
    assert top["turnout.attempts"] == 2 and top["turnout.request_id"] == "trace-me-1"
    # Prompts and answers are not recorded unless asked for.
    for s in finished:
        assert not any(k.startswith(("gen_ai.input", "gen_ai.output")) for k in s.attributes)
        assert "secret prompt" not in str(dict(s.attributes))


def test_stream_spans_end_with_the_stream(
    spans: tuple[str, InMemorySpanExporter], fake: FakeOpenAI
) -> None:
    url, exporter = spans
    fake.then(Reply(text="one two three", completion_tokens=3))
    body = {"model": "single", "messages": HI, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        text = r.read().decode()
    assert text.rstrip().endswith("[DONE]")
    finished = exporter.get_finished_spans()
    (request,) = [s for s in finished if s.name == "chat single"]
    (attempt,) = [s for s in finished if s.name == "chat model-a"]
    assert attempt.attributes["gen_ai.usage.output_tokens"] == 3
    assert attempt.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert request.attributes["turnout.stream"] is True
    assert request.end_time >= attempt.end_time


def test_every_attempt_failing_marks_the_request_span(
    spans: tuple[str, InMemorySpanExporter], fake: FakeOpenAI
) -> None:
    url, exporter = spans
    fake.then(Fail(500, "down"), Fail(500, "down"))  # the try and its retry
    r = httpx.post(url + "/v1/chat/completions", json={"model": "single", "messages": HI})
    assert r.status_code == 502
    (request,) = [s for s in exporter.get_finished_spans() if s.name == "chat single"]
    assert request.attributes["error.type"] == "AllAttemptsFailedError"
    assert request.status.status_code.name == "ERROR"
    attempts = [s for s in exporter.get_finished_spans() if s.name == "chat model-a"]
    assert [a.attributes["error.type"] for a in attempts] == ["UpstreamServerError"] * 2


def test_content_only_when_opted_in(fake_url: str, fake: FakeOpenAI) -> None:
    exporter = InMemorySpanExporter()
    server, _ = _serve(fake_url, exporter, capture_content=True)
    try:
        fake.then(Reply(text="the answer"))
        httpx.post(server.url + "/v1/chat/completions", json={"model": "single", "messages": HI})
    finally:
        server.stop()
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.name == "chat single"]
    (attempt,) = [s for s in spans if s.name == "chat model-a"]
    assert "a secret prompt" in request.attributes["gen_ai.input.messages"]
    assert "the answer" in attempt.attributes["gen_ai.output.messages"]


def test_otlp_export_to_a_receiver_on_loopback(fake_url: str, fake: FakeOpenAI) -> None:
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: web.Request) -> web.Response:
        assert request.headers["content-type"] == "application/x-protobuf"
        assert request.headers["x-collector-key"] == "k-123"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    receiver = AiohttpThread(app).start()
    config = OtelConfig(
        enabled=True,
        endpoint=receiver.url + "/v1/traces",
        headers={"x-collector-key": "k-123"},
        service_name="turnout-test",
    )
    gateway = Gateway(make_config(fake_url, otel=config.model_dump()))
    server = UvicornThread(create_app(gateway)).start()
    try:
        fake.then(Reply())
        r = httpx.post(
            server.url + "/v1/chat/completions", json={"model": "single", "messages": HI}
        )
        assert r.status_code == 200
    finally:
        server.stop()  # the server's shutdown exports what the batch processor holds
        receiver.stop()
    spans = [
        (span.name, resource.resource)
        for message in received
        for resource in message.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert sorted(name for name, _ in spans) == ["chat model-a", "chat single"]
    service = {
        a.key: a.value.string_value for a in spans[0][1].attributes if a.key == "service.name"
    }
    assert service == {"service.name": "turnout-test"}


def test_off_means_no_tracing_objects(fake_url: str) -> None:
    gateway = Gateway(make_config(fake_url))
    assert gateway.tracing is None and gateway.executor.tracing is None
    app = create_app(gateway)
    assert "TraceContextMiddleware" not in {m.cls.__name__ for m in app.user_middleware}
