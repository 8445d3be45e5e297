"""Routing state shared through the machine's Redis: what one replica measures (latency and
TTFT averages, failures, cooldowns) reaches the others' local snapshots, so every replica's
strategies and circuit breakers act on the same figures. Two ``RedisState`` objects stand for
two replicas; ``sync()`` is what their background task runs every half second."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from turnout.config import HealthConfig
from turnout.routing.redis_state import RedisState

from .conftest import REDIS_URL


@pytest.fixture
async def pair(redis_prefix: str) -> AsyncIterator[tuple[RedisState, RedisState]]:
    health = HealthConfig(allowed_fails=3, window=60, cooldown=30)
    a = RedisState(REDIS_URL, redis_prefix, health, alpha=0.5)
    b = RedisState(REDIS_URL, redis_prefix, health, alpha=0.5)
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_latency_and_ttft_averages_are_shared(pair: tuple[RedisState, RedisState]) -> None:
    a, b = pair
    a.first_token("p:m", 0.2)
    a.end("p:m", latency=1.0)
    await a.sync()
    b.first_token("p:m", 0.4)
    b.end("p:m", latency=3.0)
    await b.sync()
    await a.sync()
    for state in (a, b):
        s = state.stats("p:m")
        assert s.ttft == pytest.approx(0.3) and s.latency == pytest.approx(2.0)
        assert s.samples == 2 and s.successes == 2


async def test_failures_on_both_replicas_open_one_circuit(
    pair: tuple[RedisState, RedisState],
) -> None:
    a, b = pair
    a.begin("p:m")
    a.end("p:m", failure="server")
    b.begin("p:m")
    b.end("p:m", failure="server")
    await a.sync()
    await b.sync()
    assert a.usable("p:m") and b.usable("p:m")  # two failures: under allowed_fails
    a.begin("p:m")
    a.end("p:m", failure="timeout")  # the third, counted in Redis across replicas
    await a.sync()
    await b.sync()
    for state in (a, b):
        assert not state.usable("p:m")
        remaining = state.stats("p:m").open_until - state.now()
        assert 25 < remaining <= 30
        assert state.stats("p:m").failures == 3


async def test_a_429_cools_every_replica_for_its_retry_after(
    pair: tuple[RedisState, RedisState],
) -> None:
    a, b = pair
    b.stats("p:m")  # b knows the deployment (it routes to it)
    a.begin("p:m")
    a.end("p:m", failure="rate_limit", retry_after=12)
    await a.sync()
    await b.sync()
    assert not b.usable("p:m")
    assert 10 < b.stats("p:m").open_until - b.now() <= 12
    assert b.stats("p:m").last_error == "rate_limit"
