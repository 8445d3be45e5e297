"""``learned`` routing's per-route state: the outcome store a route reads, the estimator's
settings and the price of quality (lambda), and the decision for one request.

The choice maximises ``p - lambda * cost`` over the candidates the store can estimate, where
``p`` is the kNN estimate of a good answer (``outcomes.py``) and ``cost`` the request's USD
estimate at the catalogue's prices (else the store's mean cost for that model). ``lambda`` is
``1 / willingness_to_pay``, or calibrated on the store's own prompts so that the strongest
candidate gets ``strong_share`` of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import LearnedConfig
from .filters import DEFAULT_OUTPUT_TOKENS, Needs
from .outcomes import Estimate, KnnSettings, OutcomeIndex, estimate_models, read_outcomes
from .strategies import Candidate, estimated_cost

if TYPE_CHECKING:
    import numpy as np

    from .route import Route

__all__ = [
    "DEFAULT_WILLINGNESS_TO_PAY",
    "Decision",
    "FeedbackOutcomes",
    "LearnedRoute",
    "OutcomeFiles",
    "knn_settings",
]

DEFAULT_WILLINGNESS_TO_PAY = 0.01
"""USD for a sure good answer over a sure bad one, when a route gives no price of quality."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One candidate as the decision saw it."""

    candidate: Candidate
    p: float
    neighbours: int
    cost: float
    value: float

    def describe(self) -> str:
        return f"{self.candidate.id} p={self.p:.2f} n={self.neighbours} cost=${self.cost:.6f}"


def store_model(c: Candidate, index: OutcomeIndex) -> str | None:
    """The name the store knows ``c`` by: its id (``provider:model``), its upstream model
    name, or one of its catalogue aliases."""
    d = c.deployment
    names = [c.id, d.model, *(d.entry.aliases if d.entry is not None else ())]
    return next((n for n in names if n in index.column), None)


def knn_settings(settings: LearnedConfig) -> KnnSettings:
    """The estimator's settings of a route (``LearnedConfig()``: the defaults)."""
    return KnnSettings(
        neighbours=settings.neighbours,
        temperature=settings.temperature,
        prior=settings.prior,
        min_similarity=settings.min_similarity,
        min_neighbours=settings.min_neighbours,
    )


class LearnedRoute:
    def __init__(
        self,
        index: OutcomeIndex,
        settings: LearnedConfig,
        candidates: Sequence[Candidate],
        feedback: FeedbackOutcomes | None = None,
    ) -> None:
        self.index = index
        self.feedback = feedback if settings.feedback else None
        self.knn = knn_settings(settings)
        self.names = {c.id: n for c in candidates if (n := store_model(c, index)) is not None}
        self.strong_share = settings.strong_share
        wtp = settings.willingness_to_pay or DEFAULT_WILLINGNESS_TO_PAY
        self.lam = 1 / wtp
        if settings.strong_share is not None:
            self.lam = self.calibrate(candidates, settings.strong_share)

    def _cost(self, c: Candidate, needs: Needs) -> float:
        cost = estimated_cost(c, needs)
        if math.isfinite(cost):
            return cost
        return self.index.costs.get(self.names.get(c.id, ""), math.inf)

    def decide(
        self, candidates: Sequence[Candidate], vector: np.ndarray, needs: Needs
    ) -> list[Decision]:
        """The estimated candidates, best first (empty: nothing to estimate with)."""
        indexes = [self.index]
        names: list[list[str | None]] = [[self.names.get(c.id) for c in candidates]]
        extra = self.feedback.index if self.feedback is not None else None
        if extra is not None:  # the gateway's own outcomes know deployments by their id
            indexes.append(extra)
            names.append([c.id for c in candidates])
        found = estimate_models(indexes, vector, names, self.knn)
        estimates: dict[str, Estimate] = {}
        for c, name in zip(candidates, names[0], strict=True):
            e = found.get(name or c.id)
            if e is not None:
                estimates[c.id] = e
        known = [c for c in candidates if c.id in estimates]
        costs = {c.id: self._cost(c, needs) for c in known}
        finite = [v for v in costs.values() if math.isfinite(v)]
        dearest = max(finite, default=0.0)  # an unknown price counts as the dearest known
        out = []
        for c in known:
            e = estimates[c.id]
            cost = costs[c.id] if math.isfinite(costs[c.id]) else dearest
            out.append(Decision(c, e.p, e.neighbours, cost, e.p - self.lam * cost))
        return sorted(out, key=lambda d: d.value, reverse=True)

    def calibrate(self, candidates: Sequence[Candidate], share: float, sample: int = 2000) -> float:
        """The lambda at which the strongest candidate (best store-wide mean) is the choice
        for ``share`` of the store's prompts (each estimated without itself), costs taken
        for each prompt's length at the default output."""
        import numpy as np

        index = self.index
        cands = [c for c in candidates if c.id in self.names]
        if len(cands) < 2 or not len(index):
            return 1 / DEFAULT_WILLINGNESS_TO_PAY
        cols = [index.column[self.names[c.id]] for c in cands]
        strongest = int(np.argmax(index.prior_mean[cols]))
        rows = np.random.default_rng(0).permutation(len(index))[:sample]
        idx, sims = index.neighbours(index.vectors[rows], self.knn.neighbours + 1)
        keep = idx != rows[:, None]
        order = np.argsort(~keep, axis=1, kind="stable")[:, : self.knn.neighbours]
        idx = np.take_along_axis(idx, order, axis=1)
        sims = np.take_along_axis(sims, order, axis=1)
        from .outcomes import estimate_from_neighbours

        p, _ = estimate_from_neighbours(
            sims, index.scores[idx][:, :, cols], index.prior_mean[cols], self.knn
        )
        costs = np.empty((len(rows), len(cands)))
        for i, r in enumerate(rows):
            needs = Needs(frozenset(), int(index.lengths[r]) // 4 + 4, DEFAULT_OUTPUT_TOKENS)
            costs[i] = [self._cost(c, needs) for c in cands]
        costs = np.where(
            np.isfinite(costs), costs, np.nanmax(np.where(np.isfinite(costs), costs, 0))
        )

        def strong(lam: float) -> float:
            return float((np.argmax(p - lam * costs, axis=1) == strongest).mean())

        lo, hi = -12.0, 12.0  # log10 lambda
        for _ in range(60):
            mid = (lo + hi) / 2
            if strong(10**mid) > share:
                lo = mid
            else:
                hi = mid
        return float(10**hi)


class OutcomeFiles:
    """Outcome files loaded into indexes, kept by (path, modification time, size) and the
    embedding that read them, so that a reload re-reads only the files that changed (and
    embeds them all again when the embedding changed: ``routing.task_tokens``,
    ``task_model``); shared from one gateway to the next."""

    def __init__(self) -> None:
        self._indexes: dict[tuple[str, int, int, str], OutcomeIndex] = {}

    @staticmethod
    def _key(path: str) -> tuple[str, int, int]:
        try:
            st = os.stat(path)
        except OSError:
            return (path, -1, -1)  # read_outcomes reports it
        return (path, st.st_mtime_ns, st.st_size)

    def stale(self, routes: Sequence[Route]) -> bool:
        """Whether a file these routes read changed since it was loaded."""
        paths = {p for r in routes if r.learned is not None for p in r.learned.outcomes}
        loaded = {k[:3] for k in self._indexes}
        return any(self._key(p) not in loaded for p in paths)

    def load(
        self, path: str, embed: Callable[[list[str]], np.ndarray], identity: str = ""
    ) -> OutcomeIndex:
        """The file's index; ``identity`` names the embedding (``embedding_id``)."""
        key = (*self._key(path), identity)
        index = self._indexes.get(key)
        if index is None:
            index = OutcomeIndex.build(read_outcomes(path), embed, source=path)
            self._indexes = {k: v for k, v in self._indexes.items() if k[0] != path}
            self._indexes[key] = index
        return index


class FeedbackOutcomes:
    """The outcomes the gateway gathers itself: a score from ``POST /api/feedback`` on a
    request whose vector this process computed (it keeps the last ``recent`` requests'
    vectors by request id; no prompt text is kept). Shared from one gateway to the next."""

    def __init__(self, recent: int = 10_000) -> None:
        from collections import OrderedDict

        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._limit = recent
        self._rows: list[tuple[np.ndarray, str, float]] = []
        self.index: OutcomeIndex | None = None
        self.arms: dict[str, dict[str, list[float]]] = {}
        """Route -> deployment -> [successes, failures]: adaptive ``ab`` experiments."""

    def remember(self, request_id: str, vector: np.ndarray) -> None:
        self._recent[request_id] = vector
        self._recent.move_to_end(request_id)
        while len(self._recent) > self._limit:
            self._recent.popitem(last=False)

    def vector(self, request_id: str) -> np.ndarray | None:
        return self._recent.get(request_id)

    def add(self, rows: Sequence[tuple[Sequence[float] | None, str, float, str | None]]) -> None:
        """(vector or None, deployment id, score, route) of each feedback: the route's arm
        counts, and the outcome index when there is a vector (rebuilt: feedback is small next
        to a store, thousands of rows rebuilt in milliseconds)."""
        import numpy as np

        for _, deployment, score, route in rows:
            if route is not None:
                arm = self.arms.setdefault(route, {}).setdefault(deployment, [0.0, 0.0])
                arm[0] += score
                arm[1] += 1 - score
        fresh = [(np.asarray(v, dtype=np.float32), m, s) for v, m, s, _ in rows if v is not None]
        if not fresh:
            return
        self._rows += fresh
        models = list(dict.fromkeys(m for _, m, _ in self._rows))
        scores = np.full((len(self._rows), len(models)), np.nan, dtype=np.float32)
        for i, (_, m, s) in enumerate(self._rows):
            scores[i, models.index(m)] = s
        self.index = OutcomeIndex(
            np.stack([v for v, _, _ in self._rows]), scores, models, source="feedback"
        )

    def __len__(self) -> int:
        return len(self._rows)
