"""The two limit backends behave the same: in process (``LocalLimits``) and shared through
the machine's Redis (``RedisLimits``, Lua scripts), including under concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from turnout.accounting.alerts import crossed
from turnout.accounting.keys import GatewayKey, KeySpec, hash_secret, new_key
from turnout.accounting.limits import LocalLimits, check
from turnout.accounting.periods import period_name, period_reset
from turnout.accounting.redis_limits import RedisLimits
from turnout.errors import AuthenticationError, BudgetExceededError, RateLimitError

from .conftest import REDIS_URL


def key(**kw: object) -> GatewayKey:
    row, _ = new_key(KeySpec.model_validate({"name": "k", **kw}))
    return GatewayKey.from_row(row)


@pytest.fixture(params=["local", "redis"])
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    if request.param == "local":
        backend: object = LocalLimits()
    else:
        backend = RedisLimits(REDIS_URL, request.getfixturevalue("redis_prefix"))
    yield backend
    await backend.aclose()  # type: ignore[attr-defined]


async def test_rpm_window_counts_and_resets(limits) -> None:
    k = key(rpm=3)
    now = time.time()
    verdicts = [await limits.admit(k, now) for _ in range(4)]
    assert [v.outcome for v in verdicts] == ["ok", "ok", "ok", "rpm"]
    assert [v.requests for v in verdicts] == [1, 2, 3, 4]
    assert 0 < verdicts[-1].requests_reset <= 60
    headers = check(k, verdicts[1], now)
    assert headers["x-ratelimit-remaining-requests"] == "1"
    with pytest.raises(RateLimitError) as info:
        check(k, verdicts[-1], now)
    assert info.value.headers and info.value.headers["x-ratelimit-limit-requests"] == "3"


async def test_concurrent_admissions_never_exceed_the_limit(limits) -> None:
    k = key(rpm=25)
    now = time.time()
    verdicts = await asyncio.gather(*(limits.admit(k, now) for _ in range(100)))
    assert sum(v.outcome == "ok" for v in verdicts) == 25


async def test_tokens_and_spend_are_settled_after_the_request(limits) -> None:
    k = key(tpm=100, budget={"daily": 1.0, "total": 2.0})
    now = time.time()
    assert (await limits.admit(k, now)).outcome == "ok"
    spend = await limits.settle(k, 60, 0.6, now)
    assert spend["daily"] == pytest.approx((0.0, 0.6))
    assert (await limits.admit(k, now)).tokens == 60
    spend = await limits.settle(k, 60, 0.6, now)
    assert spend["daily"] == pytest.approx((0.6, 1.2))
    refused = await limits.admit(k, now)
    assert refused.outcome == "budget" and refused.budget_kind == "daily"
    with pytest.raises(BudgetExceededError) as info:
        check(k, refused, now)
    assert info.value.headers["x-turnout-budget-reset"] == str(int(period_reset("daily", now)))
    assert (await limits.spend(k, now)) == pytest.approx(
        {"daily": 1.2, "monthly": 1.2, "total": 1.2}
    )


async def test_token_window_refuses_when_full(limits) -> None:
    k = key(tpm=50)
    now = time.time()
    await limits.admit(k, now)
    await limits.settle(k, 50, 0.0, now)
    assert (await limits.admit(k, now)).outcome == "tpm"


async def test_revocation_and_seeded_spend(limits) -> None:
    k = key(budget={"monthly": 5.0})
    now = time.time()
    await limits.seed(k.id, {period_name("monthly", now): 5.0})
    assert (await limits.admit(k, now)).outcome == "budget"
    other = key()
    await limits.revoke(other.id)
    verdict = await limits.admit(other, now)
    with pytest.raises(AuthenticationError):
        check(other, verdict, now)


def test_thresholds_cross_once() -> None:
    assert crossed([0.5, 0.8, 1.0], 10.0, 4.0, 8.5) == [0.5, 0.8]
    assert crossed([0.5, 0.8, 1.0], 10.0, 8.5, 9.0) == []
    assert crossed([0.5, 0.8, 1.0], 10.0, 9.0, 10.0) == [1.0]


def test_secrets_are_random_and_only_hashed() -> None:
    row_a, secret_a = new_key(KeySpec())
    row_b, secret_b = new_key(KeySpec())
    assert secret_a != secret_b and row_a["id"] != row_b["id"]
    assert row_a["secret_hash"] == hash_secret(secret_a) and secret_a not in row_a.values()
    assert row_a["last4"] == secret_a[-4:]
