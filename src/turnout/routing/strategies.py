"""Strategies: given the candidates that passed the filters and the live stats, the order in
which the executor should try them. The first is the choice; the rest are the fallbacks.

Each strategy is a small object with ``name`` and ``order(candidates, ctx)``; none does I/O
and each reads only in-memory data, so a decision costs microseconds. ``STRATEGIES`` maps
the names accepted in config and requests to instances.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..config import BalanceWeights, RoutingConfig
from ..deployment import Deployment
from ..errors import BadRequestError
from ..types import ChatRequest
from .filters import Needs
from .state import LiveState

if TYPE_CHECKING:
    from .learned import LearnedRoute

__all__ = ["STRATEGIES", "Candidate", "Context", "Strategy", "estimated_cost"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A deployment as a route offers it: its place in the route, weight and task labels."""

    deployment: Deployment
    index: int
    weight: float = 1.0
    tasks: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        return self.deployment.id


@dataclass(slots=True)
class Context:
    """Everything a strategy may consult about the request being routed."""

    route: str
    request: ChatRequest
    needs: Needs
    state: LiveState
    settings: RoutingConfig
    rand: Callable[[], float]
    priority: str = "balanced"
    balance: BalanceWeights | None = None
    sticky: bool = False
    caller: str | None = None
    deployment: str | None = None
    task: str | None = None
    embedding: Any = None
    """The request's MiniLM vector (numpy), when a strategy needs it: computed once."""
    learned: LearnedRoute | None = None
    """The route's outcome store and price of quality, for ``learned``."""
    estimates: str | None = None
    """What ``learned`` estimated, per candidate (x-turnout-estimates, debug log)."""
    arms: dict[str, list[float]] | None = None
    """``ab`` with ``adaptive``: deployment id -> [successes, failures] from feedback."""
    min_share: float = 0.0


class Strategy(Protocol):
    name: str

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]: ...


def estimated_cost(c: Candidate, needs: Needs) -> float:
    """USD the request would cost on ``c`` by the catalogue's prices; inf when unknown."""
    e = c.deployment.entry
    if e is None or e.input_price is None or e.output_price is None:
        return math.inf
    output = needs.output_for(c.deployment)
    return (e.input_price * needs.prompt_tokens + e.output_price * output) / 1e6


def _quality(c: Candidate) -> float:
    e = c.deployment.entry
    q = e.quality if e is not None else None
    return -1.0 if q is None else q


class Manual:
    """Exactly the deployment the caller named (``turnout.deployment``), else the route's
    first: no fallback, so the caller learns when it fails."""

    name = "manual"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        if ctx.deployment is None:
            return [candidates[0]]
        for c in candidates:
            if ctx.deployment in (c.id, c.deployment.model) or (
                c.deployment.entry is not None and ctx.deployment in c.deployment.entry.aliases
            ):
                return [c]
        names = ", ".join(c.id for c in candidates)
        raise BadRequestError(
            f"deployment '{ctx.deployment}' is not available in route '{ctx.route}' "
            f"(available: {names})",
            param="turnout.deployment",
        )


class Priority:
    """The route's order: first listed, first tried."""

    name = "priority"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        return list(candidates)


class RoundRobin:
    """Each request starts one further along the route than the last."""

    name = "round_robin"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        k = ctx.state.next_turn(ctx.route) % len(candidates)
        return [*candidates[k:], *candidates[:k]]


class Weighted:
    """A random order drawn by weight (weighted sampling without replacement: each key is
    ``u ** (1 / weight)``, largest first); weight 0 only serves as a fallback."""

    name = "weighted"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        rand = ctx.rand

        def key(c: Candidate) -> float:
            return rand() ** (1.0 / c.weight) if c.weight > 0 else -1.0

        return sorted(candidates, key=key, reverse=True)


class LeastBusy:
    """Fewest requests in flight first; ties keep the route's order."""

    name = "least_busy"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        stats = ctx.state.stats
        return sorted(candidates, key=lambda c: stats(c.id).in_flight)


class Cost:
    """Cheapest first for this request (prompt estimate plus expected output at the
    catalogue's prices); unknown prices last."""

    name = "cost"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        needs = ctx.needs
        return sorted(candidates, key=lambda c: estimated_cost(c, needs))


class Quality:
    """Highest catalogue quality score first; unknown scores last."""

    name = "quality"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        return sorted(candidates, key=_quality, reverse=True)


class Performance:
    """Fastest first by the gateway's own measurements: moving-average TTFT for streams,
    total latency otherwise. Cold deployments (fewer than ``cold_samples`` measurements,
    counting those under way) go first so they get measured; a share ``explore`` of decisions
    puts a random other one first so a measurement that has gone stale is refreshed."""

    name = "performance"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        stats = ctx.state.stats
        cold = ctx.settings.cold_samples
        stream = bool(ctx.request.stream)

        def key(c: Candidate) -> tuple[int, float]:
            s = stats(c.id)
            if s.samples + s.in_flight < cold:  # requests under way count: no cold stampede
                return (0, float(s.samples + s.in_flight))
            first, second = (s.ttft, s.latency) if stream else (s.latency, s.ttft)
            value = first if first is not None else second
            return (1, value if value is not None else math.inf)

        ranked = sorted(candidates, key=key)
        if len(ranked) > 1 and ctx.settings.explore and ctx.rand() < ctx.settings.explore:
            pick = 1 + min(int(ctx.rand() * (len(ranked) - 1)), len(ranked) - 2)
            ranked.insert(0, ranked.pop(pick))
        return ranked


def _spread(values: list[float]) -> list[float]:
    """Min-max to [0, 1]; all equal -> 0.5 each."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [0.5] * len(values)
    lo, hi = min(finite), max(finite)
    if hi == lo:
        return [0.5 if math.isfinite(v) else 1.0 for v in values]
    return [(v - lo) / (hi - lo) if math.isfinite(v) else 1.0 for v in values]


class Balanced:
    """Weighted cost and quality (60/40 by default; ``balance`` on the route): each is
    scaled to [0, 1] across the candidates, the cheapest and the best scoring 1."""

    name = "balanced"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        w = ctx.balance or BalanceWeights()
        costs = _spread([estimated_cost(c, ctx.needs) for c in candidates])
        quals = [_quality(c) for c in candidates]
        quals_n = _spread([q if q >= 0 else math.inf for q in quals])
        total = (w.cost + w.quality) or 1.0
        scores = {
            c.id: (w.cost * (1 - cn) + w.quality * (qn if q >= 0 else 0.0)) / total
            for c, cn, q, qn in zip(candidates, costs, quals, quals_n, strict=True)
        }
        return sorted(candidates, key=lambda c: scores[c.id], reverse=True)


class Split:
    """A/B split by percentage: an arm is drawn by weight (``weight`` of each deployment, in
    percent); with ``sticky``, the caller's id picks the arm, so it always gets the same.
    The other arms follow as fallbacks in the route's order."""

    name = "ab"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        if ctx.arms is not None:
            return self._adaptive(candidates, ctx, ctx.arms)
        total = sum(c.weight for c in candidates)
        if total <= 0:
            return list(candidates)
        if ctx.sticky and ctx.caller:
            digest = hashlib.blake2b(f"{ctx.route}\0{ctx.caller}".encode(), digest_size=8)
            u = int.from_bytes(digest.digest(), "big") / 2**64
        else:
            u = ctx.rand()
        point = u * total
        acc = 0.0
        chosen = candidates[-1]
        for c in candidates:
            acc += c.weight
            if point < acc and c.weight > 0:
                chosen = c
                break
        return [chosen, *(c for c in candidates if c is not chosen)]

    @staticmethod
    def _adaptive(
        candidates: Sequence[Candidate], ctx: Context, arms: dict[str, list[float]]
    ) -> list[Candidate]:
        """Thompson sampling: each arm's success rate drawn from Beta(1 + successes,
        1 + failures), the best draw wins; a share ``min_share`` per arm is drawn uniformly
        so that every arm keeps being measured."""
        n = len(candidates)
        if ctx.rand() < ctx.min_share * n:
            chosen = candidates[min(int(ctx.rand() * n), n - 1)]
        else:
            draws = {
                c.id: random.betavariate(1 + s, 1 + f)
                for c in candidates
                for s, f in [arms.get(c.id, [0.0, 0.0])]
            }
            chosen = max(candidates, key=lambda c: draws[c.id])
        return [chosen, *(c for c in candidates if c is not chosen)]


class TaskAware:
    """The deployments declared for the request's task first (in the route's order), the
    rest after them as fallbacks; an unclassified request keeps the route's order."""

    name = "task"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        if ctx.task is None:
            return list(candidates)
        suited = [c for c in candidates if ctx.task in c.tasks]
        return [*suited, *(c for c in candidates if ctx.task not in c.tasks)]


_BY_PRIORITY: dict[str, Strategy] = {
    "speed": Performance(),
    "quality": Quality(),
    "cost": Cost(),
    "balanced": Balanced(),
}


class Auto:
    """The best for the task within the caller's priority: deployments suited to the
    request's task (when the route declares tasks) before the others, each group ordered
    by speed, quality, cost or balanced."""

    name = "auto"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        inner = _BY_PRIORITY[ctx.priority]
        if ctx.task is None:
            return inner.order(candidates, ctx)
        suited = [c for c in candidates if ctx.task in c.tasks]
        if not suited or len(suited) == len(candidates):
            return inner.order(candidates, ctx)
        rest = [c for c in candidates if ctx.task not in c.tasks]
        return [*inner.order(suited, ctx), *inner.order(rest, ctx)]


class Learned:
    """The cheapest candidate likely to answer well: ``argmax p - lambda * cost``, with p
    each candidate's chance of a good answer estimated from the most similar prompts of the
    route's outcome store (``learned.py``). Candidates the store cannot estimate follow, in
    ``auto``'s order; with fewer than two estimated, ``auto`` decides alone."""

    name = "learned"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        lr = ctx.learned
        if lr is None or ctx.embedding is None:
            ctx.estimates = (
                "none (no outcome store loaded for this route)"
                if lr is None
                else "none (the request was not embedded)"  # no text, an embeddings input
            )
            return _AUTO.order(candidates, ctx)
        ranked = lr.decide(candidates, ctx.embedding, ctx.needs)
        if len(ranked) < 2:
            ctx.estimates = "none (too few similar outcomes)"
            return _AUTO.order(candidates, ctx)
        ctx.estimates = "; ".join(d.describe() for d in ranked)
        chosen = {d.candidate.id for d in ranked}
        rest = [c for c in candidates if c.id not in chosen]
        return [d.candidate for d in ranked] + (_AUTO.order(rest, ctx) if rest else [])


class Cascade:
    """Cheapest first, as ``cost`` orders them: the executor stops at the first answer that
    passes the route's verifier (``cascade.py``) and escalates to the next otherwise."""

    name = "cascade"

    def order(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        return _COST.order(candidates, ctx)


_AUTO = Auto()
_COST = Cost()

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Manual(),
        Priority(),
        RoundRobin(),
        Weighted(),
        LeastBusy(),
        _COST,
        Performance(),
        Quality(),
        Balanced(),
        Split(),
        TaskAware(),
        _AUTO,
        Learned(),
        Cascade(),
    )
}
