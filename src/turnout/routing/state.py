"""Live routing state per deployment: moving averages of TTFT and latency, requests in
flight, and the circuit breaker (cooldown) that keeps a failing deployment out of rotation.

Strategies read this state on every decision, so reads are plain attribute lookups on objects
held in memory (a decision must stay within tens of microseconds). Writes are synchronous and
must not block: ``MemoryState`` applies them in place. A shared implementation (Redis, for
several replicas) keeps the same in-memory ``DeploymentStats`` as its local snapshot, queues
its writes and refreshes the snapshot from the shared store in a background task that it runs
between ``start()`` and ``aclose()``.

The breaker per deployment::

    closed --(allowed_fails failures within window, or a 429)--> open (for cooldown or
    Retry-After) --(time passes)--> half-open: one probe request is admitted
    half-open --(probe succeeds)--> closed;  --(probe fails)--> open again
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ..config import HealthConfig

__all__ = ["DeploymentStats", "LiveState", "MemoryState"]


@dataclass(slots=True)
class DeploymentStats:
    """What the gateway has measured of one deployment, as of now."""

    ttft: float | None = None
    """Moving average of the time to first token of streams, in seconds."""
    latency: float | None = None
    """Moving average of the total time of successful requests, in seconds."""
    samples: int = 0
    """Successful requests measured (cold while below ``routing.cold_samples``)."""
    in_flight: int = 0
    successes: int = 0
    failures: int = 0
    """Totals since start, for the stats endpoints."""
    window_fails: int = 0
    window_start: float = 0.0
    open_until: float = 0.0
    """The circuit is open (the deployment cools down) until this time of the state's clock."""
    half_open: bool = False
    """The cooldown is over and the next request is a probe."""
    probing: bool = False
    """A probe request is in flight: nobody else is admitted until it ends."""
    last_error: str | None = None

    def usable(self, now: float) -> bool:
        """May a new request be sent here now? (No state change: deciding is not trying.)"""
        if now < self.open_until:
            return False
        return not self.probing

    @property
    def circuit(self) -> str:
        if self.probing or self.half_open:
            return "half_open"
        return "open" if self.open_until > 0 else "closed"

    def describe(self, now: float) -> dict[str, object]:
        """A JSON-ready view (times in milliseconds and seconds) for status endpoints."""
        cooling = max(0.0, self.open_until - now) if self.open_until else 0.0
        circuit = self.circuit
        if circuit == "open" and not cooling:
            circuit = "half_open"  # the cooldown is over: the next request is the probe
        return {
            "circuit": circuit,
            "cooldown_remaining_s": round(cooling, 3),
            "in_flight": self.in_flight,
            "ttft_ms": None if self.ttft is None else round(self.ttft * 1000, 1),
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 1),
            "samples": self.samples,
            "successes": self.successes,
            "failures": self.failures,
            "last_error": self.last_error,
        }


class LiveState(Protocol):
    """The store strategies read and the executor writes. Reads never wait on I/O."""

    def stats(self, deployment: str) -> DeploymentStats:
        """The deployment's stats (a fresh, cold record when it was never seen)."""
        ...

    def usable(self, deployment: str) -> bool: ...

    def begin(self, deployment: str) -> None:
        """A request is sent: one more in flight; in half-open, it becomes the probe."""
        ...

    def first_token(self, deployment: str, ttft: float | None) -> None:
        """The deployment answered (first stream event, or the whole response): the circuit
        closes and TTFT joins its moving average."""
        ...

    def end(
        self,
        deployment: str,
        *,
        latency: float | None = None,
        failure: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """The request is over. ``latency`` when it completed; ``failure`` names the error
        class when it failed in a way that says something about the deployment's health."""
        ...

    def next_turn(self, key: str) -> int:
        """A counter per key, for round robin."""
        ...

    def snapshot(self) -> dict[str, DeploymentStats]: ...

    def now(self) -> float:
        """The state's clock (what ``open_until`` is measured on)."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class MemoryState:
    """``LiveState`` in this process: enough for one replica."""

    def __init__(
        self,
        health: HealthConfig | None = None,
        *,
        alpha: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = health or HealthConfig()
        self.alpha = alpha
        self.clock = clock
        self._stats: dict[str, DeploymentStats] = {}
        self._turns: dict[str, int] = {}

    def stats(self, deployment: str) -> DeploymentStats:
        s = self._stats.get(deployment)
        if s is None:
            s = self._stats[deployment] = DeploymentStats()
        return s

    def usable(self, deployment: str) -> bool:
        s = self._stats.get(deployment)
        return s is None or s.usable(self.clock())

    def begin(self, deployment: str) -> None:
        s = self.stats(deployment)
        s.in_flight += 1
        if s.open_until and self.clock() >= s.open_until:
            # The cooldown is over: this request is the half-open probe.
            s.open_until = 0.0
            s.half_open = True
            s.probing = True

    def first_token(self, deployment: str, ttft: float | None) -> None:
        s = self.stats(deployment)
        if s.half_open or s.probing:
            # The probe answered: the circuit closes with a clean slate. (Other successes do
            # not clear the window: failures count within it, not only consecutive ones.)
            s.half_open = s.probing = False
            s.open_until = 0.0
            s.window_fails = 0
        s.last_error = None
        if ttft is not None:
            s.ttft = ttft if s.ttft is None else s.ttft + self.alpha * (ttft - s.ttft)

    def end(
        self,
        deployment: str,
        *,
        latency: float | None = None,
        failure: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        s = self.stats(deployment)
        s.in_flight = max(0, s.in_flight - 1)
        if failure is None:
            if latency is not None:
                s.samples += 1
                s.successes += 1
                s.latency = (
                    latency if s.latency is None else s.latency + self.alpha * (latency - s.latency)
                )
            return
        s.failures += 1
        s.last_error = failure
        if not self.health.enabled:
            return
        now = self.clock()
        if s.probing or s.half_open:
            s.probing = s.half_open = False
            s.open_until = now + max(self.health.cooldown, retry_after or 0.0)
            return
        if failure == "rate_limit":
            # The upstream said stop: cool down for as long as it asked (or the default).
            wait = retry_after if retry_after is not None else self.health.cooldown
            s.open_until = max(s.open_until, now + wait)
            return
        if now - s.window_start > self.health.window:
            s.window_start = now
            s.window_fails = 0
        s.window_fails += 1
        if s.window_fails >= self.health.allowed_fails:
            s.open_until = now + self.health.cooldown
            s.window_fails = 0

    def next_turn(self, key: str) -> int:
        n = self._turns.get(key, 0)
        self._turns[key] = n + 1
        return n

    def snapshot(self) -> dict[str, DeploymentStats]:
        return dict(self._stats)

    def now(self) -> float:
        return self.clock()

    def __iter__(self) -> Iterator[tuple[str, DeploymentStats]]:
        return iter(self._stats.items())

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
