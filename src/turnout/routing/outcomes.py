"""The outcome store: how well each model answered prompts like this one, for ``learned``
routing.

Outcomes come from JSON Lines files a user brings from their own evaluations (one object a
line: ``prompt``, ``model``, ``score`` in 0..1, optionally ``cost`` in USD, ``latency`` in
seconds and ``task``) and from the feedback the gateway gathers (``POST /api/feedback``).
In memory they are one row per distinct prompt: its unit embedding (the task classifier's
MiniLM vector) and a score per model (NaN where that model has no outcome).

A request's chance of a good answer on each model is a k-nearest-neighbour estimate: the
scores of the ``k`` most similar stored prompts, weighted by ``exp(similarity / temperature)``
and shrunk towards the model's mean over the whole store by ``prior`` pseudo-observations.
Lookup is an exact matrix product (numpy): see docs/routing.md for its cost by store size.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Estimate",
    "KnnSettings",
    "Outcome",
    "OutcomeIndex",
    "estimate_from_neighbours",
    "estimate_models",
    "read_outcomes",
]

_FIELDS = {"prompt", "model", "score", "cost", "latency", "task"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one model did on one prompt: ``score`` 1 is a good answer, 0 a bad one."""

    prompt: str
    model: str
    score: float
    cost: float | None = None
    latency: float | None = None
    task: str | None = None


def _number(row: dict[str, Any], key: str, where: str, lo: float, hi: float) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and key == "score":
        return 1.0 if value else 0.0  # true/false outcomes (RouteLLM's tables) read as 1/0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: '{key}' must be a number (got {value!r})")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: '{key}' must be between {lo:g} and {hi:g} (got {value!r})")
    return float(value)


def parse_outcome(line: str | bytes, where: str) -> Outcome:
    """One line of an outcome file; ``ConfigError`` naming ``where`` (file:line) when bad."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not a JSON object: {exc}") from None
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)} "
            f"(expected {', '.join(sorted(_FIELDS))})"
        )
    for key in ("prompt", "model"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    task = row.get("task")
    if task is not None and not isinstance(task, str):
        raise ConfigError(f"{where}: 'task' must be a string")
    score = _number(row, "score", where, 0.0, 1.0)
    if score is None:
        raise ConfigError(f"{where}: 'score' is required (a number from 0 to 1)")
    return Outcome(
        row["prompt"],
        row["model"],
        score,
        cost=_number(row, "cost", where, 0.0, math.inf),
        latency=_number(row, "latency", where, 0.0, math.inf),
        task=task,
    )


def read_outcomes(path: str | os.PathLike[str]) -> list[Outcome]:
    """Every outcome in a JSON Lines file (blank lines skipped); a bad line raises
    ``ConfigError`` naming the file and the line number."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read outcome file: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if line.strip():
            out.append(parse_outcome(line, f"{file}:{n}"))
    if not out:
        raise ConfigError(f"{file}: no outcomes (expected JSON Lines; see docs/routing.md)")
    return out


@dataclass(frozen=True, slots=True)
class KnnSettings:
    """The estimator's knobs (from a route's ``learned`` settings, whose defaults were chosen
    by cross-validation on the routing benchmark: ``learned.knn_settings``)."""

    neighbours: int
    temperature: float
    """Weight of a neighbour: ``exp(similarity / temperature)``; large means uniform."""
    prior: float
    """Pseudo-observations of the model's store-wide mean added to every estimate."""
    min_similarity: float = -1.0
    """Neighbours less similar than this do not count towards ``min_neighbours``."""
    min_neighbours: int = 1
    """A model with fewer counted neighbours than this has no estimate (fallback)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """A model's estimated chance of a good answer and the neighbours it rests on."""

    p: float
    neighbours: int


def estimate_from_neighbours(
    sims: np.ndarray, scores: np.ndarray, prior_mean: np.ndarray, knn: KnnSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The estimator on neighbours already found: ``sims`` (queries, k) similarities,
    ``scores`` (queries, k, models) their outcomes (NaN: none). Returns p (queries, models)
    and the counted neighbours (queries, models). Shared by the strategy and the benchmark."""
    import numpy as np

    top = sims.max(axis=1, keepdims=True) if sims.size else sims
    w = np.exp((sims - top) / max(knn.temperature, 1e-6))[:, :, None]  # (q, k, 1)
    known = ~np.isnan(scores)
    wk = np.where(known, w, 0.0)
    total = wk.sum(axis=1)  # (q, m)
    acc = np.where(known, scores * w, 0.0).sum(axis=1)
    # Shrinkage in units of the best neighbour's weight (1.0): ``prior`` neighbours' worth.
    den = total + knn.prior
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(den > 0, (acc + knn.prior * prior_mean) / den, prior_mean)
    counted = (known & (sims[:, :, None] >= knn.min_similarity)).sum(axis=1)
    return p, counted


def estimate_models(
    indexes: Sequence[OutcomeIndex],
    vector: np.ndarray,
    names: Sequence[Sequence[str | None]],
    knn: KnnSettings,
) -> dict[str, Estimate]:
    """Estimates over several stores at once (the user's files and the gateway's feedback):
    ``names[i][j]`` is what store ``i`` calls model ``j`` (None: unknown there); the ``k``
    nearest rows of all stores together are the neighbours. Keyed by ``names[0]``'s entry,
    else the first store's name that is set; only models with enough neighbours."""
    import numpy as np

    parts = [ix.lookup(vector, n, knn.neighbours) for ix, n in zip(indexes, names, strict=True)]
    sims = np.concatenate([p[0] for p in parts])
    if not len(sims):
        return {}
    scores = np.concatenate([p[1] for p in parts])
    priors = np.stack([p[2] for p in parts])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a model unknown everywhere: 0.5
        prior = np.nan_to_num(np.nanmean(priors, axis=0), nan=0.5)
    top = np.argsort(-sims)[: knn.neighbours]
    p, counted = estimate_from_neighbours(sims[None, top], scores[None, top], prior, knn)
    out = {}
    for j in range(scores.shape[1]):
        key = next((n[j] for n in names if n[j] is not None), None)
        if key is not None and counted[0, j] >= knn.min_neighbours:
            out[key] = Estimate(float(p[0, j]), int(counted[0, j]))
    return out


class OutcomeIndex:
    """Outcomes as one row per distinct prompt: unit embeddings (n, dim) and scores
    (n, models), NaN where a model has none; plus each model's mean cost and latency."""

    def __init__(
        self,
        vectors: np.ndarray,
        scores: np.ndarray,
        models: Sequence[str],
        *,
        costs: dict[str, float] | None = None,
        latencies: dict[str, float] | None = None,
        lengths: np.ndarray | None = None,
        source: str = "<memory>",
    ) -> None:
        import numpy as np

        self.lengths = (
            np.zeros(len(vectors), dtype=np.int64) if lengths is None else np.asarray(lengths)
        )
        """Each prompt's length in characters (for cost estimates when calibrating)."""
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.scores = np.asarray(scores, dtype=np.float32)
        self.models = tuple(models)
        self.column = {m: i for i, m in enumerate(self.models)}
        self.costs = costs or {}
        self.latencies = latencies or {}
        self.source = source
        with np.errstate(invalid="ignore"):
            means = np.nanmean(self.scores, axis=0) if len(self.scores) else None
        self.prior_mean = (
            np.nan_to_num(means, nan=0.5) if means is not None else np.full(len(self.models), 0.5)
        ).astype(np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    @classmethod
    def empty(cls, source: str = "none") -> OutcomeIndex:
        import numpy as np

        return cls(np.zeros((0, 384), np.float32), np.zeros((0, 0), np.float32), [], source=source)

    @classmethod
    def build(
        cls,
        outcomes: Iterable[Outcome],
        embed: Callable[[list[str]], np.ndarray],
        *,
        source: str = "<memory>",
    ) -> OutcomeIndex:
        """Group outcomes by prompt (several outcomes of one model on one prompt are
        averaged) and embed each distinct prompt once."""
        import numpy as np

        rows: dict[str, int] = {}
        models: dict[str, int] = {}
        cells: dict[tuple[int, int], list[float]] = {}
        cost: dict[str, list[float]] = {}
        latency: dict[str, list[float]] = {}
        for o in outcomes:
            r = rows.setdefault(o.prompt, len(rows))
            c = models.setdefault(o.model, len(models))
            cells.setdefault((r, c), []).append(o.score)
            if o.cost is not None:
                cost.setdefault(o.model, []).append(o.cost)
            if o.latency is not None:
                latency.setdefault(o.model, []).append(o.latency)
        scores = np.full((len(rows), len(models)), np.nan, dtype=np.float32)
        for (r, c), values in cells.items():
            scores[r, c] = sum(values) / len(values)
        vectors = embed(list(rows)) if rows else np.zeros((0, 384), dtype=np.float32)
        return cls(
            vectors,
            scores,
            list(models),
            costs={m: sum(v) / len(v) for m, v in cost.items()},
            latencies={m: sum(v) / len(v) for m, v in latency.items()},
            lengths=np.array([len(p) for p in rows], dtype=np.int64),
            source=source,
        )

    def neighbours(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, similarities) of each query's ``k`` most similar stored prompts, by exact
        cosine similarity (vectors are unit length), most similar first."""
        import numpy as np

        q = np.atleast_2d(queries).astype(np.float32, copy=False)
        sims = q @ self.vectors.T  # (queries, n)
        k = min(k, sims.shape[1])
        if k < sims.shape[1]:
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            idx = np.broadcast_to(np.arange(sims.shape[1]), (len(q), sims.shape[1]))
        top = np.take_along_axis(sims, idx, axis=1)
        order = np.argsort(-top, axis=1)
        return np.take_along_axis(idx, order, axis=1), np.take_along_axis(top, order, axis=1)

    def lookup(
        self, vector: np.ndarray, names: Sequence[str | None], k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``k`` nearest rows to one vector: similarities (k,), their scores (k, names)
        (NaN where the store has no outcome of that name) and each name's store-wide mean
        (NaN when unknown)."""
        import numpy as np

        cols = [self.column.get(n, -1) if n is not None else -1 for n in names]
        if not len(self):
            empty = np.zeros((0, len(names)), dtype=np.float32)
            return np.zeros(0, dtype=np.float32), empty, np.full(len(names), np.nan)
        idx, sims = self.neighbours(vector, k)
        padded = np.concatenate([self.scores, np.full((len(self), 1), np.nan, np.float32)], 1)
        prior = np.concatenate([self.prior_mean, [np.nan]])
        return sims[0], padded[idx[0]][:, cols], prior[cols]

    def estimate(
        self, vector: np.ndarray, models: Sequence[str], knn: KnnSettings
    ) -> dict[str, Estimate]:
        """Each of ``models`` that the store knows and that has at least ``min_neighbours``
        counted neighbours, with its estimate."""
        return estimate_models([self], vector, [list(models)], knn)

    def merged(self, other: OutcomeIndex) -> OutcomeIndex:
        """Both stores' rows in one index (a prompt in both keeps two rows)."""
        import numpy as np

        models = list(dict.fromkeys([*self.models, *other.models]))
        scores = np.full((len(self) + len(other), len(models)), np.nan, dtype=np.float32)
        for part, offset in ((self, 0), (other, len(self))):
            for m, c in part.column.items():
                scores[offset : offset + len(part), models.index(m)] = part.scores[:, c]
        return OutcomeIndex(
            np.concatenate([self.vectors, other.vectors]) if len(other) else self.vectors,
            scores,
            models,
            costs={**other.costs, **self.costs},
            latencies={**other.latencies, **self.latencies},
            lengths=np.concatenate([self.lengths, other.lengths]),
            source=f"{self.source}, {other.source}",
        )
