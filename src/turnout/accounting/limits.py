"""Admission for gateway keys: revocation, requests and tokens per minute, and budgets.

``admit`` runs before a request (one Redis round trip with ``RedisLimits``, none in process):
it refuses a revoked key, a spent budget, a full token window, then counts the request against
its requests-per-minute window. ``settle`` runs after: it adds the tokens and the cost, and
returns each budget's spend before and after so alerts fire exactly once on the crossing.

Windows are fixed 60-second windows anchored at the first request (not the wall-clock minute),
so the reset time a client is told is exact. Spend is checked before the request and added
after it, so a budget is overspent by at most the cost of the requests in flight when it was
crossed; nothing after the crossing is admitted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import AuthenticationError, BudgetExceededError, RateLimitError
from .keys import GatewayKey
from .periods import PERIODS, period_name, period_reset

__all__ = ["Limits", "LocalLimits", "Verdict", "WINDOW", "check"]

WINDOW = 60.0


@dataclass(slots=True)
class Verdict:
    """What a backend saw at admission, before it is turned into headers or an error."""

    outcome: str  # ok | revoked | budget | tpm | rpm
    requests: int = 0
    requests_reset: float = WINDOW
    tokens: int = 0
    tokens_reset: float = WINDOW
    budget_kind: str = ""
    spent: float = 0.0


class Limits(Protocol):
    async def admit(self, key: GatewayKey, now: float) -> Verdict: ...

    async def settle(
        self, key: GatewayKey, tokens: int, cost: float, now: float
    ) -> dict[str, tuple[float, float]]: ...

    async def revoke(self, key_id: str) -> None: ...

    async def spend(self, key: GatewayKey, now: float) -> dict[str, float]: ...

    async def seed(self, key_id: str, spent: dict[str, float]) -> None: ...

    async def aclose(self) -> None: ...


def _secs(value: float) -> str:
    return f"{max(0, math.ceil(value))}s"


def check(key: GatewayKey, verdict: Verdict, now: float) -> dict[str, str]:
    """Response headers for an admitted request; raise the refusal otherwise."""
    headers: dict[str, str] = {}
    if key.rpm:
        headers["x-ratelimit-limit-requests"] = str(key.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, key.rpm - verdict.requests))
        headers["x-ratelimit-reset-requests"] = _secs(verdict.requests_reset)
    if key.tpm:
        headers["x-ratelimit-limit-tokens"] = str(key.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, key.tpm - verdict.tokens))
        headers["x-ratelimit-reset-tokens"] = _secs(verdict.tokens_reset)
    if verdict.outcome == "ok":
        return headers
    if verdict.outcome == "revoked":
        raise AuthenticationError("this API key has been revoked", code="key_revoked")
    if verdict.outcome in ("rpm", "tpm"):
        what = "requests" if verdict.outcome == "rpm" else "tokens"
        limit = key.rpm if verdict.outcome == "rpm" else key.tpm
        wait = verdict.requests_reset if verdict.outcome == "rpm" else verdict.tokens_reset
        err = RateLimitError(
            f"gateway key '{key.name or key.id}' is over its limit of {limit} {what} per "
            f"minute; retry in {_secs(wait)}",
            retry_after=max(wait, 1.0),
        )
        err.headers = headers
        raise err
    kind = verdict.budget_kind
    limit_usd = key.budgets()[kind]
    reset = period_reset(kind, now)
    err2 = BudgetExceededError(
        f"gateway key '{key.name or key.id}' has spent ${verdict.spent:.4f} of its {kind} "
        f"budget of ${limit_usd:g}"
        + (
            f"; it resets at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(reset))}"
            if reset
            else ""
        )
    )
    headers.update(
        {
            "x-turnout-budget-period": kind,
            "x-turnout-budget-limit": f"{limit_usd:g}",
            "x-turnout-budget-spent": f"{verdict.spent:.6f}",
        }
    )
    if reset is not None:
        headers["x-turnout-budget-reset"] = str(int(reset))
        headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
    err2.headers = headers
    raise err2


class LocalLimits:
    """Counters in this process: exact for one replica, and the default without Redis."""

    def __init__(self) -> None:
        self._requests: dict[str, tuple[float, int]] = {}
        self._tokens: dict[str, tuple[float, int]] = {}
        self._spent: dict[tuple[str, str], float] = {}
        self._revoked: set[str] = set()

    @staticmethod
    def _window(table: dict[str, tuple[float, int]], key_id: str, now: float) -> tuple[float, int]:
        start, count = table.get(key_id, (now, 0))
        if now - start >= WINDOW:
            start, count = now, 0
        return start, count

    async def admit(self, key: GatewayKey, now: float) -> Verdict:
        if key.id in self._revoked:
            return Verdict("revoked")
        for kind, limit in key.budgets().items():
            spent = self._spent.get((key.id, period_name(kind, now)), 0.0)
            if spent >= limit:
                return Verdict("budget", budget_kind=kind, spent=spent)
        verdict = Verdict("ok")
        if key.tpm:
            start, tokens = self._window(self._tokens, key.id, now)
            verdict.tokens, verdict.tokens_reset = tokens, start + WINDOW - now
            if tokens >= key.tpm:
                verdict.outcome = "tpm"
                return verdict
        if key.rpm:
            start, count = self._window(self._requests, key.id, now)
            count += 1
            self._requests[key.id] = (start, count)
            verdict.requests, verdict.requests_reset = count, start + WINDOW - now
            if count > key.rpm:
                verdict.outcome = "rpm"
        return verdict

    async def settle(
        self, key: GatewayKey, tokens: int, cost: float, now: float
    ) -> dict[str, tuple[float, float]]:
        if key.tpm and tokens:
            start, used = self._window(self._tokens, key.id, now)
            self._tokens[key.id] = (start, used + tokens)
        crossed: dict[str, tuple[float, float]] = {}
        if cost:
            for kind in PERIODS:
                slot = (key.id, period_name(kind, now))
                before = self._spent.get(slot, 0.0)
                self._spent[slot] = before + cost
                crossed[kind] = (before, before + cost)
        return crossed

    async def revoke(self, key_id: str) -> None:
        self._revoked.add(key_id)

    async def spend(self, key: GatewayKey, now: float) -> dict[str, float]:
        return {k: self._spent.get((key.id, period_name(k, now)), 0.0) for k in PERIODS}

    async def seed(self, key_id: str, spent: dict[str, float]) -> None:
        for period, value in spent.items():
            self._spent.setdefault((key_id, period), value)

    async def aclose(self) -> None:
        return None
