"""The offline routing benchmark: the ``learned`` router replayed on published outcome tables,
with no network. Prints tables, writes cost-quality charts (PNG). Not a test.

    make bench-routing                                    # everything
    .venv/bin/python -m bench.learned mmlu                # RouteLLM's GPT-4 / Mixtral pair
    .venv/bin/python -m bench.learned llmrouter           # nine open models with prices
    .venv/bin/python -m bench.learned overhead            # router cost per request
    .venv/bin/python -m bench.learned lookup              # kNN lookup at 10k / 100k / 1M rows
    .venv/bin/python -m bench.learned mmlu --sample 300   # a quick run on a sample
    .venv/bin/python -m bench.learned outcomes --file my-outcomes.jsonl   # your own data
    .venv/bin/python -m bench.learned mmlu --tokens 256   # vectors read 256 tokens, not 64

Data: ``../shared/routing-data/`` beside the checkout (or ``--data``). Prompts are embedded
once with the gateway's MiniLM (the task classifier's vector: first 48 and last 16 tokens,
``routing.task_tokens``) and cached under ``bench/.cache``. Every figure is out-of-fold:
5-fold cross-validation, and the estimator's settings (neighbours, temperature, prior) are
chosen for each outer fold by an inner 4-fold cross-validation on that fold's training part
only, never on the fold judged.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from turnout.config import LearnedConfig
from turnout.routing.learned import knn_settings
from turnout.routing.outcomes import KnnSettings, OutcomeIndex, estimate_from_neighbours

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "routing-data"
CACHE = ROOT / "bench" / ".cache"
OUTPUT_TOKENS = 256
"""Assumed answer length for the nine-model costs (the data has no token counts)."""

GRID = [
    KnnSettings(neighbours=k, temperature=t, prior=a)
    for k in (20, 40, 80, 160, 320)
    for t in (0.05, 0.1, 0.2, 0.5, 10.0)
    for a in (0.0, 4.0, 16.0)
]
KMAX = max(s.neighbours for s in GRID)
DEFAULTS = knn_settings(LearnedConfig())
"""What a route gets without settings: shown beside the per-fold tuned estimator."""


# --- data ----------------------------------------------------------------------------------


@dataclass
class Table:
    """Outcomes of several models on the same prompts."""

    name: str
    prompts: list[str]
    models: list[str]
    scores: np.ndarray  # (n, models)
    costs: np.ndarray | None = None  # (n, models) USD per prompt
    tasks: list[str] | None = None

    def take(self, rows: np.ndarray) -> Table:
        return Table(
            self.name,
            [self.prompts[i] for i in rows],
            self.models,
            self.scores[rows],
            None if self.costs is None else self.costs[rows],
            None if self.tasks is None else [self.tasks[i] for i in rows],
        )


def load_mmlu(data: Path) -> Table:
    """RouteLLM's MMLU responses (Mixtral first, GPT-4 second), contaminated prompts dropped."""
    folder = data / "routellm" / "mmlu"
    contaminated = {
        json.loads(line)["eval_prompt"]
        for line in (folder / "contaminated_prompts.jsonl").read_text(encoding="utf-8").split("\n")
        if line.strip()
    }
    prompts, scores, tasks = [], [], []
    weak, strong = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    for file in sorted((folder / "responses").glob("mmlu_*.csv")):
        with file.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["prompt"] in contaminated:
                    continue
                prompts.append(row["prompt"])
                scores.append([row[weak] == "True", row[strong] == "True"])
                tasks.append(file.stem.removeprefix("mmlu_"))
    return Table("mmlu", prompts, [weak, strong], np.array(scores, dtype=np.float32), tasks=tasks)


def load_llmrouter(data: Path) -> Table:
    folder = data / "llmrouter"
    rows = json.loads((folder / "train.json").read_text())
    prices = json.loads((folder / "models.json").read_text())
    labels = {}
    for line in (folder / "query_train.jsonl").read_text(encoding="utf-8").split("\n"):
        if line.strip():
            r = json.loads(line)
            labels[r["query"]] = r["task_name"]
    models = list(rows[0]["scores"])
    prompts = [r["question"] for r in rows]
    scores = np.array([[r["scores"][m] for m in models] for r in rows], dtype=np.float32)
    # The gateway's own prompt estimate (about 4 characters a token) plus the assumed answer.
    tokens = np.array([len(p) / 4 for p in prompts])[:, None]
    inp = np.array([prices[m]["input_price"] for m in models])[None, :]
    out = np.array([prices[m]["output_price"] for m in models])[None, :]
    costs = (inp * tokens + out * OUTPUT_TOKENS) / 1e6
    tasks = [labels.get(p, "?") for p in prompts]
    return Table("llmrouter", prompts, models, scores, costs, tasks)


# --- embeddings and neighbours ---------------------------------------------------------------


TOKENS = 64
"""The embedding's cut (``routing.task_tokens``): ``--tokens`` sets it for a run."""


def embed_all(prompts: list[str], name: str) -> np.ndarray:
    """MiniLM vectors of the prompts at the cut ``TOKENS``, cached on disk by the prompts'
    digest (and the cut, when it is not the default)."""
    from turnout.routing.classifier import TaskClassifier

    digest = hashlib.sha256("\0".join(prompts).encode()).hexdigest()[:16]
    cut = "" if TOKENS == 64 else f"-cut{TOKENS}"
    file = CACHE / f"{name}-{digest}{cut}.npy"
    if file.is_file():
        return np.load(file)
    clf = TaskClassifier(max_tokens=TOKENS)
    out = np.zeros((len(prompts), 384), dtype=np.float32)
    started = time.perf_counter()
    lock = threading.Lock()
    done = 0

    def work(part: range) -> None:
        nonlocal done
        for i in part:
            out[i] = clf.embed_sync(prompts[i])
            with lock:
                done += 1
                if done % 2000 == 0:
                    print(f"  embedded {done}/{len(prompts)}", file=sys.stderr)

    clf.embed_sync("warm up")
    threads = [threading.Thread(target=work, args=(range(j, len(prompts), 2),)) for j in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    clf.close()
    print(
        f"  embedded {len(prompts)} prompts in {time.perf_counter() - started:.0f} s "
        f"(cached in {file.relative_to(ROOT)})",
        file=sys.stderr,
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(file, out)
    return out


def neighbour_table(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each prompt's ``k`` most similar other prompts (rows, similarities), best first."""
    index = OutcomeIndex(vectors, np.zeros((len(vectors), 0)), [])
    idx = np.zeros((len(vectors), k), dtype=np.int64)
    sims = np.zeros((len(vectors), k), dtype=np.float32)
    for start in range(0, len(vectors), 1024):
        chunk = slice(start, start + 1024)
        i, s = index.neighbours(vectors[chunk], k + 1)
        self_rows = np.arange(start, start + len(i))[:, None]
        keep = i != self_rows
        # drop the prompt itself (or the last one when a duplicate outranks it)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        idx[chunk] = np.take_along_axis(i, order, axis=1)
        sims[chunk] = np.take_along_axis(s, order, axis=1)
    return idx, sims


def fold_neighbours(
    idx: np.ndarray, sims: np.ndarray, rows: np.ndarray, train: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """For the prompts ``rows``, their ``k`` nearest among the ``train`` rows only (padded
    with similarity -inf and row 0 when fewer are in the table)."""
    cand, s = idx[rows], sims[rows]
    inside = train[cand]
    order = np.argsort(~inside, axis=1, kind="stable")[:, :k]
    ok = np.take_along_axis(inside, order, axis=1)
    return (
        np.where(ok, np.take_along_axis(cand, order, axis=1), 0),
        np.where(ok, np.take_along_axis(s, order, axis=1), -np.inf),
    )


def knn_predict(
    table: Table,
    idx: np.ndarray,
    sims: np.ndarray,
    rows: np.ndarray,
    train: np.ndarray,
    settings: Sequence[KnnSettings],
) -> list[np.ndarray]:
    """Estimated p (len(rows), models) for each of ``settings``, from the train rows only."""
    nidx, nsims = fold_neighbours(idx, sims, rows, train, KMAX)
    prior = table.scores[train].mean(axis=0)
    out = []
    for knn in settings:
        k = knn.neighbours
        scores = table.scores[nidx[:, :k]]
        scores = np.where(np.isfinite(nsims[:, :k])[:, :, None], scores, np.nan)
        p, _ = estimate_from_neighbours(nsims[:, :k], scores, prior, knn)
        out.append(p)
    return out


def folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return [perm[i::k] for i in range(k)]


# --- metrics -------------------------------------------------------------------------------


def pgr_curve(score: np.ndarray, weak: np.ndarray, strong: np.ndarray, seed: int = 0) -> np.ndarray:
    """PGR after sending the 0, 1, ..., n highest-scoring prompts to the strong model."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(score)), -score))
    gain = np.concatenate([[0.0], np.cumsum((strong - weak)[order])])
    perf = (weak.sum() + gain) / len(score)
    lo, hi = weak.mean(), strong.mean()
    if hi <= lo:  # only in tiny samples: no gap to recover
        return np.zeros_like(perf)
    return (perf - lo) / (hi - lo)


def apgr(curve: np.ndarray) -> float:
    """Area under PGR against the share of strong calls (trapezoids over every count)."""
    return float(((curve[1:] + curve[:-1]) / 2).mean())


def cpt(curve: np.ndarray, target: float) -> float:
    """The smallest share of strong calls whose PGR reaches ``target``."""
    hit = np.nonzero(curve >= target)[0]
    return float(hit[0] / (len(curve) - 1)) if len(hit) else 1.0


def hull_quality(points: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The non-decreasing upper convex hull of (cost, quality) points, as a function of cost
    (flat before the cheapest point's quality? no: undefined below it, flat after the best)."""
    pts = sorted({(float(c), float(q)) for c, q in points})
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    # non-decreasing: stop at the best quality, flat after it
    best = max(range(len(hull)), key=lambda i: (hull[i][1], -hull[i][0]))
    hull = hull[: best + 1]
    xs = np.array([h[0] for h in hull])
    ys = np.array([h[1] for h in hull])
    return lambda c: np.interp(c, xs, ys, left=np.nan, right=ys[-1])


def aiq(points: np.ndarray, lo: float, hi: float) -> float:
    """RouterBench's AIQ: the mean of the hull's quality over the cost range [lo, hi] (below
    the router's cheapest point the hull is taken as that point's quality)."""
    f = hull_quality(points)
    grid = np.linspace(lo, hi, 2001)
    q = f(grid)
    first = points[np.argmin(points[:, 0])][1]
    q = np.where(np.isnan(q), first, q)
    return float(((q[1:] + q[:-1]) / 2).mean())


def sweep(p: np.ndarray, costs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(mean cost, mean quality) of ``argmax p - lambda * cost`` for lambdas from 0 to large
    (costs scaled per prompt to the mean cost, so lambda is in quality per mean cost)."""
    scale = costs.mean()
    lambdas = np.concatenate([[0.0], np.geomspace(1e-4, 100, 120)])
    out = []
    n = np.arange(len(p))
    for lam in lambdas:
        choice = np.argmax(p - lam * costs / scale, axis=1)
        out.append((costs[n, choice].mean(), truth[n, choice].mean()))
    return np.array(out)


# --- MMLU ----------------------------------------------------------------------------------


def mmlu_score(table: Table, rows: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The learned router's ranking score for the strong model: p(strong) - p(weak)."""
    return p[:, 1] - p[:, 0]


def mmlu_objective(table: Table, rows: np.ndarray, p: np.ndarray) -> float:
    s = table.scores[rows]
    return apgr(pgr_curve(mmlu_score(table, rows, p), s[:, 0], s[:, 1]))


def choose_settings(
    table: Table,
    idx: np.ndarray,
    sims: np.ndarray,
    train_rows: np.ndarray,
    objective: Callable[[Table, np.ndarray, np.ndarray], float],
    seed: int,
) -> tuple[KnnSettings, float]:
    """The grid point with the best mean objective over an inner 4-fold CV of train_rows."""
    totals = np.zeros(len(GRID))
    for inner in folds(len(train_rows), 4, seed):
        test = train_rows[inner]
        train = np.zeros(len(table.prompts), dtype=bool)
        train[train_rows] = True
        train[test] = False
        for j, p in enumerate(knn_predict(table, idx, sims, test, train, GRID)):
            totals[j] += objective(table, test, p)
    best = int(np.argmax(totals))
    return GRID[best], float(totals[best] / 4)


def task_router_scores(
    table: Table, vectors: np.ndarray, rows: np.ndarray, train: np.ndarray
) -> dict[str, np.ndarray]:
    """The task-label router: the turnout classifier's label for each prompt (built-in
    labels), each label's mean score per model over the training rows."""
    labels = classify_all(vectors)
    means = {}
    for lab in set(labels):
        m = train & (labels == lab)
        means[lab] = table.scores[m].mean(axis=0) if m.any() else table.scores[train].mean(axis=0)
    return {"p": np.stack([means[lab] for lab in labels[rows]])}


_LABELS: dict[int, np.ndarray] = {}


def classify_all(vectors: np.ndarray) -> np.ndarray:
    key = id(vectors)
    if key not in _LABELS:
        from turnout.routing.classifier import TaskClassifier

        clf = TaskClassifier()
        _LABELS[key] = np.array([clf.classify_vector(v)[0] or "none" for v in vectors])
        clf.close()
    return _LABELS[key]


def bench_mmlu(data: Path, sample: int | None, n_folds: int, charts: Path | None) -> dict:
    table = load_mmlu(data)
    if sample:
        table = table.take(np.random.default_rng(1).permutation(len(table.prompts))[:sample])
    weak_acc, strong_acc = table.scores.mean(axis=0)
    print(
        f"\nMMLU (RouteLLM): {len(table.prompts)} prompts after dropping contaminated ones; "
        f"Mixtral {weak_acc:.3f}, GPT-4 {strong_acc:.3f}"
    )
    vectors = embed_all(table.prompts, "mmlu")
    idx, sims = neighbour_table(vectors, min(2 * KMAX, len(table.prompts) - 1))
    results: dict[str, list[tuple[float, float, float]]] = {}
    chosen = []
    curves: dict[str, list[np.ndarray]] = {}
    lengths = np.array([len(p) for p in table.prompts], dtype=np.float64)
    rng = np.random.default_rng(7)
    for f, test in enumerate(folds(len(table.prompts), n_folds, seed=0)):
        train = np.ones(len(table.prompts), dtype=bool)
        train[test] = False
        train_rows = np.nonzero(train)[0]
        knn, inner = choose_settings(table, idx, sims, train_rows, mmlu_objective, seed=f + 1)
        chosen.append((knn, inner))
        p, p0 = knn_predict(table, idx, sims, test, train, [knn, DEFAULTS])
        s = table.scores[test]
        routers = {
            "learned (kNN)": mmlu_score(table, test, p),
            "learned, defaults": mmlu_score(table, test, p0),
            "task label": mmlu_score(
                table, test, task_router_scores(table, vectors, test, train)["p"]
            ),
            "prompt length": lengths[test],
            "random": rng.random(len(test)),
            "oracle": s[:, 1] - s[:, 0],
        }
        for name, score in routers.items():
            curve = pgr_curve(score, s[:, 0], s[:, 1], seed=f)
            results.setdefault(name, []).append((apgr(curve), cpt(curve, 0.5), cpt(curve, 0.8)))
            curves.setdefault(name, []).append(curve)
    print("  5-fold CV; settings per outer fold (inner-CV APGR): " if n_folds == 5 else "")
    for knn, inner in chosen:
        print(
            f"    k={knn.neighbours} temperature={knn.temperature} prior={knn.prior}"
            f" (inner APGR {inner:.3f})"
        )
    print(f"  {'router':<16} {'APGR':>14} {'CPT(50%)':>16} {'CPT(80%)':>16}")
    summary = {}
    for name, rows in results.items():
        a = [r[0] for r in rows]
        c5 = [r[1] for r in rows]
        c8 = [r[2] for r in rows]
        summary[name] = {"apgr": np.mean(a), "cpt50": np.mean(c5), "cpt80": np.mean(c8)}
        print(
            f"  {name:<16} {np.mean(a):>7.3f} ± {np.std(a):.3f} "
            f"{100 * np.mean(c5):>8.1f}% ± {100 * np.std(c5):.1f} "
            f"{100 * np.mean(c8):>8.1f}% ± {100 * np.std(c8):.1f}"
        )
    if charts is not None:
        chart_mmlu(curves, charts / "routing-mmlu.png")
    return summary


def chart_mmlu(curves: dict[str, list[np.ndarray]], file: Path) -> None:
    plt = _pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for name, cs in curves.items():
        n = min(len(c) for c in cs)
        mean = np.mean(
            [np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(c)), c) for c in cs], 0
        )
        ax.plot(np.linspace(0, 100, n), mean, label=name)
    ax.axhline(1.0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("calls to GPT-4 (%)")
    ax.set_ylabel("performance gap recovered")
    ax.set_title("MMLU: GPT-4 vs Mixtral (5-fold CV, out of fold)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file)
    print(f"  chart: {file}")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no chart: pip install 'turnout[bench]' for matplotlib)")
        return None
    return plt


# --- nine models -----------------------------------------------------------------------------


def nine_objective(table: Table, rows: np.ndarray, p: np.ndarray) -> float:
    assert table.costs is not None
    costs, truth = table.costs[rows], table.scores[rows]
    singles = np.stack([costs.mean(axis=0), truth.mean(axis=0)], axis=1)
    return aiq(sweep(p, costs, truth), singles[:, 0].min(), singles[:, 0].max())


def load_outcome_file(path: Path) -> Table:
    """A user's outcome file (the documented JSON Lines format) as a table: the prompts that
    have an outcome for every model; cost per prompt and model from the outcomes' ``cost``,
    else the model's mean cost, else 1 for every model (then only quality is compared)."""
    from turnout.routing.outcomes import read_outcomes

    outcomes = read_outcomes(path)
    models = list(dict.fromkeys(o.model for o in outcomes))
    cells: dict[str, dict[str, list[float]]] = {}
    costs: dict[str, dict[str, float]] = {}
    for o in outcomes:
        cells.setdefault(o.prompt, {}).setdefault(o.model, []).append(o.score)
        if o.cost is not None:
            costs.setdefault(o.prompt, {})[o.model] = o.cost
    prompts = [p for p, row in cells.items() if len(row) == len(models)]
    if len(prompts) < len(cells):
        print(f"  ({len(cells) - len(prompts)} prompts left out: not every model has an outcome)")
    scores = np.array([[np.mean(cells[p][m]) for m in models] for p in prompts], np.float32)
    known = [c for row in costs.values() for c in row.values()]
    mean = {m: np.mean([r[m] for r in costs.values() if m in r] or [np.nan]) for m in models}
    cost = np.array(
        [[costs.get(p, {}).get(m, mean[m]) for m in models] for p in prompts], dtype=np.float64
    )
    if not known or np.isnan(cost).any():
        cost = np.ones_like(cost)
    return Table(path.stem, prompts, models, scores, cost)


def bench_llmrouter(
    data: Path,
    sample: int | None,
    n_folds: int,
    charts: Path | None,
    table: Table | None = None,
) -> dict:
    if table is None:
        table = load_llmrouter(data)
        what = (
            f"Nine models (LLMRouter train.json): {len(table.prompts)} prompts; cost = price x "
            f"(prompt characters / 4 + {OUTPUT_TOKENS} output tokens)"
        )
    else:
        what = f"{table.name}: {len(table.prompts)} prompts, {len(table.models)} models"
    if sample:
        table = table.take(np.random.default_rng(1).permutation(len(table.prompts))[:sample])
    assert table.costs is not None
    print(f"\n{what}")
    vectors = embed_all(table.prompts, table.name)
    idx, sims = neighbour_table(vectors, min(2 * KMAX, len(table.prompts) - 1))
    p_all = np.zeros_like(table.scores)
    p_defaults = np.zeros_like(table.scores)
    chosen = []
    for f, test in enumerate(folds(len(table.prompts), n_folds, seed=0)):
        train = np.ones(len(table.prompts), dtype=bool)
        train[test] = False
        knn, inner = choose_settings(
            table, idx, sims, np.nonzero(train)[0], nine_objective, seed=f + 1
        )
        chosen.append((knn, inner))
        p_all[test], p_defaults[test] = knn_predict(table, idx, sims, test, train, [knn, DEFAULTS])
    for knn, inner in chosen:
        print(
            f"    k={knn.neighbours} temperature={knn.temperature} prior={knn.prior}"
            f" (inner AIQ {inner:.3f})"
        )
    costs, truth = table.costs, table.scores
    singles = np.stack([costs.mean(axis=0), truth.mean(axis=0)], axis=1)
    lo, hi = singles[:, 0].min(), singles[:, 0].max()
    best = int(np.argmax(singles[:, 1]))
    best_cost, best_acc = singles[best]
    learned = sweep(p_all, costs, truth)
    oracle = sweep(truth + 1e-6 * (1 - costs / costs.max()), costs, truth)
    rows = {
        "learned (kNN)": learned,
        "learned, defaults": sweep(p_defaults, costs, truth),
        "zero router": singles,
        "oracle": oracle,
    }
    print(
        f"  best single model: {table.models[best]} accuracy {best_acc:.3f} at "
        f"${best_cost * 1e6:.1f} per million prompts; cost range ${lo * 1e6:.1f}-${hi * 1e6:.1f}"
    )
    print(f"  {'router':<14} {'AIQ':>6} {'acc @ best cost':>16} {'cost to best acc':>22}")
    summary = {}
    for name, pts in rows.items():
        a = aiq(pts, lo, hi)
        under = pts[pts[:, 0] <= best_cost + 1e-12]
        acc_at = under[:, 1].max() if len(under) else float("nan")
        reach = pts[pts[:, 1] >= best_acc - 1e-12]
        cost_to = reach[:, 0].min() if len(reach) else float("nan")
        saving = 1 - cost_to / best_cost
        summary[name] = {"aiq": a, "acc_at_best_cost": acc_at, "cost_saving": saving}
        reached = f"${cost_to * 1e6:.1f} ({100 * saving:.0f}% lower)"
        reached = "n/a" if np.isnan(cost_to) else reached
        print(f"  {name:<14} {a:>6.3f} {acc_at:>16.3f} {reached:>22}")
    if charts is not None:
        name = "routing-nine-models.png" if table.name == "llmrouter" else f"{table.name}.png"
        chart_nine(rows, singles, table.models, charts / name)
    return summary


def chart_nine(
    rows: dict[str, np.ndarray], singles: np.ndarray, models: list[str], file: Path
) -> None:
    plt = _pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for name, pts in rows.items():
        if name == "zero router":
            continue
        order = np.argsort(pts[:, 0])
        ax.plot(pts[order, 0] * 1e6, pts[order, 1], label=name, marker=".", ms=3)
    ax.scatter(singles[:, 0] * 1e6, singles[:, 1], color="black", s=14, label="single models")
    for (c, q), m in zip(singles, models, strict=True):
        ax.annotate(m, (c * 1e6, q), fontsize=6, xytext=(3, -3), textcoords="offset points")
    ax.set_xlabel("USD per million prompts")
    ax.set_ylabel("mean score")
    ax.set_title(f"{len(models)} models (5-fold CV, out of fold)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file)
    print(f"  chart: {file}")


# --- overhead and lookup --------------------------------------------------------------------


def bench_lookup(sizes: Sequence[int], repeats: int = 50) -> None:
    print(
        f"\nkNN lookup and estimate (exact: one matrix product, a partial sort; "
        f"k={DEFAULTS.neighbours}, 384 dimensions, 2 models)"
    )
    from turnout.routing.embedding import one_blas_thread

    one_blas_thread()  # as in the gateway, where the routing model's load sets it
    rng = np.random.default_rng(0)
    knn = DEFAULTS
    for n in sizes:
        vectors = rng.standard_normal((n, 384), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = OutcomeIndex(vectors, rng.random((n, 2), dtype=np.float32), ["a", "b"])
        del vectors
        q = index.vectors[0]
        times = []
        for _ in range(repeats if n < 1_000_000 else 10):
            t = time.perf_counter()
            index.estimate(q, ["a", "b"], knn)
            times.append(time.perf_counter() - t)
        mb = index.vectors.nbytes / 2**20
        print(
            f"  {n:>9,} rows ({mb:,.0f} MB): p50 {1e3 * statistics.median(times):.2f} ms, "
            f"min {1e3 * min(times):.2f} ms"
        )
        del index


def bench_overhead(data: Path, n: int) -> None:
    """Router cost per request through the gateway's planner: the request's embedding, the
    kNN lookup and the strategy (the store is the nine-model table, its vectors from the
    cache rather than embedded again)."""
    from turnout.config import Config
    from turnout.gateway import Gateway
    from turnout.routing.learned import LearnedRoute

    table = load_llmrouter(data)
    vectors = embed_all(table.prompts, "llmrouter")
    print(f"\nRouter overhead: `learned` over a store of {len(table.prompts)} prompts x 9 models")
    prices = json.loads((data / "llmrouter" / "models.json").read_text())
    config = Config.model_validate(
        {
            # Room for the 16 concurrent requests below: past ``task_queue`` a request goes
            # unrouted (route order) at once, which would time the fallback, not the router.
            "routing": {"task_tokens": TOKENS, "task_queue": 32},
            "providers": {"nim": {"host": "custom", "base_url": "http://127.0.0.1:9/v1"}},
            "models": [
                {
                    "id": f"nim:{m}",
                    "input_price": prices[m]["input_price"],
                    "output_price": prices[m]["output_price"],
                }
                for m in table.models
            ],
            "routes": [
                {
                    "name": "learned",
                    "strategy": "learned",
                    "learned": {"willingness_to_pay": 0.001},
                    "deployments": [f"nim:{m}" for m in table.models],
                }
            ],
        }
    )
    prompts = table.prompts[:: max(1, len(table.prompts) // n)][:n]

    async def run() -> None:
        gw = Gateway(config)
        await gw.planner.preload(gw.router.routes())
        route = gw.router.routes()[0]
        assert route.learned is not None
        index = OutcomeIndex(vectors, table.scores, table.models)
        gw.planner.learned[route.name] = LearnedRoute(index, route.learned, route.candidates)
        await gw.planner.classifier.embed_and_classify("warm up", None, None)

        async def one(prompt: str) -> tuple[float, bool]:
            """Seconds to plan, and whether the plan rests on estimates (a request beyond
            ``routing.task_queue`` waiting ones is not embedded: the route's order serves)."""
            t = time.perf_counter()
            plan = await gw.plan(
                {"model": "learned", "messages": [{"role": "user", "content": prompt}]}
            )
            return time.perf_counter() - t, bool(plan.estimates and "p=" in plan.estimates)

        async def bursts(concurrency: int) -> list[tuple[float, bool]]:
            times: list[tuple[float, bool]] = []
            for start in range(0, len(prompts), concurrency):
                batch = prompts[start : start + concurrency]
                times += await asyncio.gather(*(one(p) for p in batch))
            return times

        async def open_loop(rate: float) -> list[tuple[float, bool]]:
            """Requests arriving at ``rate`` a second (Poisson), whatever the ones before."""
            rng = np.random.default_rng(3)
            tasks = []
            for p in prompts:
                await asyncio.sleep(rng.exponential(1 / rate))
                tasks.append(asyncio.ensure_future(one(p)))
            return list(await asyncio.gather(*tasks))

        runs: list[tuple[str, Callable[[], Any]]] = [
            ("one at a time", lambda: bursts(1)),
            ("100 req/s", lambda: open_loop(100)),
            ("200 req/s", lambda: open_loop(200)),
            ("16 at once", lambda: bursts(16)),
        ]
        for label, start in runs:
            cpu0, wall = time.process_time(), time.perf_counter()
            done = await start()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall
            times = sorted(t for t, _ in done)
            unestimated = sum(not ok for _, ok in done)  # past routing.task_queue: no vector
            load = os.getloadavg()[0]
            print(
                f"  {label:<14} p50 {1e3 * times[len(times) // 2]:.1f} ms, "
                f"p95 {1e3 * times[int(0.95 * len(times))]:.1f} ms, "
                f"CPU {1e3 * cpu / len(times):.1f} ms a request, "
                f"{100 * cpu / wall:.0f} % of a core "
                f"({len(times)} requests; load average {load:.1f} on {os.cpu_count()} cores)"
                + (
                    f"; {unestimated} served without an estimate (queue full)"
                    if unestimated
                    else ""
                )
            )
        # the parts: lookup and strategy alone, on vectors already computed
        t = time.perf_counter()
        for v in vectors[:200]:
            gw.planner.learned[route.name].decide(route.candidates, v, _needs())
        print(f"  lookup + decision alone: {1e3 * (time.perf_counter() - t) / 200:.2f} ms mean")
        await gw.aclose()

    asyncio.run(run())


def _needs() -> Any:
    from turnout.routing.filters import Needs

    return Needs(frozenset(), 200, None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "part",
        nargs="?",
        choices=["mmlu", "llmrouter", "overhead", "lookup", "outcomes"],
        default=None,
    )
    parser.add_argument("--file", type=Path, help="outcomes: your own outcome file (JSON Lines)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sample", type=int, default=0, help="a random sample of N prompts")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--charts", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--requests", type=int, default=400, help="overhead: requests timed")
    parser.add_argument("--lookup-sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--tokens", type=int, default=64, help="the embedding's cut (routing.task_tokens)"
    )
    args = parser.parse_args(argv)
    global TOKENS
    TOKENS = args.tokens
    if TOKENS != 64:
        print(f"embedding cut: {TOKENS} tokens (routing.task_tokens)")
    if args.part == "outcomes":
        if args.file is None:
            parser.error("outcomes needs --file (an outcome file, docs/routing.md)")
        table = load_outcome_file(args.file)
        bench_llmrouter(args.data, args.sample or None, args.folds, args.charts, table)
        return 0
    if not (args.data / "README.md").is_file():
        print(f"no routing data at {args.data} (../shared/routing-data beside the checkout)")
        return 2
    charts = args.charts
    if args.part in (None, "mmlu"):
        bench_mmlu(args.data, args.sample or None, args.folds, charts)
    if args.part in (None, "llmrouter"):
        bench_llmrouter(args.data, args.sample or None, args.folds, charts)
    if args.part in (None, "overhead"):
        bench_overhead(args.data, args.requests)
    if args.part in (None, "lookup"):
        bench_lookup([int(s) for s in args.lookup_sizes.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
