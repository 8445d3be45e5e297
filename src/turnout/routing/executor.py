"""Walks a plan's deployments with retries, backoff, timeouts, hedging and failover.

Each round tries, in order, every deployment still worth trying; an error whose ``failover``
flag is set moves on to the next deployment at once, one whose ``retryable`` flag is set makes
the deployment eligible for the next round (at most ``retry.on[class]`` or ``retry.retries``
times per error class), after an exponential backoff with jitter (or the upstream's
``Retry-After`` when longer). Client errors are never retried; a context-length error moves on
to the deployments with a larger window when the route allows (``context_fallback``). A stream
fails over only until its first event: the executor waits for that event before handing the
stream to the caller, so nothing has reached the client when it switches. With ``hedge``, a
deployment that has not answered after ``hedge.after`` seconds gets company: the next one
starts too, the first to answer wins and the other is cancelled. Every attempt's outcome goes
to the live state (circuit breaker, moving averages). When everything failed, one error names
every attempt.

A ``cascade`` plan carries a verifier: each answer is checked before the walk stops at it; one
that fails is an attempt like any failure (``VerificationFailedError``, with the answer's cost)
and the walk moves on. A cascade does not hedge, and holds each stream whole until it is
verified, then replays it. An answer after which nothing would be tried (the last step's) is
returned unchecked: it would be returned whether it passed or not, so a judge call on it would
only cost money. When no later step answers, the last answer that failed is returned
(``cascade`` on the result says so).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from ..adapters import Adapter, AdapterSet
from ..config import FailureClass, TimeoutsConfig
from ..deployment import Deployment
from ..errors import (
    AllAttemptsFailedError,
    Attempt,
    AuthenticationError,
    ContextWindowExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    TurnoutError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
    VerificationFailedError,
)
from ..streaming import ChatStream
from ..types import ChatRequest, ChatResult, EmbeddingRequest, EmbeddingResult, StreamEvent
from .cascade import Judge
from .planner import Plan
from .route import Route
from .state import LiveState, MemoryState

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ..tracing import Tracing

__all__ = ["Executor", "backoff_delay", "error_class", "fitted"]

log = logging.getLogger("turnout.routing")

T = TypeVar("T")
R = TypeVar("R", ChatResult, EmbeddingResult)

UNCHECKED = "last step, not checked"
"""x-turnout-cascade's reason for an answer nothing would have followed."""


def fitted(request: ChatRequest, d: Deployment, adapter: object) -> ChatRequest:
    """``request`` as ``d`` takes it: ``reasoning_effort`` reaches only a wire API that
    carries it (the adapter's ``reasoning_effort`` flag) and a model the catalogue says
    reasons (when it knows the model); elsewhere it is left out, not refused, so one request
    can fail over between reasoning and other models."""
    extra = request.model_extra
    if not extra or extra.get("reasoning_effort") is None:
        return request
    entry = d.entry
    if getattr(adapter, "reasoning_effort", False) and (
        entry is None or "reasoning" in entry.capabilities
    ):
        return request
    copy = request.model_copy()
    copy.__pydantic_extra__ = {k: v for k, v in extra.items() if k != "reasoning_effort"}
    copy.__pydantic_fields_set__ = copy.model_fields_set - {"reasoning_effort"}
    return copy


def backoff_delay(round_: int, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(cap, base * (2**round_))
    return ceiling / 2 + rand * ceiling / 2


def error_class(err: TurnoutError) -> FailureClass | None:
    """The class of a failure that says something about the deployment (counted by the
    circuit breaker, and the key of ``retry.on``); None for the caller's own mistakes."""
    if isinstance(err, RateLimitError):
        return "rate_limit"
    if isinstance(err, UpstreamTimeoutError):
        return "timeout"
    if isinstance(err, UpstreamConnectionError):
        return "connection"
    if isinstance(err, OverloadedError):
        return "overloaded"
    if isinstance(err, UpstreamServerError):
        return "server"
    if isinstance(err, AuthenticationError | PermissionDeniedError):
        return "auth"
    if isinstance(err, NotFoundError):
        return "not_found"
    return None


def _window(d: Deployment) -> int | None:
    return d.entry.context_window if d.entry else None


class _Walk:
    """The bookkeeping of one request's walk over its plan."""

    __slots__ = (
        "again",
        "asked_wait",
        "attempts",
        "final_round",
        "held",
        "queue",
        "route",
        "skipped",
        "started",
        "unchecked",
        "unverified",
        "used",
    )

    def __init__(self, route: Route, plan: Plan) -> None:
        self.route = route
        self.held: VerificationFailedError | None = None
        """A cascade's latest answer that failed verification: returned if nothing better
        comes."""
        self.unverified: VerificationFailedError | None = None
        """Set when ``held`` is what the walk returned."""
        self.unchecked = False
        """A cascade returned an answer it did not check: nothing would have followed it."""
        self.final_round = False
        """No retry round follows this one."""
        self.skipped = plan.dropped
        self.queue: deque[Deployment] = deque(plan.deployments)
        self.again: list[Deployment] = []
        self.attempts: list[Attempt] = []
        self.used: dict[tuple[str, str], int] = {}
        self.asked_wait = 0.0
        self.started = 0

    def last_chance(self) -> bool:
        """Whether nothing would be tried after the attempt just made: no deployment left in
        this round, and no retry round to come for one that asked to be retried."""
        return not self.queue and (not self.again or self.final_round)

    def failed(self, d: Deployment, err: TurnoutError, elapsed: float) -> None:
        """Record a failed attempt and decide what follows it; raises when nothing should."""
        self.attempts.append(Attempt(d.id, err, elapsed))
        if isinstance(err, VerificationFailedError):
            self.held = err
        log.info(
            "attempt %d on %s failed after %.3fs: %s (%s)",
            len(self.attempts),
            d.id,
            elapsed,
            type(err).__name__,
            err.message,
        )
        if isinstance(err, ContextWindowExceededError) and self.route.context_fallback:
            # Only a model with a larger window can help now.
            limit = _window(d)
            if limit is not None:
                self.queue = deque(x for x in self.queue if (_window(x) or limit + 1) > limit)
                self.again = [x for x in self.again if (_window(x) or limit + 1) > limit]
            if self.queue or self.again:
                return
            raise err
        if not err.failover:
            raise err
        if not err.retryable:
            return
        if isinstance(err, UpstreamTimeoutError) and not d.host.retry_timeouts:
            return  # the in-process model would only time out again: next deployment only
        klass = error_class(err) or "server"
        key = (d.id, klass)
        used = self.used.get(key, 0)
        if used >= self.route.retry.retries_for(klass):
            return
        wait = err.retry_after if isinstance(err, RateLimitError) else None
        if wait is not None and wait > self.route.retry.max_retry_after:
            return  # it asked for longer than we are willing to hold the caller
        self.used[key] = used + 1
        self.asked_wait = max(self.asked_wait, wait or 0.0)
        if d not in self.again:
            self.again.append(d)

    def fallback(self) -> object | None:
        """A cascade with nothing better: its last answer that failed verification (taken off
        the failed attempts, since the request's own record now describes it)."""
        held = self.held
        if held is None:
            return None
        self.attempts = [a for a in self.attempts if a.error is not held]
        self.unverified = held
        return held.answer

    def exhausted(self) -> TurnoutError:
        """The error for the caller: the one failure as is, or (several failures, or some
        deployments left out by the plan) one that names every attempt and every skip."""
        if len(self.attempts) == 1 and not self.skipped:
            return self.attempts[0].error
        return AllAttemptsFailedError(self.route.name, self.attempts, self.skipped)


class Executor:
    def __init__(
        self,
        adapters: AdapterSet,
        *,
        state: LiveState | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        tracing: Tracing | None = None,
        judge: Judge | None = None,
    ) -> None:
        self._adapters = adapters
        self.tracing = tracing
        """Spans per attempt when OpenTelemetry is on (None: off, nothing recorded)."""
        self.judge = judge
        """Sends a cascade judge's question through the gateway (None: no judge verdicts)."""
        self.state: LiveState = state if state is not None else MemoryState()
        self._sleep = sleep
        self._rand = rand

    async def _attempt(
        self, d: Deployment, try_one: Callable[[Deployment, float], Awaitable[T]]
    ) -> T:
        """One try, with its outcome reported to the live state."""
        state = self.state
        state.begin(d.id)
        t0 = time.perf_counter()
        try:
            return await try_one(d, t0)
        except TurnoutError as err:
            klass = error_class(err)
            state.end(
                d.id,
                failure=klass,
                retry_after=err.retry_after if isinstance(err, RateLimitError) else None,
            )
            raise
        except BaseException:
            state.end(d.id)  # cancelled (a lost hedge, a client gone): says nothing of health
            raise

    async def _walk(
        self,
        route: Route,
        plan: Plan,
        try_one: Callable[[Deployment, float], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]],
        check: Callable[[T], Awaitable[None]] | None = None,
    ) -> tuple[T, _Walk]:
        """``check`` (a cascade's verification) runs on each answer after its attempt has
        ended, so a rejected answer says nothing of the deployment's health."""
        walk = _Walk(route, plan)
        policy = route.retry
        rounds = max(policy.retries, *policy.on.values()) if policy.on else policy.retries
        try:
            for round_ in range(rounds + 1):
                walk.final_round = round_ == rounds
                if route.hedge is not None and check is None:
                    won = await self._hedged_round(walk, try_one, discard)
                else:
                    won = await self._round(walk, try_one, check)
                if won is not None:
                    return won[0], walk
                if not walk.again or round_ == rounds:
                    break
                delay = backoff_delay(round_, policy.backoff_base, policy.backoff_max, self._rand())
                await self._sleep(max(delay, walk.asked_wait))
                walk.queue, walk.again, walk.asked_wait = deque(walk.again), [], 0.0
        except TurnoutError:
            if walk.held is None:
                raise
        fallback = walk.fallback()
        if fallback is not None:
            return fallback, walk  # type: ignore[return-value]  # what ``check`` rejected: a T
        raise walk.exhausted()

    async def _round(
        self,
        walk: _Walk,
        try_one: Callable[[Deployment, float], Awaitable[T]],
        check: Callable[[T], Awaitable[None]] | None = None,
    ) -> tuple[T] | None:
        while walk.queue:
            d = walk.queue.popleft()
            walk.started += 1
            t0 = time.perf_counter()
            try:
                answer = await self._attempt(d, try_one)
                if check is not None:
                    if walk.last_chance():
                        # Returned whether it passes or not: checking it (a judge call) would
                        # only cost money.
                        walk.unchecked = True
                    else:
                        await check(answer)
                return (answer,)
            except TurnoutError as err:
                walk.failed(d, err, time.perf_counter() - t0)
        return None

    async def _hedged_round(
        self,
        walk: _Walk,
        try_one: Callable[[Deployment, float], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]],
    ) -> tuple[T] | None:
        hedge = walk.route.hedge
        assert hedge is not None
        running: dict[asyncio.Task[T], tuple[Deployment, float]] = {}

        def launch() -> None:
            d = walk.queue.popleft()
            walk.started += 1
            task = asyncio.create_task(self._attempt(d, try_one))
            running[task] = (d, time.perf_counter())

        try:
            while walk.queue or running:
                if not running:
                    launch()
                can_hedge = bool(walk.queue) and len(running) < hedge.max
                done, _ = await asyncio.wait(
                    running,
                    timeout=hedge.after if can_hedge else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    d0 = next(iter(running.values()))[0]
                    log.info("hedging: %s has not answered in %gs", d0.id, hedge.after)
                    launch()
                    continue
                winner: tuple[T] | None = None
                for task in done:
                    d, t0 = running.pop(task)
                    exc = task.exception()
                    if exc is None:
                        if winner is None:
                            winner = (task.result(),)
                        else:
                            await discard(task.result())
                    elif isinstance(exc, TurnoutError):
                        walk.failed(d, exc, time.perf_counter() - t0)
                    else:
                        raise exc
                if winner is not None:
                    return winner
            return None
        finally:
            for task in running:
                task.cancel()
            for task in running:
                try:
                    late = await task
                except BaseException:  # noqa: S110 - a cancelled loser's outcome is moot
                    continue
                await discard(late)

    async def _call(
        self,
        route: Route,
        d: Deployment,
        operation: Callable[[Adapter, Deployment, TimeoutsConfig], Awaitable[R]],
        started: float,
        t0: float,
    ) -> R:
        """One whole-answer call (chat or embeddings, not a stream) to ``d`` through its
        adapter's ``operation``, within the route's total timeout; its latency is recorded
        on the result and in the live state."""
        adapter = self._adapters.get(d.host.wire_api)
        t = route.timeouts
        try:
            async with asyncio.timeout(t.total):
                result = await operation(adapter, d, t)
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"no response within {t.total:g}s",
                provider=d.provider,
                model=d.model,
                code="total_timeout",
            ) from None
        now = time.perf_counter()
        result.latency = now - started
        self.state.first_token(d.id, None)
        self.state.end(d.id, latency=now - t0)
        return result

    async def chat(
        self, route: Route, request: ChatRequest, plan: Plan | None = None
    ) -> ChatResult:
        plan = plan or Plan("priority", list(route.deployments))
        started = time.perf_counter()
        tracing = self.tracing

        def operation(adapter: Adapter, d: Deployment, t: TimeoutsConfig) -> Awaitable[ChatResult]:
            return adapter.chat(fitted(request, d, adapter), d, t)

        async def try_one(d: Deployment, t0: float) -> ChatResult:
            if tracing is None:
                return await self._call(route, d, operation, started, t0)
            span = tracing.start_attempt(d, request)
            try:
                result = await self._call(route, d, operation, started, t0)
            except BaseException as exc:
                tracing.end_attempt(span, None, exc)
                raise
            tracing.end_attempt(span, result, None)
            return result

        async def discard(result: ChatResult) -> None:
            return None

        check = None
        judged: list[ChatResult] = []
        verifier = plan.verifier
        if verifier is not None:
            prices = {d.id: d.entry for d in plan.deployments}

            async def check(result: ChatResult) -> None:
                entry = prices.get(result.deployment)
                cost = entry.cost(result.usage) if entry is not None else None
                await verifier.check(request, result, cost, self.judge, judged)

        result, walk = await self._walk(route, plan, try_one, discard, check)
        result.attempts = walk.started
        result.failed_attempts = list(walk.attempts)
        result.strategy = plan.strategy
        result.task = plan.task
        result.estimates = plan.estimates
        if verifier is not None:
            result.cascade = _cascade_note(plan, result.deployment, walk)
            result.judged = judged
        return result

    async def embed(
        self, route: Route, request: EmbeddingRequest, plan: Plan | None = None
    ) -> EmbeddingResult:
        """Embeddings over the same walk as ``chat``: retries, failover, hedging, live
        state."""
        plan = plan or Plan("priority", list(route.deployments))
        started = time.perf_counter()

        def operation(
            adapter: Adapter, d: Deployment, t: TimeoutsConfig
        ) -> Awaitable[EmbeddingResult]:
            return adapter.embed(request, d, t)

        def try_one(d: Deployment, t0: float) -> Awaitable[EmbeddingResult]:
            return self._call(route, d, operation, started, t0)

        async def discard(result: EmbeddingResult) -> None:
            return None

        result, walk = await self._walk(route, plan, try_one, discard)
        result.attempts = walk.started
        result.failed_attempts = list(walk.attempts)
        result.strategy = plan.strategy
        return result

    async def stream(
        self, route: Route, request: ChatRequest, plan: Plan | None = None
    ) -> ChatStream:
        plan = plan or Plan("priority", list(route.deployments))
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        state = self.state

        tracing = self.tracing
        verifier = plan.verifier
        answers: dict[ChatStream, ChatResult] = {}
        """A cascade's held streams -> their answers, for the verifier."""

        async def try_one(d: Deployment, t0: float) -> ChatStream:
            if tracing is None:
                return await call(d, t0, None)
            span = tracing.start_attempt(d, request)
            try:
                return await call(d, t0, span)
            except BaseException as exc:
                tracing.end_attempt(span, None, exc)
                raise

        async def call(d: Deployment, t0: float, span: Span | None) -> ChatStream:
            adapter = self._adapters.get(d.host.wire_api)
            t = route.timeouts
            stream = ChatStream(
                adapter.stream(fitted(request, d, adapter), d, t),
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
            ttft = time.perf_counter() - t0
            state.first_token(d.id, ttft)
            if verifier is not None:
                return await hold(d, t0, span, stream, ttft)

            def done(s: ChatStream, error: TurnoutError | None) -> None:
                klass = error_class(error) if error is not None else None
                latency = time.perf_counter() - t0 if s.latency is not None else None
                state.end(d.id, latency=latency, failure=klass)
                if span is not None and tracing is not None:
                    tracing.end_attempt(span, s, error, ttft)

            stream.on_done = done
            return stream

        async def hold(
            d: Deployment, t0: float, span: Span | None, stream: ChatStream, ttft: float
        ) -> ChatStream:
            """A cascade step's stream read whole (a failure mid-way fails over: nothing has
            reached the client), to be verified and then replayed."""
            try:
                events: list[StreamEvent] = [event async for event in stream]
            finally:
                await stream.aclose()
            answer = stream.final()
            answer.cost = d.entry.cost(answer.usage) if d.entry is not None else None
            state.end(d.id, latency=time.perf_counter() - t0)
            if span is not None and tracing is not None:
                tracing.end_attempt(span, stream, None, ttft)
            replay = ChatStream(
                _replay(events),
                id=stream.id,
                provider=d.provider,
                model=stream.model,
                deployment=d.id,
                started=started,
                created=stream.created,
            )
            answers[replay] = answer
            return replay

        async def discard(stream: ChatStream) -> None:
            await stream.aclose()

        check = None
        judged: list[ChatResult] = []
        if verifier is not None:

            async def check(stream: ChatStream) -> None:
                answer = answers[stream]
                try:
                    await verifier.check(request, answer, answer.cost, self.judge, judged)
                except VerificationFailedError as err:
                    err.answer = stream  # what the walk returns if nothing better comes
                    raise

        stream, walk = await self._walk(route, plan, try_one, discard, check)
        stream.attempts = walk.started
        stream.failed_attempts = list(walk.attempts)
        stream.strategy = plan.strategy
        stream.task = plan.task
        stream.estimates = plan.estimates
        if verifier is not None:
            stream.cascade = _cascade_note(plan, stream.deployment, walk)
            stream.judged = judged
        return stream


async def _replay(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


def _cascade_note(plan: Plan, deployment: str, walk: _Walk) -> str:
    """x-turnout-cascade: which step of how many answered, and whether its answer passed
    (or went unchecked, as the last step's does)."""
    ids = [d.id for d in plan.deployments]
    step = ids.index(deployment) + 1 if deployment in ids else len(ids)
    if walk.unchecked:
        return f"unverified; step={step}/{len(ids)}; {UNCHECKED}"
    if walk.unverified is None:
        return f"verified; step={step}/{len(ids)}"
    return f"unverified; step={step}/{len(ids)}; {walk.unverified.message}"
