"""The benchmark harness's own parts: the mock upstream is a faithful OpenAI endpoint (the
official SDK parses it, the spec validates it), the client counts what arrives, and the
report computes ratios and target checks from the figures. Nothing here is timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import openai
import orjson
import pytest
from bench import mock_upstream, report
from bench.client import Conn, Target, percentile

from .conftest import openai_validator
from .fakes.servers import free_port


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(mock_upstream.start("127.0.0.1", port))
        ready.set()
        loop.run_forever()
        mock_upstream.close_connections()
        holder["server"].close()
        loop.run_until_complete(holder["server"].wait_closed())
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key="sk-mock", max_retries=0)


HI = [{"role": "user", "content": "hi"}]


def test_mock_completion_is_valid_and_about_560_bytes() -> None:
    body = orjson.loads(mock_upstream.CHAT_COMPLETION)
    errors = list(openai_validator("CreateChatCompletionResponse").iter_errors(body))
    assert errors == []
    assert 540 <= len(mock_upstream.CHAT_COMPLETION) <= 580


def test_sdk_reads_the_mock_completion(mock_url: str) -> None:
    out = _client(mock_url + "/v1").chat.completions.create(model="m", messages=HI)
    assert out.choices[0].message.content.startswith("This is a fixed answer")
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.total_tokens == 63


def test_sdk_reads_the_mock_stream(mock_url: str) -> None:
    chunks = list(
        _client(mock_url + "/v1").chat.completions.create(model="m", messages=HI, stream=True)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    words = [c.choices[0].delta.content for c in chunks[1:] if c.choices[0].delta.content]
    assert len(words) == 8
    assert "".join(words) == "The quick brown fox jumps over the dog"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == 8
    validator = openai_validator("CreateChatCompletionStreamResponse")
    for chunk in chunks:
        assert list(validator.iter_errors(chunk.model_dump(exclude_unset=True))) == []


def test_stream_options_in_the_path(mock_url: str) -> None:
    stream = _client(mock_url + "/n3/p1/v1").chat.completions.create(
        model="m", messages=HI, stream=True
    )
    words = [c.choices[0].delta.content for c in stream if c.choices[0].delta.content]
    assert words == ["The", " quick", " brown"]


def test_unknown_path_is_an_openai_404(mock_url: str) -> None:
    with pytest.raises(openai.NotFoundError):
        _client(mock_url + "/v1").completions.create(model="m", prompt="x")


def test_options_from_path() -> None:
    opts = mock_upstream.options_from_path("/n64/p20/d5/v1/chat/completions")
    assert opts is not None
    assert (opts.chunks, opts.pace, opts.delay) == (64, 0.02, 0.005)
    assert mock_upstream.options_from_path("/v1/embeddings") is None


async def test_client_counts_content_events_and_keeps_the_connection(mock_url: str) -> None:
    port = int(mock_url.rsplit(":", 1)[1])
    target = Target("direct", "127.0.0.1", port, path="/n5/v1/chat/completions")
    conn = await Conn.open(target.host, target.port)
    try:
        streamed = await conn.send(target.request(stream=True))
        assert streamed.status == 200
        assert len(streamed.events) == 5  # the role chunk has no content: not counted
        assert len(streamed.gaps) == 4
        whole = await conn.send(target.request(), keep_body=True)  # same connection
        assert whole.status == 200
        assert orjson.loads(whole.body)["usage"]["total_tokens"] == 63
    finally:
        conn.close()


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def _results(turnout_rps: float, litellm_rps: float) -> dict[str, object]:
    def gw(rps: float, rss: float) -> dict[str, object]:
        return {
            "ready_s": 0.5,
            "idle_rss_mb": rss,
            "peak_rss_mb": rss + 5,
            "throughput": {"max_rps": rps, "at_rate": {"p50_ms": 2.0, "p99_ms": 9.0}},
            "streams": {"held": 100},
        }

    return {
        "machine": {
            "date_utc": "2026-11-22T16:50:00Z",
            "nproc": 2,
            "cpu": "test cpu",
            "loadavg_start": [1.0, 1.0, 1.0],
            "loadavg_end": [1.5, 1.0, 1.0],
            "commit": "abc1234",
            "dirty": False,
        },
        "latency": {
            "turnout": {"added_p50_ms": 0.4, "added_p99_ms": 1.0},
            "litellm": {"added_p50_ms": 12.0, "added_p99_ms": 30.0},
        },
        "import_ms": {"turnout": 10.0, "litellm": 2000.0},
        "gateways": {"turnout-w1": gw(turnout_rps, 50.0), "litellm-w1": gw(litellm_rps, 300.0)},
    }


def test_report_ratios_and_checks() -> None:
    summary = report.summarise(_results(2500.0, 100.0))
    assert summary["ratios"]["added_p50_ms"] == pytest.approx(30.0)
    assert summary["ratios"]["max_rps_w1"] == pytest.approx(25.0)
    assert summary["checks"]["added_p50_ms"]["met"] is True
    assert summary["checks"]["ratio:max_rps_w1"]["met"] is True
    assert "max_rps_w2" not in summary["checks"]  # not measured: no verdict


def test_report_flags_a_missed_target() -> None:
    summary = report.summarise(_results(1500.0, 400.0))
    assert summary["checks"]["max_rps_w1"]["met"] is False
    assert summary["checks"]["ratio:max_rps_w1"]["met"] is False
    text = report.table(_results(1500.0, 400.0))
    assert "load average 1.00 at start" in text
    line = next(x for x in text.splitlines() if x.startswith("throughput, 1 worker"))
    assert "1,500" in line and "NO/NO" in line


def test_report_chart_is_a_png(tmp_path) -> None:
    path = report.chart(_results(2500.0, 100.0), tmp_path / "chart.png")
    assert path is not None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sdk_reads_the_mock_embeddings(mock_url: str) -> None:
    client = openai.OpenAI(base_url=mock_url + "/v1", api_key="x", max_retries=0)
    try:
        out = client.embeddings.create(model="mock", input="hi", encoding_format="float")
    finally:
        client.close()
    assert len(out.data) == 1 and len(out.data[0].embedding) == 768
    assert out.usage.prompt_tokens == 8


async def test_client_counts_responses_deltas_through_the_gateway(mock_url: str) -> None:
    """The Responses-stream row: the gateway turns the mock's five chunks into five
    ``response.output_text.delta`` events, and the client counts exactly those."""
    from turnout.config import Config
    from turnout.gateway import Gateway
    from turnout.server import create_app

    from .fakes.servers import UvicornThread

    config = Config.model_validate(
        {
            "providers": {"mock": {"host": "custom", "base_url": mock_url + "/n5/v1"}},
            "routes": [{"name": "mock", "deployments": ["mock:mock-model"]}],
            "server": {"preload_local": False},
            "database_url": "none",
        }
    )
    server = UvicornThread(create_app(Gateway(config))).start()
    try:
        port = int(server.url.rsplit(":", 1)[1])
        target = Target("turnout", "127.0.0.1", port, path="/v1/responses")
        conn = await Conn.open(target.host, target.port)
        try:
            streamed = await conn.send(target.request(stream=True))
            assert streamed.status == 200
            assert len(streamed.events) == 5
            whole = await conn.send(target.request(), keep_body=True)
            assert orjson.loads(whole.body)["object"] == "response"
        finally:
            conn.close()
    finally:
        server.stop()
