"""Estimators tried against the ``learned`` router's kNN (docs/benchmarks.md, "Estimators
tried"): the same folds and inner cross-validation as ``bench.learned``, each variant's own
settings chosen per outer fold on the training part only. A study, not the product: the
router runs only the kNN (``routing/outcomes.py``).

    .venv/bin/python -m bench.learned_variants mmlu
    .venv/bin/python -m bench.learned_variants llmrouter
    .venv/bin/python -m bench.learned_variants mmlu --only knn,probe --tokens 256

Variants: ``knn`` (the shipped estimator and grid), ``probe`` (ridge per model on the
vectors, penalty by generalised cross-validation), ``shrink`` (kNN shrunk towards the probe),
``blend`` (a fixed mix of both), ``resid`` (probe plus kNN of its residuals), ``stack`` (kNN
plus a ridge fit of its leave-one-out residuals), ``abs`` and ``absprobe`` (neighbour weights
``exp((similarity - 1) / t)``, towards the store mean or the probe), ``cut`` (neighbours less
similar than the closest minus a margin left out).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import learned as B
from turnout.routing.outcomes import KnnSettings, estimate_from_neighbours

KS = (20, 40, 80, 160, 320)
TS = (0.05, 0.1, 0.2, 0.5, 10.0)
FAMILIES = ("knn", "probe", "shrink", "blend", "resid", "stack", "abs", "absprobe", "cut")


def ridge(
    x: np.ndarray, y: np.ndarray, eig: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge per column of ``y`` with an unpenalised intercept, each column's penalty chosen
    by generalised cross-validation over a log grid. Returns W (d, m) and b (m,)."""
    mu = x.mean(axis=0)
    xc = (x - mu).astype(np.float64)
    e, v = np.linalg.eigh(xc.T @ xc) if eig is None else eig
    e = np.clip(e, 0, None)
    n = len(x)
    grid = e.mean() * np.geomspace(1e-3, 1e3, 61)[:, None]  # (alphas, 1)
    ws, bs = [], []
    for j in range(y.shape[1]):
        yc = y[:, j] - y[:, j].mean()
        b = v.T @ (xc.T @ yc)
        rss = yc @ yc - 2 * (b**2 / (e + grid)).sum(1) + (e * b**2 / (e + grid) ** 2).sum(1)
        df = (e / (e + grid)).sum(1) + 1
        a = grid[int(np.argmin(n * rss / (n - df) ** 2)), 0]
        w = v @ (b / (e + a))
        ws.append(w)
        bs.append(y[:, j].mean() - mu @ w)
    return np.stack(ws, 1), np.array(bs)


def knn(
    table: B.Table,
    nidx: np.ndarray,
    nsims: np.ndarray,
    settings: KnnSettings,
    prior: np.ndarray,
    scores: np.ndarray | None = None,
) -> np.ndarray:
    """The product's estimator on the first ``k`` neighbours (-inf similarity: none)."""
    k = settings.neighbours
    s = (table.scores if scores is None else scores)[nidx[:, :k]]
    s = np.where(np.isfinite(nsims[:, :k])[:, :, None], s, np.nan)
    return estimate_from_neighbours(nsims[:, :k], s, prior, settings)[0]


def knn_absolute(
    table: B.Table,
    nidx: np.ndarray,
    nsims: np.ndarray,
    k: int,
    t: float,
    a: float,
    prior: np.ndarray,
) -> np.ndarray:
    """Weights ``exp((similarity - 1) / t)``: ``a`` counts against an identical prompt."""
    sims = nsims[:, :k]
    w = np.where(np.isfinite(sims), np.exp((np.nan_to_num(sims, neginf=-9.0) - 1) / t), 0.0)
    w = w[:, :, None]
    return ((w * table.scores[nidx[:, :k]]).sum(1) + a * prior) / (w.sum(1) + a)


def variants(
    table: B.Table,
    vectors: np.ndarray,
    idx: np.ndarray,
    sims: np.ndarray,
    rows: np.ndarray,
    train: np.ndarray,
    families: Sequence[str],
) -> dict[tuple[str, tuple[float, ...]], np.ndarray]:
    """Every variant's p for ``rows`` from the ``train`` rows, keyed by (family, settings)."""
    tr = np.nonzero(train)[0]
    y = table.scores[tr]
    mean = y.mean(axis=0)
    w, b = ridge(vectors[tr], y)
    probe = np.clip(vectors @ w + b, 0, 1)
    nidx, nsims = B.fold_neighbours(idx, sims, rows, train, max(KS))
    out: dict[tuple[str, tuple[float, ...]], np.ndarray] = {("probe", ()): probe[rows]}
    if "stack" in families:
        xc = vectors[tr] - vectors[tr].mean(0)
        eig = np.linalg.eigh((xc.T @ xc).astype(np.float64))
        tidx, tsims = B.fold_neighbours(idx, sims, tr, train, max(KS))  # leave-one-out
        for k in (80, 160, 320):
            for t in (0.1, 0.2):
                settings = KnnSettings(k, t, 0.0)
                w2, b2 = ridge(vectors[tr], y - knn(table, tidx, tsims, settings, mean), eig)
                p = knn(table, nidx, nsims, settings, mean)
                out[("stack", (k, t))] = p + vectors[rows] @ w2 + b2
    for k in KS:
        for t in TS:
            for a in (0.0, 4.0, 16.0):
                out[("knn", (k, t, a))] = knn(table, nidx, nsims, KnnSettings(k, t, a), mean)
            if "shrink" in families:
                for a in (1.0, 4.0, 16.0, 64.0):
                    s = KnnSettings(k, t, a)
                    out[("shrink", (k, t, a))] = knn(table, nidx, nsims, s, probe[rows])
            if "resid" in families:
                zero = np.zeros(table.scores.shape[1])
                for a in (0.0, 4.0, 16.0):
                    s = KnnSettings(k, t, a)
                    r = knn(table, nidx, nsims, s, zero, table.scores - probe)
                    out[("resid", (k, t, a))] = probe[rows] + r
            for a in (0.25, 1.0, 4.0, 16.0):
                if "abs" in families:
                    out[("abs", (k, t, a))] = knn_absolute(table, nidx, nsims, k, t, a, mean)
                if "absprobe" in families:
                    p = knn_absolute(table, nidx, nsims, k, t, a, probe[rows])
                    out[("absprobe", (k, t, a))] = p
            if "cut" in families:
                for delta in (0.1, 0.2, 0.3):
                    near = np.where(nsims >= nsims[:, :1] - delta, nsims, -np.inf)
                    for a in (0.0, 4.0):
                        s = KnnSettings(k, t, a)
                        out[("cut", (k, t, delta, a))] = knn(table, nidx, near, s, mean)
            if "blend" in families:
                base = out[("knn", (k, t, 0.0))]
                for beta in (0.25, 0.5, 0.75):
                    out[("blend", (k, t, beta))] = (1 - beta) * base + beta * probe[rows]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=["mmlu", "llmrouter"])
    parser.add_argument("--only", default=",".join(FAMILIES), help="families, comma-separated")
    parser.add_argument("--tokens", type=int, default=64, help="the embedding's cut")
    parser.add_argument("--data", default=str(B.DATA))
    parser.add_argument("--sample", type=int, default=0, help="a random sample of N prompts")
    args = parser.parse_args(argv)
    families = [f for f in args.only.split(",") if f]
    B.TOKENS = args.tokens
    data = Path(args.data)
    mmlu = args.table == "mmlu"
    table = B.load_mmlu(data) if mmlu else B.load_llmrouter(data)
    if args.sample:
        table = table.take(np.random.default_rng(1).permutation(len(table.prompts))[: args.sample])
    objective = B.mmlu_objective if mmlu else B.nine_objective
    vectors = B.embed_all(table.prompts, table.name)
    idx, sims = B.neighbour_table(vectors, min(2 * max(KS), len(table.prompts) - 1))
    n = len(table.prompts)
    figures: dict[str, list[tuple[float, ...]]] = {f: [] for f in families}
    pooled = {f: np.zeros_like(table.scores) for f in families}
    for f, test in enumerate(B.folds(n, 5, seed=0)):
        train = np.ones(n, dtype=bool)
        train[test] = False
        train_rows = np.nonzero(train)[0]
        totals: dict[tuple[str, tuple[float, ...]], float] = {}
        for inner in B.folds(len(train_rows), 4, seed=f + 1):
            itest = train_rows[inner]
            itrain = train.copy()
            itrain[itest] = False
            for key, p in variants(table, vectors, idx, sims, itest, itrain, families).items():
                totals[key] = totals.get(key, 0.0) + objective(table, itest, p) / 4
        outer = variants(table, vectors, idx, sims, test, train, families)
        s = table.scores[test]
        for fam in families:
            best = max((k for k in totals if k[0] == fam), key=lambda k: totals[k])
            pooled[fam][test] = p = outer[best]
            if mmlu:
                curve = B.pgr_curve(B.mmlu_score(table, test, p), s[:, 0], s[:, 1], seed=f)
                figures[fam].append((B.apgr(curve), B.cpt(curve, 0.5), B.cpt(curve, 0.8)))
            print(f"  fold {f} {fam:<8} {best[1]} (inner {totals[best]:.4f})", flush=True)
    print(f"\n{table.name}, {B.TOKENS}-token vectors, 5-fold CV, settings by inner 4-fold CV")
    for fam in families:
        if mmlu:
            r = np.array(figures[fam])
            m, sd = r.mean(0), r.std(0)
            print(
                f"  {fam:<8} APGR {m[0]:.3f} ± {sd[0]:.3f}  CPT(50%) {100 * m[1]:.1f}% ± "
                f"{100 * sd[1]:.1f}  CPT(80%) {100 * m[2]:.1f}% ± {100 * sd[2]:.1f}"
            )
            continue
        assert table.costs is not None
        costs, truth = table.costs, table.scores
        singles = np.stack([costs.mean(axis=0), truth.mean(axis=0)], axis=1)
        pts = B.sweep(pooled[fam], costs, truth)
        a = B.aiq(pts, singles[:, 0].min(), singles[:, 0].max())
        best_model = int(np.argmax(singles[:, 1]))
        reach = pts[pts[:, 1] >= singles[best_model, 1] - 1e-12]
        saving = 1 - reach[:, 0].min() / singles[best_model, 0] if len(reach) else float("nan")
        print(f"  {fam:<8} AIQ {a:.3f}  best model's score at {100 * saving:.0f}% lower cost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
