"""Fault injection across fake upstreams: while one healthy deployment remains the client never
sees a failure; the circuit breaker cools a failing deployment down and lets it back after a
probe; hedging keeps the faster; a context-length error moves to a larger window; the live
stats the performance strategy reads are measured by the gateway itself."""

from __future__ import annotations

from typing import Any

import pytest

from turnout import errors
from turnout.gateway import Gateway

from .conftest import make_config
from .fakes.openai_upstream import Fail, FakeOpenAI, Hang, Raw, Reply, Reset, Stall

HI = [{"role": "user", "content": "hi"}]


class Clock:
    """The breaker's clock, moved by hand (no sleeping in tests)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def ask(gw: Gateway, stream: bool, model: str = "chain", **fields: Any):
    if stream:
        s = await gw.stream(model=model, messages=HI, **fields)
        result = await s.collect()
        result.attempts, result.strategy = s.attempts, s.strategy
        return result
    return await gw.chat(model=model, messages=HI, **fields)


FAULTS = {
    "429-retry-after": lambda: Fail(429, "slow down", headers={"Retry-After": "1"}),
    "500": lambda: Fail(500, "boom"),
    "503": lambda: Fail(503, "overloaded"),
    "timeout": lambda: Hang(60),
    "connection-reset": lambda: Reset(),
    "malformed": lambda: Raw(b"data: {not json\n\n", content_type="text/event-stream"),
    "stalled-stream": lambda: Stall(60),
}
# The faults only a clock can tell from a slow answer. The route's timeouts bound both
# deployments' attempts, so the healthy one must answer within them too: 2 s is far beyond a
# loopback reply even on a loaded machine, and the fault (60 s) far beyond 2 s. Every other
# fault fails at once, and gets timeouts no load can reach.
SILENT = {"timeout", "stalled-stream"}
GIVE_UP = {"connect": 2, "first_token": 2, "total": 2}
NO_HURRY = {"connect": 30, "first_token": 60, "total": 60}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_no_client_visible_failure_while_a_healthy_deployment_remains(
    fake: FakeOpenAI, fake_url: str, fault: str, stream: bool
) -> None:
    config = make_config(fake_url, timeouts=GIVE_UP if fault in SILENT else NO_HURRY)
    gw = Gateway(config)
    try:
        fake.then(FAULTS[fault](), Reply(text="healthy"))
        result = await ask(gw, stream)
        assert result.text == "healthy"
        assert result.deployment == "backup:model-b" and result.attempts == 2
        assert gw.state.stats("primary:model-a").last_error is not None
    finally:
        await gw.aclose()


async def test_circuit_opens_after_allowed_fails_then_probe_closes_it(
    fake: FakeOpenAI, fake_url: str
) -> None:
    config = make_config(fake_url, health={"allowed_fails": 2, "window": 60, "cooldown": 30})
    gw = Gateway(config)
    clock = Clock()
    gw.state.clock = clock  # type: ignore[attr-defined]
    try:
        fake.then(Fail(500), Reply(), Fail(500), Reply())
        await ask(gw, False)
        await ask(gw, False)
        primary = gw.state.stats("primary:model-a")
        assert primary.circuit == "open"
        fake.reset()
        # while open, the primary is not even asked
        for _ in range(3):
            assert (await ask(gw, False)).deployment == "backup:model-b"
        assert [c["body"]["model"] for c in fake.calls] == ["model-b"] * 3
        # cooldown over: one probe goes to the primary; its failure reopens the circuit
        clock.now += 31
        fake.reset()
        fake.then(Fail(503), Reply())
        assert (await ask(gw, False)).deployment == "backup:model-b"
        assert [c["body"]["model"] for c in fake.calls] == ["model-a", "model-b"]
        assert primary.circuit == "open"
        # next cooldown over: the probe succeeds and the circuit closes
        clock.now += 31
        fake.reset()
        assert (await ask(gw, False)).deployment == "primary:model-a"
        assert primary.circuit == "closed"
        assert (await ask(gw, False)).deployment == "primary:model-a"
    finally:
        await gw.aclose()


async def test_failures_spread_over_more_than_the_window_do_not_open(
    fake: FakeOpenAI, fake_url: str
) -> None:
    config = make_config(fake_url, health={"allowed_fails": 2, "window": 10, "cooldown": 30})
    gw = Gateway(config)
    clock = Clock()
    gw.state.clock = clock  # type: ignore[attr-defined]
    try:
        fake.then(Fail(500), Reply())
        await ask(gw, False)
        clock.now += 11
        fake.then(Fail(500), Reply())
        await ask(gw, False)
        assert gw.state.stats("primary:model-a").circuit == "closed"
    finally:
        await gw.aclose()


async def test_rate_limit_cools_down_for_retry_after(fake: FakeOpenAI, fake_url: str) -> None:
    gw = Gateway(make_config(fake_url))
    clock = Clock()
    gw.state.clock = clock  # type: ignore[attr-defined]
    try:
        fake.then(Fail(429, "slow down", headers={"Retry-After": "20"}), Reply())
        assert (await ask(gw, False)).deployment == "backup:model-b"
        clock.now += 19
        assert (await ask(gw, False)).deployment == "backup:model-b"
        clock.now += 2
        assert (await ask(gw, False)).deployment == "primary:model-a"
    finally:
        await gw.aclose()


async def test_client_errors_do_not_count_against_health(fake: FakeOpenAI, fake_url: str) -> None:
    gw = Gateway(make_config(fake_url, health={"allowed_fails": 1}))
    try:
        fake.then(Fail(400, "bad temperature", type="invalid_request_error"))
        with pytest.raises(errors.BadRequestError):
            await ask(gw, False)
        assert gw.state.stats("primary:model-a").circuit == "closed"
    finally:
        await gw.aclose()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_hedging_keeps_the_faster(fake: FakeOpenAI, fake_url: str, stream: bool) -> None:
    routes = [
        {
            "name": "chain",
            "deployments": ["primary:model-a", "backup:model-b"],
            "hedge": {"after": 0.1},
        }
    ]
    gw = Gateway(make_config(fake_url, routes=routes))
    try:
        fake.then(Reply(text="slow", delay=2), Reply(text="fast"))
        result = await ask(gw, stream)
        assert result.text == "fast" and result.deployment == "backup:model-b"
        assert result.attempts == 2
        assert [c["body"]["model"] for c in fake.calls] == ["model-a", "model-b"]
        # the loser was cancelled: nothing left in flight
        assert gw.state.stats("primary:model-a").in_flight == 0
    finally:
        await gw.aclose()


async def test_hedging_does_not_start_a_second_when_the_first_is_quick(
    fake: FakeOpenAI, fake_url: str
) -> None:
    routes = [
        {
            "name": "chain",
            "deployments": ["primary:model-a", "backup:model-b"],
            "hedge": {"after": 2},
        }
    ]
    gw = Gateway(make_config(fake_url, routes=routes))
    try:
        result = await ask(gw, True)
        assert result.deployment == "primary:model-a" and result.attempts == 1
        assert len(fake.calls) == 1
    finally:
        await gw.aclose()


async def test_hedge_survives_the_first_failing(fake: FakeOpenAI, fake_url: str) -> None:
    routes = [
        {
            "name": "chain",
            "deployments": ["primary:model-a", "backup:model-b", "down:model-x"],
            "hedge": {"after": 0.05},
        }
    ]
    gw = Gateway(make_config(fake_url, routes=routes))
    try:
        fake.then(Fail(503), Reply(text="ok"))
        result = await ask(gw, False)
        assert result.text == "ok"
    finally:
        await gw.aclose()


CONTEXT_MODELS = [
    {"id": "primary:model-a", "context_window": 8000},
    {"id": "backup:model-b", "context_window": 4000},
    {"id": "down:model-x", "context_window": 4000},
    {"id": "primary:model-big", "context_window": 200000},
]
CONTEXT_ERROR = Fail(
    400, "This model's maximum context length is 8000 tokens", code="context_length_exceeded"
)


async def test_context_length_error_moves_to_a_larger_window(
    fake: FakeOpenAI, fake_url: str
) -> None:
    routes = [
        {
            "name": "chain",
            "deployments": ["primary:model-a", "backup:model-b", "primary:model-big"],
        }
    ]
    gw = Gateway(make_config(fake_url, routes=routes, models=CONTEXT_MODELS))
    try:
        fake.then(CONTEXT_ERROR, Reply(text="big enough"))
        result = await ask(gw, False)
        assert result.text == "big enough" and result.deployment == "primary:model-big"
        # the smaller backup was skipped, not tried
        assert [c["body"]["model"] for c in fake.calls] == ["model-a", "model-big"]
        assert gw.state.stats("primary:model-a").circuit == "closed"
    finally:
        await gw.aclose()


async def test_context_length_error_without_fallback_is_the_callers(
    fake: FakeOpenAI, fake_url: str
) -> None:
    routes = [
        {
            "name": "chain",
            "deployments": ["primary:model-a", "primary:model-big"],
            "context_fallback": False,
        }
    ]
    gw = Gateway(make_config(fake_url, routes=routes, models=CONTEXT_MODELS))
    try:
        fake.then(CONTEXT_ERROR)
        with pytest.raises(errors.ContextWindowExceededError):
            await ask(gw, False)
        assert len(fake.calls) == 1
    finally:
        await gw.aclose()


async def test_retries_per_error_class(fake: FakeOpenAI, fake_url: str) -> None:
    retry = {"retries": 2, "backoff_base": 0, "backoff_max": 0, "on": {"server": 0}}
    routes = [{"name": "solo", "deployments": ["primary:model-a"]}]
    gw = Gateway(make_config(fake_url, routes=routes, retry=retry, health={"enabled": False}))
    try:
        fake.then(Fail(500), Reply())
        with pytest.raises(errors.UpstreamServerError):
            await ask(gw, False, model="solo")  # 500: no retry
        assert len(fake.calls) == 1
        fake.reset()
        fake.then(Fail(503), Fail(503), Reply(text="third time"))
        assert (await ask(gw, False, model="solo")).text == "third time"  # 503: two retries
    finally:
        await gw.aclose()


async def test_performance_learns_from_the_gateways_own_measurements(
    fake: FakeOpenAI, fake_url: str
) -> None:
    routes = [
        {
            "name": "chain",
            "deployments": ["primary:model-a", "backup:model-b"],
            "strategy": "performance",
        }
    ]
    config = make_config(fake_url, routes=routes, routing={"cold_samples": 1, "explore": 0})
    gw = Gateway(config)
    try:
        fake.then(Reply(delay=0.3))  # the primary is slow, the backup is not
        first = await ask(gw, True)
        second = await ask(gw, True)
        assert {first.deployment, second.deployment} == {"primary:model-a", "backup:model-b"}
        slow, quick = gw.state.stats("primary:model-a"), gw.state.stats("backup:model-b")
        assert slow.ttft is not None and quick.ttft is not None and slow.ttft > quick.ttft
        assert slow.samples == quick.samples == 1
        for _ in range(3):
            result = await ask(gw, True)
            assert result.deployment == "backup:model-b" and result.strategy == "performance"
    finally:
        await gw.aclose()


async def test_in_flight_is_counted_while_a_stream_is_open(fake: FakeOpenAI, fake_url: str) -> None:
    gw = Gateway(make_config(fake_url))
    try:
        stream = await gw.stream(model="chain", messages=HI)
        assert gw.state.stats("primary:model-a").in_flight == 1
        await stream.collect()
        assert gw.state.stats("primary:model-a").in_flight == 0
        assert gw.state.stats("primary:model-a").latency is not None
    finally:
        await gw.aclose()


async def test_hundred_requests_with_thirty_percent_failing_all_succeed(
    fake: FakeOpenAI, fake_url: str
) -> None:
    """The issue's target in miniature (bench/routing.py runs 1,000 concurrently): one upstream
    fails 30 % of the time in every way it can, the other is healthy; no request fails."""
    import random

    rng = random.Random(4)
    kinds = [
        lambda: Fail(500, "boom"),
        lambda: Fail(503, "overloaded"),
        lambda: Fail(429, "slow down", headers={"Retry-After": "1"}),
        lambda: Reset(),
        lambda: Raw(b"data: {not json\n\n", content_type="text/event-stream"),
    ]
    config = make_config(fake_url, health={"enabled": False})  # every request tries primary
    gw = Gateway(config)
    try:
        failures = 0
        for i in range(100):
            if rng.random() < 0.3:
                failures += 1
                fake.then(rng.choice(kinds)(), Reply(text="backup"))
            else:
                fake.then(Reply(text="primary"))
            result = await ask(gw, stream=bool(i % 2))
            assert result.text in ("primary", "backup")
        assert 20 <= failures <= 40
        assert len(fake.calls) == 100 + failures and not fake.script
    finally:
        await gw.aclose()
