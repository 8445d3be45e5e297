"""Walks a route's deployments with retries, backoff, timeouts and failover.

Each round tries, in order, every deployment still worth trying; an error whose ``failover``
flag is set moves on to the next deployment at once, one whose ``retryable`` flag is set makes
the deployment eligible for the next round, after an exponential backoff with jitter (or the
upstream's ``Retry-After`` when longer). A stream fails over only until its first event: the
executor waits for that event before handing the stream to the caller, so nothing has reached
the client when it switches. When everything failed, one error names every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..adapters import AdapterSet
from ..deployment import Deployment
from ..errors import (
    AllAttemptsFailedError,
    Attempt,
    RateLimitError,
    TurnoutError,
    UpstreamTimeoutError,
)
from ..streaming import ChatStream
from ..types import ChatRequest, ChatResult
from .route import Route

__all__ = ["Executor", "backoff_delay"]

log = logging.getLogger("turnout.routing")

T = TypeVar("T")


def backoff_delay(round_: int, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(cap, base * (2**round_))
    return ceiling / 2 + rand * ceiling / 2


class Executor:
    def __init__(
        self,
        adapters: AdapterSet,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._adapters = adapters
        self._sleep = sleep
        self._rand = rand

    async def _walk(
        self, route: Route, try_one: Callable[[Deployment, float], Awaitable[T]]
    ) -> tuple[T, int]:
        attempts: list[Attempt] = []
        pending = list(route.deployments)
        policy = route.retry
        for round_ in range(policy.retries + 1):
            again: list[Deployment] = []
            asked_wait = 0.0
            for deployment in pending:
                t0 = time.perf_counter()
                try:
                    return await try_one(deployment, t0), len(attempts) + 1
                except TurnoutError as err:
                    elapsed = time.perf_counter() - t0
                    attempts.append(Attempt(deployment.id, err, elapsed))
                    log.info(
                        "attempt %d on %s failed after %.3fs: %s (%s)",
                        len(attempts),
                        deployment.id,
                        elapsed,
                        type(err).__name__,
                        err.message,
                    )
                    if not err.failover:
                        raise
                    if not err.retryable:
                        continue
                    wait = err.retry_after if isinstance(err, RateLimitError) else None
                    if wait is not None and wait > policy.max_retry_after:
                        continue  # it asked for longer than we are willing to hold the caller
                    asked_wait = max(asked_wait, wait or 0.0)
                    again.append(deployment)
            if not again or round_ == policy.retries:
                break
            delay = backoff_delay(round_, policy.backoff_base, policy.backoff_max, self._rand())
            await self._sleep(max(delay, asked_wait))
            pending = again
        if len(attempts) == 1:
            raise attempts[0].error
        raise AllAttemptsFailedError(route.name, attempts)

    async def chat(self, route: Route, request: ChatRequest) -> ChatResult:
        started = time.perf_counter()

        async def try_one(d: Deployment, t0: float) -> ChatResult:
            adapter = self._adapters.get(d.host.wire_api)
            t = route.timeouts
            try:
                async with asyncio.timeout(t.total):
                    result = await adapter.chat(request, d, t)
            except TimeoutError:
                raise UpstreamTimeoutError(
                    f"no response within {t.total:g}s",
                    provider=d.provider,
                    model=d.model,
                    code="total_timeout",
                ) from None
            result.latency = time.perf_counter() - started
            return result

        result, attempts = await self._walk(route, try_one)
        result.attempts = attempts
        return result

    async def stream(self, route: Route, request: ChatRequest) -> ChatStream:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()

        async def try_one(d: Deployment, t0: float) -> ChatStream:
            adapter = self._adapters.get(d.host.wire_api)
            t = route.timeouts
            stream = ChatStream(
                adapter.stream(request, d, t),
                id="",
                provider=d.provider,
                model=d.model,
                deployment=d.id,
                started=started,
                deadline=loop.time() + t.total,
            )
            try:
                async with asyncio.timeout(min(t.first_token, t.total)):
                    await stream.peek()
            except TimeoutError:
                await stream.aclose()
                raise UpstreamTimeoutError(
                    f"no first token within {min(t.first_token, t.total):g}s",
                    provider=d.provider,
                    model=d.model,
                    code="first_token_timeout",
                ) from None
            except BaseException:
                await stream.aclose()
                raise
            return stream

        stream, attempts = await self._walk(route, try_one)
        stream.attempts = attempts
        return stream
