"""Routing v0: a route is an ordered list; retryable failures fail over to the next
deployment, streams too while nothing has reached the client; retries back off and honour
Retry-After; when everything fails, one error names every attempt."""

from __future__ import annotations

import pytest

from turnout import errors
from turnout.gateway import Gateway
from turnout.routing import Executor

from .conftest import make_config
from .fakes.openai_upstream import Fail, FakeOpenAI, Hang, Reply

HI = [{"role": "user", "content": "hi"}]


def chain(*deployments: str) -> list[dict]:
    return [{"name": "chain", "deployments": list(deployments)}]


class Sleeps(list):
    """Records backoff sleeps instead of waiting (timing lives in benchmarks, not tests)."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def gateway(self, config) -> Gateway:
        gw = Gateway(config)
        gw.executor = Executor(gw.adapters, sleep=self)
        return gw


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


async def run(gw: Gateway, stream: bool):
    try:
        if stream:
            s = await gw.stream(model="chain", messages=HI)
            result = await s.collect()
            result.attempts = s.attempts
            return result
        return await gw.chat(model="chain", messages=HI)
    finally:
        await gw.aclose()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_503_fails_over_to_the_next(fake: FakeOpenAI, fake_url: str, stream: bool) -> None:
    fake.then(Fail(503, "overloaded"), Reply(text="from backup"))
    result = await run(Gateway(make_config(fake_url)), stream)
    assert result.text == "from backup"
    assert result.deployment == "backup:model-b"
    assert result.attempts == 2
    assert [c["body"]["model"] for c in fake.calls] == ["model-a", "model-b"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_refused_connection_fails_over(fake: FakeOpenAI, fake_url: str, stream: bool) -> None:
    config = make_config(fake_url, routes=chain("down:model-x", "backup:model-b"))
    result = await run(Gateway(config), stream)
    assert result.deployment == "backup:model-b" and result.attempts == 2


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_timeout_fails_over(fake: FakeOpenAI, fake_url: str, stream: bool) -> None:
    # total (json) or first-token (stream) timeout of 0.3 s; the first deployment hangs
    config = make_config(
        fake_url, timeouts={"connect": 1, "first_token": 0.3, "total": 0.3 if not stream else 5}
    )
    fake.then(Hang(3), Reply(text="in time"))
    result = await run(Gateway(config), stream)
    assert result.text == "in time" and result.attempts == 2


async def test_stream_that_stalls_before_first_token_fails_over(
    fake: FakeOpenAI, fake_url: str
) -> None:
    config = make_config(fake_url, timeouts={"connect": 1, "first_token": 0.3, "total": 5})
    fake.then(Reply(delay=2), Reply(text="quick"))
    result = await run(Gateway(config), True)
    assert result.text == "quick"


async def test_client_errors_do_not_fail_over(fake: FakeOpenAI, fake_url: str) -> None:
    fake.then(Fail(400, "temperature is out of range", type="invalid_request_error"))
    with pytest.raises(errors.BadRequestError):
        await run(Gateway(make_config(fake_url)), False)
    assert len(fake.calls) == 1


async def test_retry_rounds_back_off_and_honour_retry_after(
    fake: FakeOpenAI, fake_url: str, sleeps: Sleeps
) -> None:
    config = make_config(fake_url, retry={"retries": 2, "backoff_base": 0.01, "backoff_max": 1})
    fake.then(
        Fail(429, "slow", headers={"Retry-After": "0.5"}),
        Fail(500, "boom"),
        Fail(502, "again"),
        Fail(503, "still"),
        Reply(text="third round"),
    )
    result = await run(sleeps.gateway(config), False)
    assert result.text == "third round"
    assert result.attempts == 5
    assert sleeps[0] == 0.5  # the upstream's Retry-After beats a shorter backoff
    assert 0.01 <= sleeps[1] <= 0.02  # second round: base * 2, with jitter in its upper half


async def test_retry_after_longer_than_allowed_is_not_waited_for(
    fake: FakeOpenAI, fake_url: str, sleeps: Sleeps
) -> None:
    config = make_config(
        fake_url, routes=chain("primary:model-a"), retry={"retries": 3, "max_retry_after": 5}
    )
    fake.then(Fail(429, "come back in an hour", headers={"Retry-After": "3600"}))
    with pytest.raises(errors.RateLimitError) as info:
        await run(sleeps.gateway(config), False)
    assert info.value.retry_after == 3600 and sleeps == [] and len(fake.calls) == 1


async def test_when_all_fail_one_error_names_every_attempt(fake: FakeOpenAI, fake_url: str) -> None:
    config = make_config(
        fake_url, routes=chain("primary:model-a", "down:model-x"), retry={"retries": 0}
    )
    fake.then(Fail(503, "overloaded"))
    with pytest.raises(errors.AllAttemptsFailedError) as info:
        await run(Gateway(config), True)
    err = info.value
    assert [a.deployment for a in err.attempts] == ["primary:model-a", "down:model-x"]
    assert [type(a.error) for a in err.attempts] == [
        errors.OverloadedError,
        errors.UpstreamConnectionError,
    ]
    assert "primary:model-a" in err.message and "down:model-x" in err.message
    assert err.status_code == 502
